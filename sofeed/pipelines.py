"""Item pipelines: drop entries that cannot be stored whole, store the rest.

Validation runs first (priority 100), storage second (300); see settings.py.
"""

import logging

from itemadapter import ItemAdapter
from pymongo.errors import PyMongoError
from scrapy.exceptions import DropItem

from sofeed.outage import close_crawl_for_outage

logger = logging.getLogger(__name__)


def missing_parts(question):
    """Why a question cannot be stored, as a stats-key-friendly word, or None."""
    if not question.get("entry_id") and not question.get("link"):
        return "no_id_or_link"
    if not question.get("title"):
        return "no_title"
    return None


class ValidationPipeline:
    """Drop an entry without an id and a link, or without a title."""

    def __init__(self, stats):
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.stats)

    def process_item(self, item):
        question = ItemAdapter(item)
        reason = missing_parts(question)
        if reason is None:
            return item
        self.stats.inc_value("sofeed/invalid")
        self.stats.inc_value(f"sofeed/invalid/{reason}")
        where = question.get("entry_id") or question.get("link") or "an entry without id or link"
        raise DropItem(f"invalid entry ({reason.replace('_', ' ')}): {where}")


class MongoPipeline:
    """Store each question once, refreshing what can change on later sightings.

    A question already stored is a duplicate: it is dropped at DEBUG level
    after its mutable fields are refreshed, because every crawl sees most of
    the feed again. The crawl goes through the whole feed; stopping at the
    first duplicate would lose the new questions behind an old one that
    reappeared, since the feed is ordered by activity.
    """

    def __init__(self, crawler):
        self.crawler = crawler
        self.stats = crawler.stats
        self.store = None
        self.unavailable = False

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def open_spider(self):
        """Use the spider's store, which the spider closes (or its runner does).

        No database call happens here: closing the crawl from open_spider,
        before the engine has opened it, breaks Scrapy's own stats. The first
        item finds out whether the server answers.
        """
        try:
            self.store = self.crawler.spider.store
        except PyMongoError as error:  # a malformed MONGO_URI
            self._give_up(error)

    def process_item(self, item):
        if self.unavailable:
            raise DropItem("not stored: MongoDB is unavailable", log_level="DEBUG")
        question = ItemAdapter(item)
        try:
            self.store.ensure_indexes()
            is_new = self.store.save_question(question)
        except PyMongoError as error:
            self._give_up(error)
            raise DropItem("not stored: MongoDB is unavailable", log_level="DEBUG") from error
        if is_new:
            self.stats.inc_value("sofeed/new")
            return item
        self.stats.inc_value("sofeed/duplicate")
        raise DropItem(f"duplicate question {question.get('entry_id')}", log_level="DEBUG")

    def _give_up(self, error):
        self.unavailable = True
        close_crawl_for_outage(self.crawler, error)
