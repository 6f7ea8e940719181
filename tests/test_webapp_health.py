import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import question_fields
from webapp import create_app, db
from webapp.health import ago

FEED = "http://127.0.0.1:8765/feeds"


def record_crawl(store, finished, feed=FEED, **changes):
    """A crawl status as the scheduler writes it."""
    status = {
        "started": finished - timedelta(seconds=2),
        "finished": finished,
        "outcome": "ok",
        "ok": True,
        "http_status": 200,
        "new": 3,
        "duplicate": 27,
        "invalid": 0,
        "error": None,
        "next_run": finished + timedelta(seconds=30),
        "host": "web-1",
        "pid": 4242,
        **changes,
    }
    store.record_crawl(feed, status)
    return status


def hold_scheduler_lease(store, now, ttl=timedelta(seconds=90)):
    held, _ = store.hold_lease("scheduler", "web-1:4242:abcd", ttl, now, {"host": "web-1", "pid": 4242})
    assert held


def now_ms():
    """Now, at the millisecond precision MongoDB keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def down_app():
    """The app on a port where no database answers, giving up after 0.2 s."""
    config = {"MONGO_URI": "mongodb://127.0.0.1:1", "MONGO_DATABASE": "sofeed", "MONGO_TIMEOUT_MS": 200}
    return create_app({"TESTING": True, **config})


def test_healthz_reports_the_database_the_last_crawl_and_the_scheduler(client, store):
    now = now_ms()
    record_crawl(store, now - timedelta(minutes=10), feed="http://127.0.0.1:8765/older")
    status = record_crawl(store, now - timedelta(seconds=20))
    hold_scheduler_lease(store, now)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["database"]["ok"] is True
    assert body["database"]["ping_ms"] >= 0
    crawl = body["last_crawl"]
    assert crawl["feed"] == FEED
    assert crawl["finished"] == round(status["finished"].timestamp(), 3)
    assert 19 <= crawl["age_seconds"] <= 60
    assert (crawl["outcome"], crawl["ok"], crawl["new"], crawl["host"]) == ("ok", True, 3, "web-1")
    scheduler = body["scheduler"]
    assert (scheduler["holder"], scheduler["host"], scheduler["pid"]) == ("web-1:4242:abcd", "web-1", 4242)
    assert scheduler["active"] is True
    assert scheduler["expires"] == round((now + timedelta(seconds=90)).timestamp(), 3)


def test_healthz_of_a_database_without_crawls_or_scheduler_says_so(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["last_crawl"] is None
    assert response.json["scheduler"] is None


def test_healthz_says_the_scheduler_is_inactive_once_its_lease_expired(client, store):
    hold_scheduler_lease(store, datetime.now(UTC) - timedelta(minutes=5))
    assert client.get("/healthz").json["scheduler"]["active"] is False


@pytest.fixture
def down_client():
    """A test client of an app whose database does not answer."""
    app = down_app()
    yield app.test_client()
    db.close(app)


def test_healthz_answers_503_json_when_the_database_is_unreachable(down_client):
    response = down_client.get("/healthz")
    assert response.status_code == 503
    assert response.json["database"] == {"ok": False}
    assert response.json["error"].startswith("the database is unavailable")


def test_status_reports_count_last_and_next_crawl_and_scheduler(client, store, earlier_store):
    for n in range(3):
        earlier_store.save_question(question_fields(entry_id=f"https://stackoverflow.com/q/{n}"))
    now = now_ms()
    record_crawl(store, now - timedelta(seconds=5), next_run=now + timedelta(seconds=25))
    # A feed crawled before, and no longer: its next_run is long past.
    stale = now - timedelta(minutes=20)
    record_crawl(store, stale, feed="http://127.0.0.1:40001/feeds", next_run=stale + timedelta(seconds=30))
    hold_scheduler_lease(store, now)
    before = time.time()
    response = client.get("/status")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["questions"] == 3
    assert body["last_crawl"]["feed"] == FEED
    assert body["next_crawl"] == round((now + timedelta(seconds=25)).timestamp(), 3)
    assert body["scheduler"]["active"] is True
    assert before - 1 <= body["now"] <= time.time() + 1
    assert 0 <= body["snapshot_age_seconds"] < 1  # re-read for this request


def test_status_answers_503_json_when_the_database_is_unreachable(down_client):
    response = down_client.get("/status")
    assert response.status_code == 503
    assert set(response.json) == {"error"}


def test_ago_reads_like_the_page():
    assert [ago(1000 - seconds, 1000) for seconds in (3, 42, 150, 7300, 200000)] == [
        "just now",
        "42 s ago",
        "2 min ago",
        "2 h ago",
        "2 d ago",
    ]
    assert ago(None, 1000) == ""
