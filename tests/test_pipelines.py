import pytest
from scrapy.exceptions import DropItem

from sofeed.extensions import StoreExtension, report_of
from sofeed.items import QuestionItem
from sofeed.pipelines import MongoPipeline, ValidationPipeline
from sofeed.store import question_key
from tests.helpers import make_spider, question_fields


def question(**fields):
    return QuestionItem(question_fields(**fields))


@pytest.fixture
def stored(mongo_uri, database_name):
    """A MongoPipeline opened on this test's database, as Scrapy opens it."""
    spider = make_spider(MONGO_URI=mongo_uri, MONGO_DATABASE=database_name)
    pipeline = MongoPipeline.from_crawler(spider.crawler)
    pipeline.open_spider()
    yield pipeline
    spider.crawler.get_extension(StoreExtension).close()


def test_validation_passes_a_complete_question_through():
    item = question()
    assert ValidationPipeline.from_crawler(make_spider().crawler).process_item(item) is item


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"entry_id": None, "link": None}, "no_id_or_link"),
        ({"title": None}, "no_title"),
        ({"title": ""}, "no_title"),
    ],
)
def test_validation_drops_an_incomplete_entry_with_a_counted_reason(fields, reason):
    crawler = make_spider().crawler
    with pytest.raises(DropItem, match=reason.replace("_", " ")) as dropped:
        ValidationPipeline.from_crawler(crawler).process_item(question(**fields))
    assert dropped.value.log_level is None  # a malformed entry is worth a warning
    assert report_of(crawler).invalid == 1
    assert crawler.stats.get_value(f"sofeed/invalid/{reason}") == 1


def test_validation_keeps_an_entry_that_has_a_link_but_no_id():
    item = question(entry_id=None)
    assert ValidationPipeline.from_crawler(make_spider().crawler).process_item(item) is item


def test_mongo_pipeline_stores_a_new_question_and_counts_it(stored, store):
    item = question()
    assert stored.process_item(item) is item
    assert store.questions.find_one({"_id": question_key(item["entry_id"])})["title"] == item["title"]
    assert stored.report.new == 1


def test_mongo_pipeline_drops_a_duplicate_quietly_after_refreshing_it(stored, store):
    stored.process_item(question())
    with pytest.raises(DropItem, match="duplicate question") as dropped:
        stored.process_item(question(title="Edited", rank=3))
    assert dropped.value.log_level == "DEBUG"
    [document] = store.questions.find()
    assert (document["title"], document["rank"]) == ("Edited", 3)
    assert stored.report.duplicate == 1


def test_mongo_pipeline_creates_the_fetched_index_with_the_first_question(stored, store):
    assert "fetched_-1__id_-1" not in store.questions.index_information()
    stored.process_item(question())
    assert "fetched_-1__id_-1" in store.questions.index_information()


def test_questions_looked_up_ahead_are_stored_without_a_lookup_each(stored, store):
    stored.process_item(question())
    edited = question(title="Edited")
    new = question(entry_id="https://stackoverflow.com/q/1", link="https://stackoverflow.com/questions/1/x")
    stored.look_up([edited, new])
    assert set(stored.known) == {question_key(edited["entry_id"]), question_key(new["entry_id"])}
    assert stored.known[question_key(new["entry_id"])] is None  # looked up: not known
    with pytest.raises(DropItem, match="duplicate"):
        stored.process_item(edited)
    assert stored.process_item(new) is new
    titles = {doc["title"] for doc in store.questions.find()}
    assert titles == {"Edited", new["title"]}
    assert store.count_questions() == 2


def test_a_crawl_that_cannot_reach_the_database_gives_up_once_at_the_look_ahead(caplog):
    spider = make_spider(MONGO_URI="mongodb://127.0.0.1:9", MONGO_TIMEOUT_MS=100)
    pipeline = MongoPipeline.from_crawler(spider.crawler)
    pipeline.open_spider()
    pipeline.look_up([question()])
    with pytest.raises(DropItem, match="MongoDB is unavailable"):
        pipeline.process_item(question())
    assert report_of(spider.crawler).store_error.startswith("MongoDB is unavailable")
    assert [r.levelname for r in caplog.records if "unavailable" in r.getMessage()] == ["ERROR"]
    spider.crawler.get_extension(StoreExtension).close()
