import re
import time
from datetime import UTC, datetime

import pytest
from markupsafe import escape

from sofeed.store import question_key
from tests.helpers import save_numbered
from webapp import create_app, db
from webapp.questions import parse_timestamp

CONTRACT_FIELDS = {"id", "title", "link", "author", "author_uri", "tags", "rank", "published", "fetched"}
ATOM_FIELDS = {"entry_id", "updated"}
HOSTILE = {
    "title": '<img src=x onerror="window.__xss=1">',
    "link": "javascript:window.__xss=2",
    "author": "<script>window.__xss=3</script>",
}


def epoch(doc):
    return round(doc["fetched"].timestamp(), 3)


def test_update_hands_out_every_contract_field_with_its_type(client, earlier_store):
    doc = save_numbered(earlier_store, 1)
    response = client.get("/update?timestamp=0")
    assert response.status_code == 200
    [question] = response.json
    assert CONTRACT_FIELDS <= set(question) <= CONTRACT_FIELDS | ATOM_FIELDS | {"summary_text"}
    assert question["entry_id"] == "https://stackoverflow.com/q/1"
    assert question["updated"] == "2023-12-10T16:45:02Z"
    assert question["id"] == doc["_id"] == question_key("https://stackoverflow.com/q/1")
    assert question["title"] == "Question 1"
    assert question["link"] == doc["link"]
    assert (question["author"], question["author_uri"]) == (
        "Dana W.",
        "https://stackoverflow.com/users/2290917",
    )
    assert question["tags"] == ["kubernetes", "kubernetes-ingress"]
    assert question["rank"] == 1
    assert question["published"] == "2023-12-10T16:39:44Z"
    assert datetime.fromisoformat(question["published"]) == doc["published"]
    assert isinstance(question["fetched"], float)
    assert question["fetched"] == epoch(doc)
    assert question["summary_text"] == doc["summary_text"]


def test_update_lists_questions_newest_first_after_the_timestamp(client, earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(6)]
    everything = client.get("/update").json
    assert [q["id"] for q in everything] == [doc["_id"] for doc in reversed(docs)]
    later = client.get(f"/update?timestamp={epoch(docs[3])}").json
    assert [q["id"] for q in later] == [docs[5]["_id"], docs[4]["_id"]]
    assert client.get(f"/update?timestamp={epoch(docs[5])}").json == []


def test_a_missing_or_empty_timestamp_means_every_question(client, earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(3)]
    assert len(client.get("/update").json) == len(client.get("/update?timestamp=").json) == len(docs)


def test_an_integer_timestamp_counts_as_epoch_seconds(client, earlier_store):
    doc = save_numbered(earlier_store, 1)
    assert len(client.get(f"/update?timestamp={int(epoch(doc)) - 1}").json) == 1
    assert client.get(f"/update?timestamp={int(epoch(doc)) + 1}").json == []


def test_update_hands_out_at_most_the_200_newest_questions(client, earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(205)]
    answer = client.get("/update?timestamp=0").json
    assert [q["id"] for q in answer] == [doc["_id"] for doc in reversed(docs[5:])]
    assert earlier_store.count_questions() == 205


@pytest.mark.parametrize(
    "query",
    [
        "timestamp=abc",
        "timestamp=NaN",
        "timestamp=nan",
        "timestamp=inf",
        "timestamp=-inf",
        "timestamp=Infinity",
        "timestamp=1e999",
        "timestamp=-1",
        "timestamp=-0.5",
        "timestamp=1&timestamp=2",
        "timestamp=[1,2]",
        "timestamp=1,2",
        "timestamp=" + "1" * 33,
        "timestamp=0x10",
        "timestamp=1_000",
        "timestamp=%201",
        "timestamp=1.2.3",
    ],
)
def test_a_bad_timestamp_gets_400_with_a_json_error(client, earlier_store, query):
    save_numbered(earlier_store, 1)
    response = client.get(f"/update?{query}")
    assert response.status_code == 400
    assert response.is_json
    assert set(response.json) == {"error"}
    assert "timestamp" in response.json["error"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], 0), ([""], 0), (["0"], 0), (["1700000000"], 1700000000), (["1700000000.123"], 1700000000.123)],
)
def test_parse_timestamp_reads_epoch_seconds(values, expected):
    assert parse_timestamp(values) == expected


