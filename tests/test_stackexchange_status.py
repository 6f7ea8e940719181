"""Each API source's remaining quota, from the crawl's report to its log line, /status and /healthz."""

import time
from datetime import UTC, datetime, timedelta

from sofeed.report import CrawlReport
from sofeed.scheduling.outcome import OK, CrawlOutcome
from tests.test_webapp_health import record_crawl

API = "http://127.0.0.1:8766/2.3/questions?site=stackoverflow"


def test_the_crawl_line_and_record_carry_the_api_quota():
    now = datetime.now(UTC)
    report = CrawlReport(http_status=200, new=2, quota_remaining=287, quota_max=300)
    outcome = CrawlOutcome.from_report(API, report, "finished", now, now)
    assert outcome.outcome == OK
    assert "2 new, 0 duplicate, 0 invalid, API quota 287/300 left" in outcome.line()
    assert (outcome.record()["quota_remaining"], outcome.record()["quota_max"]) == (287, 300)


def test_an_atom_feeds_line_says_nothing_of_quota():
    now = datetime.now(UTC)
    outcome = CrawlOutcome.from_report("http://x/feeds", CrawlReport(http_status=200), "finished", now, now)
    assert "quota" not in outcome.line()
    assert outcome.record()["quota_remaining"] is None


def test_status_and_healthz_show_each_api_sources_remaining_quota(client, store):
    now = datetime.now(UTC)
    record_crawl(store, now - timedelta(seconds=5), feed=API, quota_remaining=287, quota_max=300)
    record_crawl(store, now - timedelta(seconds=2))  # an Atom feed, crawled last
    expected = [{"feed": API, "quota_remaining": 287, "quota_max": 300}]
    assert client.get("/healthz").json["api_quota"] == expected
    assert client.get("/status").json["api_quota"] == expected


def test_status_notes_an_open_page_for_api_pacing_at_most_every_30_s(client, store):
    before = time.time()
    client.get("/status")
    seen = store.page_last_seen()
    assert before <= seen <= time.time()
    client.get("/status")
    assert store.page_last_seen() == seen
