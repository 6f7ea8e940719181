"""What the components of one crawl share: its database handle and its report.

Both are crawler-level extensions (settings.EXTENSIONS), built from plain
settings before the spider's components, which find them with
crawler.get_extension (store_of, report_of).
"""

from scrapy import signals

from sofeed.report import CrawlReport
from sofeed.store import SHARED


class StoreExtension:
    """The crawl's Store: opened on first use, from MONGO_URI, MONGO_DATABASE and MONGO_TIMEOUT_MS.

    It comes from the process's SHARED stores, so the scheduler's crawls
    borrow the client it holds; it is given back when the engine stops,
    after spider_closed, when the components save their state.
    """

    def __init__(self, uri, database, timeout_ms):
        self.uri, self.database, self.timeout_ms = uri, database, timeout_ms
        self._store = None

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        extension = cls(
            settings["MONGO_URI"], settings["MONGO_DATABASE"], settings.getint("MONGO_TIMEOUT_MS")
        )
        crawler.signals.connect(extension.close, signal=signals.engine_stopped)
        return extension

    @property
    def store(self):
        """The Store; a malformed MONGO_URI raises ConfigurationError, a PyMongoError like an outage."""
        if self._store is None:
            self._store = SHARED.acquire(self.uri, self.database, self.timeout_ms)
        return self._store

    def close(self):
        if self._store is not None:
            SHARED.release(self._store)
            self._store = None


class CrawlReporter:
    """The crawl's CrawlReport; its counts also go into Scrapy's stats, for `scrapy crawl`'s dump."""

    def __init__(self, stats):
        self.stats = stats
        self.report = CrawlReport()

    @classmethod
    def from_crawler(cls, crawler):
        extension = cls(crawler.stats)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_closed(self):
        for name, value in self.report.counts().items():
            if value:
                self.stats.set_value(name, value)


def store_of(crawler):
    """The Store of a crawl (opened now if it is not yet)."""
    return crawler.get_extension(StoreExtension).store


def report_of(crawler):
    """The CrawlReport of a crawl."""
    return crawler.get_extension(CrawlReporter).report
