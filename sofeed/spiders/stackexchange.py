"""The `stackexchange` spider: the Stack Exchange API's newest questions, read into QuestionItems.

    scrapy crawl stackexchange -a feed_url=https://api.stackexchange.com/2.3/questions?site=stackoverflow

Any URL whose path ends in /2.3/questions is an API source, on any host. Each
crawl asks for the newest questions created since the newest one already seen
(less OVERLAP_SECONDS), at most when the quota's pace allows (sofeed/quota.py),
and stores them through the same pipeline as the Atom spider, so a question
read from both sources is one document.
"""

import time
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pymongo.errors import PyMongoError
from scrapy import Request, Spider, signals
from scrapy.spidermiddlewares.httperror import HttpError

from sofeed.extensions import report_of, store_of
from sofeed.items import QuestionItem
from sofeed.logs import without_key
from sofeed.middlewares import FEED_META, CrawlTimeUp, FeedDeferred, SkippedForOutage
from sofeed.quota import QuotaState, Reading, pace
from sofeed.sources import API_PATH, DEFAULT_API_URL, is_api_url, split_urls
from sofeed.stackexchange import NotAWrapper, read_question, read_wrapper

# The newest first, with the body for the summary: what a mirror of new questions needs.
NEWEST = {"sort": "creation", "order": "desc", "pagesize": "100", "filter": "withbody"}
# fromdate starts this long before the newest question seen: one created in the same
# second as it, or committed late on the API's side, is still asked for.
OVERLAP_SECONDS = 60
# Pages of 100 followed in one crawl when has_more says more questions came since fromdate.
MAX_PAGES = 3
# A page noted open this recently (webapp/health.py notes every 30 s) means someone watches.
WATCHED_SECONDS = 90


def request_url(source, fromdate=None, key=None, page=1):
    """The source's URL with the newest-questions parameters, fromdate, page and key added."""
    parts = urlsplit(source)
    params = dict(parse_qsl(parts.query))
    params.update(NEWEST)
    params.pop("key", None)
    if fromdate is not None:
        params["fromdate"] = str(int(fromdate))
    if page > 1:
        params["page"] = str(page)
    if key:
        params["key"] = key
    return urlunsplit(parts._replace(query=urlencode(params)))


