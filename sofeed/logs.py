"""What reaches the log from a crawl: each fault once, and never an API key.

The spiders log one line for a source that failed. Some of Scrapy's own
components log the same fault again (a failed robots.txt download with its
traceback, a body over DOWNLOAD_MAXSIZE), and Scrapy logs request URLs,
which for an API source carry its key. LogFilters, an extension enabled in
settings.EXTENSIONS, puts the filters below in place for `scrapy crawl` and
the scheduler alike.
"""

import logging
import re

from scrapy import signals

_KEY_IN_TEXT = re.compile(r"([?&]key=)[^&\s'\">]+")


def without_key(text):
    """text with every key=... query value replaced by key=[hidden]."""
    return _KEY_IN_TEXT.sub(r"\1[hidden]", text)


class RobotsTxtErrorFilter(logging.Filter):
    """Drop RobotsTxtMiddleware's own line for a robots.txt it could not download.

    The feed request then fails the same way and the spider reports it once;
    the robots.txt failure is still counted in the robotstxt/ stats.
    """

    def filter(self, record):
        return not record.getMessage().startswith("Error downloading")


class RefusedDownloadFilter(logging.Filter):
    """Drop Scrapy's warning about a download it gave up: the request fails with the same message.

    That is a body over DOWNLOAD_MAXSIZE (as sent, or once decompressed), or
    a connection closed before the whole body came.
    """

    MESSAGES = ("larger than download max size", "exceeded DOWNLOAD_MAXSIZE", "Got data loss in")

    def filter(self, record):
        message = record.getMessage()
        return not any(text in message for text in self.MESSAGES)


class KeyRedactingFilter(logging.Filter):
    """Hide the API key in any line that carries a URL with it.

    The API takes its key only as a query parameter, and Scrapy and its
    middlewares log request URLs (at DEBUG, on a retry, on an error). It sits
    on the log's handlers, which every line passes, whichever logger made it.
    """

    def filter(self, record):
        message = record.getMessage()
        if "key=" in message:
            record.msg, record.args = without_key(message), ()
        return True


# Scrapy's loggers whose lines the spiders report better, and the filter that drops them.
QUIETED = {
    "scrapy.downloadermiddlewares.robotstxt": RobotsTxtErrorFilter,
    "scrapy.core.downloader.handlers.http11": RefusedDownloadFilter,
    "scrapy.downloadermiddlewares.httpcompression": RefusedDownloadFilter,
}


def _add_once(target, filter_class):
    if not any(isinstance(existing, filter_class) for existing in target.filters):
        target.addFilter(filter_class())


class LogFilters:
    """Put the filters in place when a crawl is built; each is added once per logger or handler."""

    @classmethod
    def from_crawler(cls, crawler):
        for name, filter_class in QUIETED.items():
            _add_once(logging.getLogger(name), filter_class)
        # Scrapy may install its root handler after the components are built: by now it has.
        crawler.signals.connect(cls.hide_keys, signal=signals.spider_opened)
        return cls()

    @staticmethod
    def hide_keys():
        for handler in logging.getLogger().handlers:
            _add_once(handler, KeyRedactingFilter)
