"""The default source: the feed, the API while the feed is refused, and the feed again a day later."""

from datetime import UTC, datetime

from sofeed.refusals import robots_refusal
from sofeed.report import CrawlReport
from sofeed.scheduling.default_source import DefaultSource
from sofeed.scheduling.outcome import CrawlOutcome

FEED = "https://stackoverflow.com/feeds"
API = "https://api.stackexchange.com/2.3/questions?site=stackoverflow"
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()


def crawled(url, refused=False):
    report = CrawlReport(http_status=200)
    if refused:
        report.refuse(robots_refusal(url), f"feed {url} is disallowed by its site's robots.txt")
    when = datetime.fromtimestamp(NOW, UTC)
    return CrawlOutcome.from_report(url, report, "finished", when, when)


def test_the_feed_is_read_until_it_is_refused():
    source = DefaultSource(FEED, API)
    assert source.current(NOW) == FEED
    assert source.observe(crawled(FEED), NOW) is None
    assert source.current(NOW + 30) == FEED
    assert source.via(FEED) is None


def test_a_refused_feed_switches_to_the_api_once_and_says_why():
    source = DefaultSource(FEED, API)
    line = source.observe(crawled(FEED, refused=True), NOW)
    assert line.startswith(f"the default feed {FEED} is refused (robots.txt); mirroring Stack Overflow")
    assert "trying the feed again at 2026-03-05 12:00 UTC" in line
    assert source.current(NOW + 30) == API
    assert source.via(API) == f"through the Stack Exchange API: the feed {FEED} is refused (robots.txt)"


def test_the_feed_is_tried_again_a_day_later_and_kept_if_it_can_be_read():
    source = DefaultSource(FEED, API, retry_feed_seconds=86400)
    source.observe(crawled(FEED, refused=True), NOW)
    assert source.current(NOW + 86399) == API
    assert source.current(NOW + 86400) == FEED
    assert source.observe(crawled(FEED), NOW + 86400).endswith("mirroring it instead of the API")
    assert source.current(NOW + 86430) == FEED


def test_a_feed_still_refused_a_day_later_says_nothing_new_and_waits_another_day():
    source = DefaultSource(FEED, API, retry_feed_seconds=86400)
    source.observe(crawled(FEED, refused=True), NOW)
    assert source.observe(crawled(FEED, refused=True), NOW + 86400) is None
    assert source.current(NOW + 86400 + 60) == API
    assert source.current(NOW + 2 * 86400) == FEED


def test_the_api_crawls_never_switch_the_source():
    source = DefaultSource(FEED, API)
    source.observe(crawled(FEED, refused=True), NOW)
    assert source.observe(crawled(API), NOW + 30) is None
    assert source.current(NOW + 60) == API
