"""The `sofeed` spider: Stack Overflow's Atom feed, read into QuestionItems."""

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import TextResponse, XmlResponse
from scrapy.selector import Selector
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.spiders import XMLFeedSpider

from sofeed.atom import (
    ATOM_NS,
    FEED_TAG,
    RANK_NS,
    complete_entries,
    declared_entities,
    mislabelled_utf8,
    read_entry,
)
from sofeed.extensions import report_of
from sofeed.items import QuestionItem
from sofeed.middlewares import FEED_META, CrawlTimeUp, FeedDeferred, SkippedForOutage
from sofeed.refusals import challenge_refusal, is_challenge, robots_refusal
from sofeed.sources import is_api_url, split_urls

# RobotsTxtMiddleware's reason for the IgnoreRequest it raises.
_ROBOTS_FORBIDDEN = "Forbidden by robots.txt"


def _a_retry_or_redirect(request):
    """Whether a request follows an earlier try of the feed, whose failure it must not hide."""
    return bool(request.meta.get("retry_times") or request.meta.get("redirect_times"))


class SofeedSpider(XMLFeedSpider):
    """Fetch each configured feed and yield one QuestionItem per entry.

    Feeds come from `-a feed_url=URL[,URL...]`, else the SOFEED_FEED_URLS
    setting, else SOFEED_DEFAULT_FEED_URL, Stack Overflow's newest questions.
    An API URL among them is left to the `stackexchange` spider.

    A runner that crawls again and again (the scheduler) can pass
    `deadline`, a time.monotonic() by which the crawl must end (see
    CrawlDeadlineMiddleware). What happened goes into the crawl's
    CrawlReport (sofeed/report.py).
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

    def __init__(self, *args, feed_url=None, deadline=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.feed_url_argument = feed_url
        self.deadline = deadline

    @property
    def report(self):
        return report_of(self.crawler)

    @property
    def feed_urls(self):
        configured = split_urls(self.feed_url_argument or self.settings.get("SOFEED_FEED_URLS"))
        return configured or [self.settings.get("SOFEED_DEFAULT_FEED_URL")]

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
        if mislabelled_utf8(response.body, response.encoding):
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
        self.report.http_status = response.status
        if response.status == 304:
            self.report.not_modified = True
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
        complete = complete_entries(response.text)
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
        report = self.report
        if failure.check(SkippedForOutage):
            return  # reported when the crawl was closed
        if failure.check(FeedDeferred):
            report.wait_until(failure.value.not_before)
            self.logger.info("feed %s: skipped, %s", url, failure.value)
            return
        if failure.check(CrawlTimeUp) and not _a_retry_or_redirect(request):
            # Never asked: this process or its database was too slow, not the feed.
            report.not_requested = True
            self.logger.warning("feed %s: not requested, the crawl's deadline passed first", url)
            return
        if failure.check(IgnoreRequest) and str(failure.value) == _ROBOTS_FORBIDDEN:
            refusal = robots_refusal(url)
            self._report_refusal(
                refusal, f"feed {url} is disallowed by its site's robots.txt for our User-Agent"
            )
        elif failure.check(HttpError):
            response = failure.value.response
            report.http_status = response.status
            if is_challenge(response.status, response.headers, response.body):
                self._report_refusal(
                    challenge_refusal(url),
                    f"feed {url}: HTTP {response.status}, a Cloudflare challenge that a crawler cannot pass",
                )
                return
            wait = request.meta.get("sofeed_not_before")
            if wait:
                report.wait_until(wait)
            later = f"; not fetching it again before {wait:%H:%M:%S} UTC" if wait else ""
            self._report_error("feed %s: HTTP %d%s", url, response.status, later)
        else:
            why = f"{failure.type.__name__}: {failure.value}" if str(failure.value) else failure.type.__name__
            self._report_error("feed %s: fetch failed: %s", url, why)

    def _report_error(self, message, *args):
        """Log a broken feed once, and keep the line in the crawl's report."""
        self.report.fail(message % args)
        self.logger.error(message, *args)

    def _report_refusal(self, refusal, what):
        """Log a feed the site refuses to crawlers, with what to do instead."""
        self.report.refuse(refusal, what)
        self.logger.error("%s; %s", what, refusal.advice)

    def _report_warning(self, url, message, *args):
        """Log something odd about a feed that was read anyway; the scheduler adds it to the crawl's line."""
        self.report.warn(message % args)
        self.logger.warning(f"feed %s: {message}", url, *args)

    def _report_empty(self, response, url):
        if is_challenge(response.status, response.headers, response.body):
            self._report_refusal(
                challenge_refusal(url),
                f"feed {url}: HTTP {response.status}, a Cloudflare challenge page instead of the feed",
            )
            return
        root = Selector(response, type="xml").root
        if root.tag == FEED_TAG:
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
