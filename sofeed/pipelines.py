"""Item pipelines: drop entries that cannot be stored whole, store the rest.

Validation runs first (priority 100), storage second (300); see settings.py.
QuestionLookAhead, a spider middleware, lets the storage pipeline look a
whole feed's questions up in one query before it stores them one by one.
"""

import logging

from itemadapter import ItemAdapter
from pymongo.errors import PyMongoError
from scrapy.exceptions import DropItem

from sofeed.extensions import report_of, store_of
from sofeed.items import QuestionItem
from sofeed.outage import close_crawl_for_outage
from sofeed.store import question_key

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

    def __init__(self, stats, report):
        self.stats = stats
        self.report = report

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.stats, report_of(crawler))

    def process_item(self, item):
        question = ItemAdapter(item)
        reason = missing_parts(question)
        if reason is None:
            return item
        self.report.invalid += 1
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
        self.report = report_of(crawler)
        self.store = None
        self.unavailable = False
        # _id -> its copy in `recent` (None: not there), for the questions looked up ahead.
        self.known = {}

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def open_spider(self):
        """Open the crawl's store; a malformed MONGO_URI closes the crawl at the first item.

        No database call happens here: closing the crawl from open_spider,
        before the engine has opened it, breaks Scrapy's own stats. The first
        item finds out whether the server answers.
        """
        try:
            self.store = store_of(self.crawler)
        except PyMongoError as error:
            self.unavailable = error

    def look_up(self, questions):
        """Look a feed's questions up in `recent` together, ahead of storing them."""
        if self.unavailable or self.store is None:
            return
        keys = [question_key(q.get("entry_id"), q.get("link")) for q in questions if not missing_parts(q)]
        try:
            self.known.update(self.store.known_questions(keys))
        except PyMongoError as error:
            self._give_up(error)

    def process_item(self, item):
        if isinstance(self.unavailable, PyMongoError):
            self._give_up(self.unavailable)
        if self.unavailable:
            raise DropItem("not stored: MongoDB is unavailable", log_level="DEBUG")
        question = ItemAdapter(item)
        try:
            self.store.ensure_indexes()
            is_new = self.store.save_question(question, known=self.known)
        except PyMongoError as error:
            self._give_up(error)
            raise DropItem("not stored: MongoDB is unavailable", log_level="DEBUG") from error
        if is_new:
            self.report.new += 1
            return item
        self.report.duplicate += 1
        raise DropItem(f"duplicate question {question.get('entry_id')}", log_level="DEBUG")

    def _give_up(self, error):
        self.unavailable = True
        close_crawl_for_outage(self.crawler, error)


class QuestionLookAhead:
    """A spider middleware: hand each response's questions to MongoPipeline.look_up before they are stored.

    A feed holds about 30 questions, most of them known. One query for all
    of them costs far less than one each, and keeps the reactor's thread
    from waiting on the database 30 times a crawl.
    """

    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_spider_output(self, response, result):
        output = [entry async for entry in result]
        questions = [ItemAdapter(o) for o in output if isinstance(o, QuestionItem)]
        # Built after the spider middlewares, so found now rather than in from_crawler.
        pipeline = self.crawler.get_item_pipeline(MongoPipeline)
        if questions and pipeline is not None:
            pipeline.look_up(questions)
        for entry in output:
            yield entry
