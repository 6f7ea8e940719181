"""The `sofeed` spider: Stack Overflow's Atom feed, read into QuestionItems."""

import codecs
import logging
import re

from scrapy import Request, signals
from scrapy.exceptions import IgnoreRequest
from scrapy.http import TextResponse, XmlResponse
from scrapy.selector import Selector
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.spiders import XMLFeedSpider

from sofeed.atom import ATOM_NS, RANK_NS, read_entry
from sofeed.items import QuestionItem
from sofeed.middlewares import FEED_META, CrawlTimeUp, FeedDeferred, StoreUnavailable
from sofeed.spiders.stackexchange import is_api_url
from sofeed.store import Store

DEFAULT_FEED_URL = "https://stackoverflow.com/feeds"

_FEED_TAG = f"{{{ATOM_NS}}}feed"
# An entry's end tag, with or without a namespace prefix.
_ENTRY_END = re.compile(r"</(?:[\w.-]+:)?entry\s*>")
# RobotsTxtMiddleware's reason for the IgnoreRequest it raises.
_ROBOTS_FORBIDDEN = "Forbidden by robots.txt"
# An entity declaration in a document's DTD.
_ENTITY_DECLARATION = re.compile(r"<!ENTITY\s")
# The first element's start tag: what comes before it is the prolog, DTD included.
_FIRST_ELEMENT = re.compile(r"<[^?!]")


class RobotsTxtErrorFilter(logging.Filter):
    """Keep failed robots.txt downloads out of the log.

    When a feed's host cannot be reached, RobotsTxtMiddleware logs its own
    failure with a traceback, and then the feed request fails the same way.
    The spider reports the feed once, in feed_failed; the robots.txt failure
    is still counted in the robotstxt/exception_count stats.
    """

    def filter(self, record):
        return not record.getMessage().startswith("Error downloading")


class RefusedDownloadFilter(logging.Filter):
    """Keep Scrapy's warnings about a download it gave up out of the log.

    A body over DOWNLOAD_MAXSIZE (as sent, or once decompressed) and a
    connection closed before the whole body came are each logged by Scrapy
    as a warning, and then fail the request with the same message, which
    feed_failed reports: without this filter a crawl would log the fault twice.
    """

    MESSAGES = ("larger than download max size", "exceeded DOWNLOAD_MAXSIZE", "Got data loss in")

    def filter(self, record):
        message = record.getMessage()
        return not any(text in message for text in self.MESSAGES)


# Scrapy's loggers whose lines the spider reports better, and the filter that drops them.
_QUIETED = {
    "scrapy.downloadermiddlewares.robotstxt": RobotsTxtErrorFilter,
    "scrapy.core.downloader.handlers.http11": RefusedDownloadFilter,
    "scrapy.downloadermiddlewares.httpcompression": RefusedDownloadFilter,
}


def _quiet_what_the_spider_reports():
    for name, filter_class in _QUIETED.items():
        quieted = logging.getLogger(name)
        if not any(isinstance(f, filter_class) for f in quieted.filters):
            quieted.addFilter(filter_class())


def mislabelled_utf8(response):
    """Whether a response that declares another encoding is, in fact, UTF-8.

    Bytes above 0x7F that decode as UTF-8 are UTF-8: text in Latin-1 or
    cp1252 almost never forms valid multi-byte sequences. A body without such
    bytes reads the same in any ASCII-compatible encoding, so it is left alone.
    """
    if codecs.lookup(response.encoding).name == "utf-8" or response.body.isascii():
        return False
    try:
        response.body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def declared_entities(text):
    """How many entities the document's DTD declares (never expanded: see atom.py)."""
    first_element = _FIRST_ELEMENT.search(text)
    prolog = text[: first_element.start()] if first_element else text
    return len(_ENTITY_DECLARATION.findall(prolog))