def test_update_is_never_cached_and_carries_the_security_headers(client):
    response = client.get("/update")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_update_says_in_its_age_header_how_many_whole_seconds_old_its_snapshot_is(client, earlier_store):
    save_numbered(earlier_store, 1)
    response = client.get("/update")
    assert response.status_code == 200
    assert response.headers["Age"] == "0"  # this app re-reads the database for every request


def test_update_answers_503_json_within_two_seconds_when_the_database_is_down():
    app = create_app({"TESTING": True, "MONGO_URI": "mongodb://127.0.0.1:1", "MONGO_DATABASE": "sofeed"})
    try:
        started = time.monotonic()
        response = app.test_client().get("/update?timestamp=0")
        elapsed = time.monotonic() - started
    finally:
        db.close(app)
    assert response.status_code == 503
    assert response.is_json
    assert response.json["error"].startswith("the database is unavailable")
    assert elapsed < 2


def test_the_page_renders_the_newest_50_questions_and_embeds_the_cursor(client, app, earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(55)]
    response = client.get("/")
    assert response.status_code == 200
    page = response.text
    rendered = re.findall(r'<li class="question" data-id="([0-9a-f]+)"', page)
    assert rendered == [doc["_id"] for doc in reversed(docs[5:])]
    assert f'data-cursor="{epoch(docs[-1])}"' in page
    assert f'data-poll-seconds="{app.config["POLL_SECONDS"]}"' in page
    assert response.headers["Cache-Control"] == "no-store"


def test_the_page_of_an_empty_database_starts_its_cursor_at_zero(client):
    page = client.get("/").text
    assert 'data-cursor="0"' in page
    assert '<p id="empty" class="empty">' in page


def test_the_page_shows_hostile_feed_text_as_text(client, earlier_store):
    save_numbered(
        earlier_store, 1, tags=["<b>tag</b>"], summary_text="<script>window.__xss=4</script>", **HOSTILE
    )
    page = client.get("/").text
    for text in (*HOSTILE.values(), "<b>tag</b>", "<script>window.__xss=4</script>"):
        assert str(escape(text)) in page
    assert "<img" not in page
    assert "<script>window" not in page
    assert "javascript:" not in page.replace(str(escape(HOSTILE["link"])), "")
    assert 'href="javascript' not in page


def test_the_page_has_no_inline_script_or_handler(client, earlier_store):
    save_numbered(earlier_store, 1)
    page = client.get("/").text
    # One script, the app's, at its versioned URL (webapp/assets.py).
    [script] = re.findall(r"<script[^>]*>", page)
    assert re.fullmatch(r'<script src="/static/app\.js\?v=[0-9a-f]{12}" defer>', script)
    assert not re.search(r"\son[a-z]+=", page)
    assert "style=" not in page


def test_the_page_still_renders_when_the_database_is_down():
    config = {"MONGO_URI": "mongodb://127.0.0.1:1", "MONGO_DATABASE": "sofeed", "MONGO_TIMEOUT_MS": 200}
    app = create_app({"TESTING": True, **config})
    try:
        response = app.test_client().get("/")
    finally:
        db.close(app)
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert '<p id="connection" class="connection" role="status">reconnecting…</p>' in response.text
    assert 'data-cursor="0"' in response.text


def test_the_page_says_when_a_question_was_asked(client, earlier_store):
    save_numbered(earlier_store, 1, published=datetime.now(UTC).replace(microsecond=0))
    assert ">just now</time>" in client.get("/").text