class StackExchangeSpider(Spider):
    """Fetch each configured API source and yield one QuestionItem per question.

    Sources come from `-a feed_url=URL[,URL...]` (the API URLs among them), else
    the API URLs in SOFEED_FEED_URLS, else SOFEED_DEFAULT_API_URL. The key is
    SOFEED_STACKEXCHANGE_KEY. Each source's quota and fromdate are kept in the
    store between crawls; what happened goes into the crawl's CrawlReport.
    """

    name = "stackexchange"
    custom_settings: ClassVar[dict] = {
        # The API is an interface the site offers to programs, under its own terms:
        # a daily quota and `backoff`, which the pacing honours. robots.txt governs
        # crawling pages; Stack Exchange's own (Disallow: / for unverified bots since
        # 2024) is about its HTML, and api.stackexchange.com is not crawled but called.
        "ROBOTSTXT_OBEY": False,
        # 502 and 503 from the API are throttle_violation and temporarily_unavailable,
        # which asking again at once would only make worse: the next crawl asks, paced.
        "RETRY_HTTP_CODES": [500, 504, 522, 524, 408],
    }
    # Error wrappers come with 4xx or 5xx statuses; the spider reads them itself.
    handle_httpstatus_list = tuple(range(400, 600))

    def __init__(self, *args, feed_url=None, clock=time.time, **kwargs):
        super().__init__(*args, **kwargs)
        self.feed_url_argument = feed_url
        self.clock = clock
        self.quota = {}  # source URL -> QuotaState, saved when the crawl closes
        self.newest = {}  # source URL -> newest creation_date (epoch) known, saved as its fromdate

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._save_state, signal=signals.spider_closed)
        return spider

    @property
    def store(self):
        return store_of(self.crawler)

    @property
    def report(self):
        return report_of(self.crawler)

    @property
    def key(self):
        return (self.settings.get("SOFEED_STACKEXCHANGE_KEY") or "").strip() or None

    @property
    def feed_urls(self):
        configured = split_urls(self.feed_url_argument or self.settings.get("SOFEED_FEED_URLS"))
        if not configured:
            return [self.settings.get("SOFEED_DEFAULT_API_URL") or DEFAULT_API_URL]
        return [url for url in configured if is_api_url(url)]

    async def start(self):
        sources = self.feed_urls
        if not sources:
            self._report_error(
                "no API source among the sources given: pass -a feed_url=https://api.stackexchange.com%s"
                "?site=stackoverflow",
                API_PATH,
            )
        for source in sources:
            request = self._first_request(source, len(sources))
            if request is not None:
                yield request

    def _first_request(self, source, shared_by):
        try:
            state = self.store.source_state(source)
            seen = self.store.page_last_seen()
        except PyMongoError:
            # SourceStateMiddleware meets the outage again, and closes the crawl with one line.
            return self._request(source, None, page=1)
        quota = self.quota[source] = QuotaState.from_record(state.get("quota"))
        now = self.clock()
        interval = self.settings.getfloat("SOFEED_INTERVAL", 30)
        listeners = 1 if seen is not None and now - seen < WATCHED_SECONDS else 0
        chosen = pace(quota, now, interval, listeners, sources=shared_by, keyed=self.key is not None)
        report = self.report
        report.quota_remaining = chosen.remaining
        if not chosen.due(now):
            # The scheduler looks again then: a page opened meanwhile may make it due sooner.
            report.wait_until(datetime.fromtimestamp(chosen.recheck_at(now), UTC))
            at = f"{datetime.fromtimestamp(chosen.next_at, UTC):%H:%M:%S}"
            self.logger.info("API source %s: next request at %s UTC (%s)", source, at, chosen.reason)
            return None
        fromdate = state.get("fromdate")
        if fromdate is not None:
            self.newest[source] = fromdate
        since = None if fromdate is None else fromdate - OVERLAP_SECONDS
        return self._request(source, since, page=1)

    def _request(self, source, fromdate, page):
        return Request(
            request_url(source, fromdate, self.key, page),
            meta={FEED_META: source, "sofeed_fromdate": fromdate, "sofeed_page": page},
            callback=self.parse,
            errback=self.source_failed,
            dont_filter=True,
        )

    def parse(self, response):
        source = response.meta[FEED_META]
        self.report.http_status = response.status
        try:
            wrapper = read_wrapper(response.body)
        except NotAWrapper as error:
            if response.status != 200:
                self._report_http_error(source, response)
            else:
                self._report_error("API source %s: the answer is %s; nothing stored", source, error)
            return
        self._observe(source, wrapper)
        if wrapper.error is not None:
            error = wrapper.error
            self._report_error(
                "API source %s: %s (error_id %s, HTTP %d): %s",
                source,
                error.error_name,
                error.error_id,
                response.status,
                error.error_message,
            )
            return
        questions = [read_question(question) for question in wrapper.items]
        created = [q["published"].timestamp() for q in questions if q["published"] is not None]
        if created:
            self.newest[source] = max(self.newest.get(source, 0), *created)
        if not questions:
            self.logger.info("API source %s: no new questions", source)
        # Oldest first, as the Atom spider stores a feed: the newest gets the latest `fetched`.
        for question in sorted(questions, key=lambda q: q["published"] or datetime.min.replace(tzinfo=UTC)):
            yield QuestionItem(question)
        page = response.meta.get("sofeed_page", 1)
        if wrapper.has_more and page < MAX_PAGES and not wrapper.backoff:
            yield self._request(source, response.meta.get("sofeed_fromdate"), page + 1)
        elif wrapper.has_more:
            self._report_warning(
                source,
                "more questions came since the last crawl than %d pages hold; the oldest of them are skipped",
                page,
            )

    def _observe(self, source, wrapper):
        quota = self.quota.setdefault(source, QuotaState())
        quota.observe(Reading(self.clock(), wrapper.quota_max, wrapper.quota_remaining, wrapper.backoff))
        report = self.report
        if wrapper.quota_remaining is not None:
            report.quota_remaining = wrapper.quota_remaining
        if wrapper.quota_max is not None:
            report.quota_max = wrapper.quota_max
        if wrapper.backoff:
            report.wait_until(datetime.fromtimestamp(quota.backoff_until, UTC))
            self.logger.info("API source %s: the API asks for a backoff of %d s", source, wrapper.backoff)

    def source_failed(self, failure):
        """Log one clear line for a source that could not be fetched."""
        request = failure.request
        source = request.meta.get(FEED_META, request.url)
        if failure.check(SkippedForOutage):
            return  # reported when the crawl was closed
        if failure.check(FeedDeferred):
            self.report.wait_until(failure.value.not_before)
            self.logger.info("API source %s: skipped, %s", source, failure.value)
            return
        if failure.check(CrawlTimeUp) and not request.meta.get("retry_times"):
            self.report.not_requested = True
            self.logger.warning("API source %s: not requested, the crawl's deadline passed first", source)
            return
        if failure.check(HttpError):
            self._report_http_error(source, failure.value.response)
            return
        why = f"{failure.type.__name__}: {failure.value}" if str(failure.value) else failure.type.__name__
        self._report_error("API source %s: fetch failed: %s", source, without_key(why))

    def _report_http_error(self, source, response):
        wait = response.request.meta.get("sofeed_not_before") if response.request else None
        self.report.http_status = response.status
        if wait:
            self.report.wait_until(wait)
        later = f"; not asking again before {wait:%H:%M:%S} UTC" if wait else ""
        self._report_error(
            "API source %s: HTTP %d without the API's error wrapper%s", source, response.status, later
        )

    def _report_error(self, message, *args):
        """Log a failed source once, and keep the line in the crawl's report."""
        self.report.fail(message % args)
        self.logger.error(message, *args)

    def _report_warning(self, source, message, *args):
        self.report.warn(message % args)
        self.logger.warning(f"API source %s: {message}", source, *args)

    def _save_state(self, spider, reason):
        """Keep each source's quota; move its fromdate on only after a clean crawl."""
        report = self.report
        clean = reason == "finished" and not report.failed
        if report.store_error:
            return
        try:
            for source, quota in self.quota.items():
                changes = {"quota": quota.record()}
                if clean and self.newest.get(source) is not None:
                    changes["fromdate"] = int(self.newest[source])
                self.store.update_source_state(source, changes)
        except PyMongoError as error:
            self.logger.warning("API state not saved, MongoDB is unavailable: %s", error)