def _a_retry_or_redirect(request):
    """Whether a request follows an earlier try of the feed, whose failure it must not hide."""
    return bool(request.meta.get("retry_times") or request.meta.get("redirect_times"))


def split_urls(value):
    """Feed URLs from a comma-separated string or a list."""
    if isinstance(value, str):
        value = value.split(",")
    return [url.strip() for url in value or () if url.strip()]


class SofeedSpider(XMLFeedSpider):
    """Fetch each configured feed and yield one QuestionItem per entry.

    Feeds come from `-a feed_url=URL[,URL...]`, else the SOFEED_FEED_URLS
    setting, else Stack Overflow's newest-questions feed.

    A runner that crawls again and again in one process (the scheduler) can
    pass `store`, one shared database client, and `deadline`, a
    time.monotonic() by which the crawl must end (see CrawlDeadlineMiddleware).
    The stats say how the crawl went: `sofeed/http_status`, the counts, and
    `sofeed/error`, the line logged for a failure.
    """

    name = "sofeed"
    # Stack Overflow declares Atom as the default namespace, and the default
    # "iternodes" iterator finds no <entry> in such a document: "xml" with a
    # registered prefix does.
    iterator = "xml"
    itertag = "atom:entry"
    namespaces = (("atom", ATOM_NS), ("re", RANK_NS))
    # A 304 Not Modified reaches the spider, which treats it as "nothing new".
    handle_httpstatus_list = (304,)

    def __init__(self, *args, feed_url=None, store=None, deadline=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.feed_url_argument = feed_url
        self.deadline = deadline
        self._store = store
        self._owns_store = False
        _quiet_what_the_spider_reports()

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        # After spider_closed, where FeedStateMiddleware still saves state.
        crawler.signals.connect(spider._close_own_store, signal=signals.engine_stopped)
        return spider

    @property
    def store(self):
        """The store the pipeline and middlewares share: given, or opened on first use."""
        if self._store is None:
            settings = self.settings
            self._store = Store.connect(
                settings["MONGO_URI"], settings["MONGO_DATABASE"], settings.getint("MONGO_TIMEOUT_MS")
            )
            self._owns_store = True
        return self._store

    def _close_own_store(self):
        if self._owns_store:
            self._store.close()

    @property
    def feed_urls(self):
        configured = self.feed_url_argument or self.settings.get("SOFEED_FEED_URLS")
        return split_urls(configured) or [DEFAULT_FEED_URL]

    async def start(self):
        for url in self.feed_urls:
            if is_api_url(url):
                self.logger.info("%s is an API source: `scrapy crawl stackexchange` reads it", url)
                continue
            yield Request(url, meta={FEED_META: url}, errback=self.feed_failed, dont_filter=True)

    def adapt_response(self, response):
        """Give XMLFeedSpider text to parse even for a 304 or a binary body, in the right encoding."""
        if not isinstance(response, TextResponse):
            return response.replace(cls=XmlResponse)
        if mislabelled_utf8(response):
            url = response.meta.get(FEED_META, response.url)
            self._report_warning(
                url,
                "the response says its encoding is %s, but the body is UTF-8; read as UTF-8",
                response.encoding,
            )
            return response.replace(encoding="utf-8")
        return response

    def parse_nodes(self, response, nodes):
        """Yield the entries of a feed, or report why the response is not one."""
        url = response.meta.get(FEED_META, response.url)
        self.crawler.stats.set_value("sofeed/http_status", response.status)
        if response.status == 304:
            self.crawler.stats.inc_value("sofeed/not_modified")
            self.logger.info("feed %s: 304 Not Modified, nothing new", url)
            return
        entities = declared_entities(response.text)
        if entities:
            self._report_warning(
                url,
                "its DTD declares %d entit%s, and entity references are never expanded",
                entities,
                "y" if entities == 1 else "ies",
            )
        # Entry end tags in the text tell how many entries the document holds
        # whole, whatever the recovering parser made of it.
        complete = len(_ENTRY_END.findall(response.text))
        if not nodes and not complete:
            self._report_empty(response, url)
            return
        if complete < len(nodes):
            # Cut off: the parser closed the last entry itself.
            self._report_error(
                "feed %s: the document is truncated; storing its %d complete entries, skipping %d partial",
                url,
                complete,
                len(nodes) - complete,
            )
        elif complete > len(nodes):
            # The parser gave up part-way, as libxml2 does at an entity bomb.
            self._report_error(
                "feed %s: the document is malformed; the parser read %d of its %d entries",
                url,
                len(nodes),
                complete,
            )
        # Oldest first: each question is stamped `fetched` as it is stored, and
        # the newest of a crawl must get the latest stamp, to top the page.
        yield from super().parse_nodes(response, nodes[:complete][::-1])

    def parse_node(self, response, selector):
        return QuestionItem(read_entry(selector.root, response.url))

    def feed_failed(self, failure):
        """Log one clear line for a feed that could not be fetched."""
        request = failure.request
        url = request.meta.get(FEED_META, request.url)
        if failure.check(StoreUnavailable):
            return  # reported when the crawl was closed
        if failure.check(FeedDeferred):
            self.crawler.stats.set_value("sofeed/not_before", failure.value.not_before)
            self.logger.info("feed %s: skipped, %s", url, failure.value)
            return
        if failure.check(CrawlTimeUp) and not _a_retry_or_redirect(request):
            # Never asked: this process or its database was too slow, not the feed.
            self.crawler.stats.set_value("sofeed/not_requested", 1)
            self.logger.warning("feed %s: not requested, the crawl's deadline passed first", url)
            return
        if failure.check(IgnoreRequest) and str(failure.value) == _ROBOTS_FORBIDDEN:
            self._report_error(
                "feed %s is disallowed by its site's robots.txt for our User-Agent; "
                "set ROBOTSTXT_OBEY=False (scrapy crawl sofeed -s ROBOTSTXT_OBEY=False) "
                "to fetch it anyway",
                url,
            )
        elif failure.check(HttpError):
            response = failure.value.response
            wait = request.meta.get("sofeed_not_before")
            self.crawler.stats.set_value("sofeed/http_status", response.status)
            if wait:
                self.crawler.stats.set_value("sofeed/not_before", wait)
            later = f"; not fetching it again before {wait:%H:%M:%S} UTC" if wait else ""
            self._report_error("feed %s: HTTP %d%s", url, response.status, later)
        else:
            why = f"{failure.type.__name__}: {failure.value}" if str(failure.value) else failure.type.__name__
            self._report_error("feed %s: fetch failed: %s", url, why)

    def _report_error(self, message, *args):
        """Log a broken feed once, and keep the line in the stats for the scheduler."""
        self.crawler.stats.inc_value("sofeed/feed_error")
        self.crawler.stats.set_value("sofeed/error", message % args)
        self.logger.error(message, *args)

    def _report_warning(self, url, message, *args):
        """Log something odd about a feed that was read anyway; the scheduler adds it to the crawl's line."""
        stats = self.crawler.stats
        earlier = stats.get_value("sofeed/warning")
        stats.set_value("sofeed/warning", f"{earlier}; {message % args}" if earlier else message % args)
        self.logger.warning(f"feed %s: {message}", url, *args)

    def _report_empty(self, response, url):
        root = Selector(response, type="xml").root
        if root.tag == _FEED_TAG:
            self.logger.info("feed %s: the feed has no entries", url)
            return
        content_type = response.headers.get("Content-Type", b"").decode("latin-1") or "none"
        what = f"root element <{root.tag}>" if response.body.strip() else "an empty body"
        self._report_error(
            "feed %s: not an Atom feed (HTTP %d, Content-Type %s, %s); nothing stored",
            url,
            response.status,
            content_type,
            what,
        )
