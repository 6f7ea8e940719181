from datetime import UTC, datetime, timedelta, timezone

from pymongo.errors import ServerSelectionTimeoutError

from webapp.documents import epoch, iso_utc, plain, public_question, short_reason


def test_epoch_keeps_the_millisecond_mongodb_stores():
    moment = datetime(2023, 12, 10, 16, 39, 44, 123000, tzinfo=UTC)
    assert epoch(moment) == 1702226384.123
    assert epoch(None) is None


def test_iso_utc_writes_utc_with_a_z_whatever_the_zone():
    moment = datetime(2023, 12, 10, 17, 39, 44, tzinfo=timezone(timedelta(hours=1)))
    assert iso_utc(moment) == "2023-12-10T16:39:44Z"
    assert iso_utc(None) is None


def test_public_question_keeps_feed_text_raw_and_names_the_id():
    fetched = datetime(2023, 12, 10, 16, 40, tzinfo=UTC)
    doc = {"_id": "abc", "title": "<b>x</b> & y", "tags": None, "fetched": fetched, "published": None}
    question = public_question(doc)
    assert question["id"] == "abc"
    assert question["title"] == "<b>x</b> & y"
    assert question["tags"] == []
    assert question["published"] is None
    assert question["link"] is None
    assert question["fetched"] == fetched.timestamp()


def test_plain_turns_datetimes_into_epoch_seconds_and_keeps_json_values():
    moment = datetime(2023, 12, 10, 16, 39, 44, 5000, tzinfo=UTC)
    assert plain(moment) == 1702226384.005
    assert [plain(value) for value in ("ok", 3, 1.5, True, None)] == ["ok", 3, 1.5, True, None]
    assert plain(b"bytes") == "b'bytes'"


def test_short_reason_keeps_the_first_line_without_the_timeouts():
    error = ServerSelectionTimeoutError(
        "127.0.0.1:1: [Errno 111] Connection refused (configured timeouts: socketTimeoutMS: 4500.0ms), "
        "Timeout: 1.5s, Topology Description: <TopologyDescription ...>\nmore"
    )
    assert short_reason(error) == "127.0.0.1:1: [Errno 111] Connection refused"
