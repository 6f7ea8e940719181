"""GET /metrics, parsed with prometheus_client's own parser: the web app's counters and the scheduler's."""

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import save_days_ago

FEED = "https://stackoverflow.com/feeds"


def scrape(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def crawl_record(outcome, finished, new=0, duplicate=0, invalid=0, **more):
    ok = outcome in ("ok", "not_modified", "deferred")
    started = finished - timedelta(seconds=1)
    return (
        dict(
            started=started,
            finished=finished,
            outcome=outcome,
            ok=ok,
            new=new,
            duplicate=duplicate,
            invalid=invalid,
        )
        | more
    )


def test_metrics_count_crawls_by_feed_and_outcome_and_the_questions_they_saw(client, store):
    now = datetime.now(UTC)
    store.record_crawl(FEED, crawl_record("ok", now - timedelta(seconds=90), new=3, duplicate=27))
    store.record_crawl(FEED, crawl_record("ok", now - timedelta(seconds=60), new=1, duplicate=29, invalid=2))
    store.record_crawl(FEED, crawl_record("failed", now - timedelta(seconds=30)))

    samples = scrape(client)

    assert value(samples, "sofeed_crawls_total", source=FEED, outcome="ok") == 2
    assert value(samples, "sofeed_crawls_total", source=FEED, outcome="failed") == 1
    assert value(samples, "sofeed_questions_total", source=FEED, kind="new") == 4
    assert value(samples, "sofeed_questions_total", source=FEED, kind="duplicate") == 56
    assert value(samples, "sofeed_questions_total", source=FEED, kind="invalid") == 2
    # The failed crawl is the latest, but the last good one was a minute ago.
    assert 60 <= value(samples, "sofeed_seconds_since_last_good_crawl", source=FEED) < 120


def test_metrics_report_the_api_quota_only_when_a_crawl_recorded_one(client, store):
    store.record_crawl(FEED, crawl_record("ok", datetime.now(UTC)))
    assert ("sofeed_api_quota_remaining", (("source", FEED),)) not in scrape(client)
    api = "https://api.stackexchange.com/2.3/questions"
    store.record_crawl(api, crawl_record("ok", datetime.now(UTC), quota_remaining=9876))
    assert value(scrape(client), "sofeed_api_quota_remaining", source=api) == 9876


def test_metrics_report_the_stored_questions_and_the_last_prune_once_there_was_one(client, store):
    save_days_ago(store, 40, range(2))
    save_days_ago(store, 1, range(2, 5))
    samples = scrape(client)
    assert value(samples, "sofeed_questions_stored") == 5
    assert ("sofeed_seconds_since_last_prune", ()) not in samples

    now = datetime.now(UTC)
    store.prune_questions(now - timedelta(days=30), now - timedelta(seconds=90))
    samples = scrape(client)
    assert value(samples, "sofeed_questions_stored") == 3
    assert 90 <= value(samples, "sofeed_seconds_since_last_prune") < 150


def test_metrics_count_update_requests_by_status_and_time_them(client):
    before = scrape(client)
    for _ in range(3):
        assert client.get("/update?timestamp=0").status_code == 200
    assert client.get("/update?timestamp=abc").status_code == 400

    after = scrape(client)

    ok = value(after, "sofeed_update_requests_total", status="200") - value(
        before, "sofeed_update_requests_total", status="200"
    )
    bad = value(after, "sofeed_update_requests_total", status="400") - value(
        before, "sofeed_update_requests_total", status="400"
    )
    assert (ok, bad) == (3, 1)
    timed = value(after, "sofeed_update_seconds_count") - value(before, "sofeed_update_seconds_count")
    assert timed == 4


def test_metrics_count_open_streams_while_they_last(app, client):
    before = value(scrape(client), "sofeed_open_streams")
    response = client.get("/events", buffered=False)
    assert response.status_code == 200
    next(response.response)  # the stream has started
    assert value(scrape(client), "sofeed_open_streams") == before + 1
    response.close()
    assert value(scrape(client), "sofeed_open_streams") == before


def test_metrics_count_failed_database_refreshes(mongo_uri):
    from webapp import create_app, db

    app = create_app({"TESTING": True, "MONGO_URI": "mongodb://127.0.0.1:1", "MONGO_TIMEOUT_MS": 200})
    client = app.test_client()
    try:
        before = value(scrape(client), "sofeed_database_refresh_failures_total")
        assert client.get("/update").status_code == 503
        assert value(scrape(client), "sofeed_database_refresh_failures_total") == before + 1
    finally:
        db.close(app)


def test_the_page_links_its_static_files_by_content_version(client):
    html = client.get("/").get_data(as_text=True)
    assert "/static/app.js?v=" in html
    assert "/static/style.css?v=" in html
