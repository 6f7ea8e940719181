from datetime import UTC, datetime, timedelta

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from sofeed.extensions import StoreExtension
from sofeed.middlewares import (
    FEED_META,
    CrawlDeadlineMiddleware,
    FeedDeferred,
    SourceStateMiddleware,
    parse_retry_after,
)
from sofeed.report import CrawlReport
from tests.helpers import make_spider

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
FEED = "https://stackoverflow.com/feeds"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"120", NOW + timedelta(seconds=120)),
        ("0", NOW),
        ("Wed, 01 May 2024 12:05:00 GMT", NOW + timedelta(minutes=5)),
        ("Wed, 01 May 2024 11:00:00 GMT", NOW),  # already past: no wait
        ("999999999999999999", NOW + timedelta(hours=6)),  # capped
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(header, expected):
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize("header", [None, b"", "soon", "-5", "Mon, 99 Foo 2024"])
def test_parse_retry_after_ignores_what_is_not_a_retry_after_value(header):
    assert parse_retry_after(header, NOW) is None


@pytest.fixture
def middleware(mongo_uri, database_name):
    crawler = make_spider(MONGO_URI=mongo_uri, MONGO_DATABASE=database_name).crawler
    middleware = SourceStateMiddleware.from_crawler(crawler)
    middleware.now = lambda: NOW
    yield middleware
    crawler.get_extension(StoreExtension).close()


def feed_request():
    return Request(FEED, meta={FEED_META: FEED})


def test_a_feed_request_carries_the_remembered_validators(middleware, store):
    store.update_source_state(FEED, {"etag": '"v1"', "last_modified": "Wed, 01 May 2024 11:00:00 GMT"})
    request = feed_request()
    assert middleware.process_request(request) is None
    assert request.headers["If-None-Match"] == b'"v1"'
    assert request.headers["If-Modified-Since"] == b"Wed, 01 May 2024 11:00:00 GMT"


def test_a_request_that_is_not_for_a_feed_is_left_alone(middleware, store):
    store.update_source_state(FEED, {"etag": '"v1"'})
    request = Request("https://stackoverflow.com/robots.txt")
    assert middleware.process_request(request) is None
    assert b"If-None-Match" not in request.headers


def test_a_feed_is_not_requested_before_its_retry_after_time(middleware, store):
    store.update_source_state(FEED, {"not_before": NOW + timedelta(seconds=30)})
    with pytest.raises(FeedDeferred, match="wait until 2024-05-01 12:00:30 UTC"):
        middleware.process_request(feed_request())
    middleware.now = lambda: NOW + timedelta(seconds=31)
    assert middleware.process_request(feed_request()) is None


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (CrawlReport.lose_store, "finished"),  # a question could not be stored
        (CrawlReport.fail, "finished"),  # a feed was truncated, malformed or not a feed
        (None, "shutdown"),  # the crawl was cut short
    ],
)
def test_validators_are_not_saved_unless_the_crawl_went_cleanly(middleware, store, failure, reason):
    middleware.process_response(feed_request(), Response(FEED, status=200, headers={"ETag": '"v2"'}))
    if failure:
        failure(middleware.report, "what went wrong")
    middleware.spider_closed(None, reason)
    assert "etag" not in store.source_state(FEED)


def test_validators_of_a_clean_crawl_are_saved(middleware, store):
    response = Response(
        FEED, status=200, headers={"ETag": '"v2"', "Last-Modified": "Wed, 01 May 2024 11:00:00 GMT"}
    )
    middleware.process_response(feed_request(), response)
    middleware.spider_closed(None, "finished")
    state = store.source_state(FEED)
    assert (state["etag"], state["last_modified"]) == ('"v2"', "Wed, 01 May 2024 11:00:00 GMT")


def test_a_429_with_retry_after_is_remembered_even_when_the_crawl_failed(middleware, store):
    request = feed_request()
    middleware.process_response(request, Response(FEED, status=429, headers={"Retry-After": "90"}))
    assert request.meta["sofeed_not_before"] == NOW + timedelta(seconds=90)
    middleware.spider_closed(None, "shutdown")
    assert store.source_state(FEED)["not_before"] == NOW + timedelta(seconds=90)


def deadline_middleware(deadline, now):
    return CrawlDeadlineMiddleware(deadline, clock=lambda: now)


def test_a_download_gets_no_more_time_than_is_left_before_the_crawls_deadline():
    request = Request(FEED, meta={"download_timeout": 6})
    assert deadline_middleware(deadline=102.5, now=100.0).process_request(request) is None
    assert request.meta["download_timeout"] == 2.5


def test_a_shorter_download_timeout_is_kept():
    request = Request(FEED, meta={"download_timeout": 1})
    deadline_middleware(deadline=110.0, now=100.0).process_request(request)
    assert request.meta["download_timeout"] == 1


def test_no_request_is_sent_once_the_crawls_deadline_has_passed():
    with pytest.raises(IgnoreRequest, match="time is up"):
        deadline_middleware(deadline=99.0, now=100.0).process_request(Request(FEED))


def test_a_crawl_without_a_deadline_keeps_its_download_timeout():
    request = Request(FEED, meta={"download_timeout": 6})
    deadline_middleware(deadline=None, now=100.0).process_request(request)
    assert request.meta["download_timeout"] == 6


def sent_at_100_with_a_deadline_at_101():
    """A deadline middleware on a settable clock, and a request it let go at 100.0."""
    clock = [100.0]
    middleware = CrawlDeadlineMiddleware(101.0, clock=lambda: clock[0])
    request = Request(FEED)
    middleware.process_request(request)
    return middleware, request, clock


def test_a_failed_try_is_not_retried_when_less_time_is_left_than_it_took():
    middleware, request, clock = sent_at_100_with_a_deadline_at_101()
    clock[0] = 100.9  # the try took 0.9 s, and 0.1 s is left: a retry could only be cut off
    assert middleware.process_exception(request, TimeoutError()) is None
    assert request.meta["dont_retry"] is True


def test_a_quick_failure_with_time_left_is_still_retried():
    middleware, request, clock = sent_at_100_with_a_deadline_at_101()
    clock[0] = 100.05
    response = Response(FEED, status=500, request=request)
    assert middleware.process_response(request, response) is response
    assert "dont_retry" not in request.meta


def test_the_deadline_middleware_comes_after_the_retry_middleware_so_it_can_stop_a_retry():
    from sofeed import settings

    assert settings.DOWNLOADER_MIDDLEWARES["sofeed.middlewares.CrawlDeadlineMiddleware"] > 550


def test_the_deadline_comes_from_the_setting_the_scheduler_gives_each_crawl():
    assert (
        CrawlDeadlineMiddleware.from_crawler(make_spider(SOFEED_CRAWL_DEADLINE=123.5).crawler).deadline
        == 123.5
    )
    assert CrawlDeadlineMiddleware.from_crawler(make_spider().crawler).deadline is None
