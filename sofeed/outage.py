"""What a crawl does when MongoDB is unavailable: say so once, and stop.

Each further call would wait out the server-selection timeout again, and a
feed fetched now could not be stored. Nothing is lost by stopping: the next
crawl stores whatever the feed still holds.
"""

import logging
import re

from scrapy.utils.defer import deferred_from_coro

from sofeed.extensions import report_of

logger = logging.getLogger(__name__)

FINISH_REASON = "mongodb_unavailable"


def short_reason(error):
    """The cause in a pymongo error, without its timeouts and topology dump."""
    text = str(error).strip().split("\n", 1)[0] or type(error).__name__
    return re.split(r" \(configured timeouts|, Timeout: ", text, maxsplit=1)[0][:300]


def close_crawl_for_outage(crawler, error):
    """Log one line, keep the reason in the crawl's report, close the crawl (only the first time)."""
    report = report_of(crawler)
    if report.store_error:
        return
    report.lose_store(f"MongoDB is unavailable: {short_reason(error)}")
    logger.error(
        "MongoDB at %s is unavailable (%s); closing the crawl. "
        "The next crawl stores what the feed still holds.",
        crawler.settings["MONGO_URI"],
        short_reason(error),
    )
    if crawler.crawling:  # not while its components are tried on their own
        deferred_from_coro(crawler.engine.close_spider_async(reason=FINISH_REASON))
