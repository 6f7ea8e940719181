"""Downloader middlewares: fetch a source only when it may have changed, and on time.

SourceStateMiddleware:

It remembers, per source URL in the `sources` collection:
  etag, last_modified  sent back as If-None-Match / If-Modified-Since, so an
                       unchanged feed costs a 304 and no parsing;
  not_before           from a 429 or 503 with Retry-After: the feed is not
                       requested again before then.

Validators are saved only when the crawl finished, every question was
stored, and no source was reported broken (truncated, malformed, not a feed).
Otherwise the next crawl's answer could be a 304 for a document we never
read whole, and the questions we missed would be lost.

CrawlDeadlineMiddleware: no download outlives the crawl's deadline, and no
retry is sent that could not finish before it.

SharedRobotsTxtMiddleware: robots.txt, read once an hour per site for the
whole process instead of once per crawl.
"""

import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from pymongo.errors import PyMongoError
from scrapy import signals
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.httpobj import urlparse_cached

from sofeed.extensions import report_of, store_of
from sofeed.outage import close_crawl_for_outage

logger = logging.getLogger(__name__)

# Request.meta key that marks a request for a feed (not robots.txt) and holds its URL.
FEED_META = "sofeed_feed"
# A hostile or broken Retry-After must not silence a feed for good.
MAX_RETRY_AFTER = timedelta(hours=6)


class SkippedForOutage(IgnoreRequest):
    """A feed is not fetched because its questions could not be stored."""


class CrawlTimeUp(IgnoreRequest):
    """A request is not sent because the crawl's deadline has passed."""


class FeedDeferred(IgnoreRequest):
    """A feed is not fetched because its Retry-After time has not come."""

    def __init__(self, url, not_before):
        super().__init__(f"feed {url} asked us to wait until {not_before:%Y-%m-%d %H:%M:%S} UTC")
        self.url = url
        self.not_before = not_before


def parse_retry_after(value, now):
    """The time a Retry-After header value points to, or None if it is invalid."""
    if not value:
        return None
    text = value.decode("latin-1").strip() if isinstance(value, bytes) else value.strip()
    if text.isdigit():
        delay = timedelta(seconds=int(text[:12]))
    else:
        try:
            delay = parsedate_to_datetime(text) - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return now + min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


class SourceStateMiddleware:
    """Conditional GET and Retry-After per source, through the crawl's store."""

    def __init__(self, crawler, clock=None):
        self.crawler = crawler
        self.report = report_of(crawler)
        self.now = clock or (lambda: datetime.now(UTC))
        self.pending = {}  # source URL -> state changes to save when the crawl closes

    @classmethod
    def from_crawler(cls, crawler):
        middleware = cls(crawler)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    def process_request(self, request):
        url = request.meta.get(FEED_META)
        if url is None:
            return None
        state = self._state(url)
        not_before = state.get("not_before")
        if not_before is not None and self.now() < not_before:
            raise FeedDeferred(url, not_before)
        if state.get("etag"):
            request.headers.setdefault("If-None-Match", state["etag"])
        if state.get("last_modified"):
            request.headers.setdefault("If-Modified-Since", state["last_modified"])
        return None

    def process_response(self, request, response):
        url = request.meta.get(FEED_META)
        if url is None:
            return response
        if response.status in (429, 503):
            not_before = parse_retry_after(response.headers.get("Retry-After"), self.now())
            if not_before is not None:
                request.meta["sofeed_not_before"] = not_before
                self.pending[url] = {"not_before": not_before}
        elif response.status == 200:
            self.pending[url] = {
                "not_before": None,
                "etag": _header(response, "ETag"),
                "last_modified": _header(response, "Last-Modified"),
            }
        elif response.status == 304:
            self.pending[url] = {"not_before": None}
        return response

    def spider_closed(self, spider, reason):
        if self.report.store_error:
            # The pipeline lost the database and said so; asking it again
            # would only wait out another timeout. Nothing is remembered.
            self.pending.clear()
        clean = reason == "finished" and not self.report.failed
        try:
            for url, changes in self.pending.items():
                if not clean:
                    changes = {k: v for k, v in changes.items() if k == "not_before"}
                store_of(self.crawler).update_source_state(url, changes)
        except PyMongoError as error:
            logger.warning("source state not saved, MongoDB is unavailable: %s", error)

    def _state(self, url):
        try:
            return store_of(self.crawler).source_state(url)
        except PyMongoError as error:
            # Nothing fetched now could be stored: close the crawl at once.
            close_crawl_for_outage(self.crawler, error)
            raise SkippedForOutage(f"feed {url} not fetched: MongoDB is unavailable") from error


class CrawlDeadlineMiddleware:
    """End every download by the crawl's deadline, SOFEED_CRAWL_DEADLINE, when it has one.

    The scheduler gives each crawl a deadline below its interval, as a
    time.monotonic() value. Capping
    each request's download_timeout (robots.txt and retries included) makes a
    hanging server cost a timed-out request, not an overlapping crawl.

    A failed try is not retried when less time is left than the try took:
    the retry could only be cut off, and its "time is up" would hide the
    real failure (an HTTP 500, a timeout) from the crawl's log line. So this
    middleware sits after RetryMiddleware (550): its process_response and
    process_exception run first, and set dont_retry.
    """

    def __init__(self, deadline, clock=time.monotonic):
        self.deadline = deadline
        self.clock = clock

    @classmethod
    def from_crawler(cls, crawler):
        deadline = crawler.settings.get("SOFEED_CRAWL_DEADLINE")
        return cls(None if deadline is None else float(deadline))

    def process_request(self, request):
        remaining = self._remaining()
        if remaining is None:
            return None
        if remaining <= 0:
            raise CrawlTimeUp(f"the crawl's time is up: {request.url} not fetched")
        request.meta["download_timeout"] = min(request.meta.get("download_timeout", remaining), remaining)
        request.meta[_SENT_META] = self.clock()
        return None

    def process_response(self, request, response):
        self._no_retry_without_time(request)
        return response

    def process_exception(self, request, exception):
        self._no_retry_without_time(request)

    def _no_retry_without_time(self, request):
        remaining = self._remaining()
        sent = request.meta.get(_SENT_META)
        if remaining is not None and sent is not None and remaining < self.clock() - sent:
            request.meta["dont_retry"] = True

    def _remaining(self):
        """Seconds left before the crawl's deadline, or None if it has none."""
        return None if self.deadline is None else self.deadline - self.clock()


# Request.meta key: when CrawlDeadlineMiddleware let this try of the request go.
_SENT_META = "sofeed_sent"


# netloc -> (time.monotonic() until which it is kept, parsed robots.txt), for the process.
_ROBOTS_KEPT = {}


class SharedRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Obey robots.txt, keeping each site's for SOFEED_ROBOTSTXT_KEEP_SECONDS across crawls.

    Scrapy's middleware keeps robots.txt for one crawl. The scheduler crawls
    in one process every 30 seconds, so it would fetch robots.txt as often as
    the feed. A robots.txt that could not be fetched is not kept: the next
    crawl asks again.
    """

    def __init__(self, crawler, clock=time.monotonic):
        super().__init__(crawler)
        self.keep_seconds = crawler.settings.getfloat("SOFEED_ROBOTSTXT_KEEP_SECONDS")
        self.clock = clock

    async def robot_parser(self, request):
        netloc = urlparse_cached(request).netloc
        kept = _ROBOTS_KEPT.get(netloc)
        if kept is not None and kept[0] > self.clock():
            return kept[1]
        parser = await super().robot_parser(request)
        if parser is not None:
            _ROBOTS_KEPT[netloc] = (self.clock() + self.keep_seconds, parser)
        return parser


def _header(response, name):
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None
