"""The `stackexchange` spider against the API simulator: real `scrapy crawl` processes for the
whole path, and the spider's callbacks in-process for each kind of answer."""

import asyncio
import gzip
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from scrapy import Request
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from sofeed import settings as project_settings
from sofeed.extensions import StoreExtension
from sofeed.logs import KeyRedactingFilter
from sofeed.middlewares import FEED_META
from sofeed.quota import QuotaState
from sofeed.scheduling.outcome import FAILED, CrawlOutcome
from sofeed.sources import is_api_url
from sofeed.spiders.stackexchange import OVERLAP_SECONDS, StackExchangeSpider, request_url
from sofeed.store import question_key
from tests.helpers import ROOT, CrawlResult
from tests.helpers import make_spider as make_atom_spider
from tests.processes import launch_scheduler, stop, wait_until
from tools.sim.atom import Entry, render_feed, sample_entries
from tools.sim.stackexchange import StackExchangeSimulator, serve_in_thread

KEY = "Sekr3tKey(("
# Enough quota that back-to-back crawls are never paced apart.
PLENTY = (10**9, 10**9)


@pytest.fixture
def simulator():
    return StackExchangeSimulator(seed=5, quotas=PLENTY)


@pytest.fixture
def source(simulator):
    httpd, url = serve_in_thread(simulator)
    yield url + "?site=stackoverflow"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def crawl_api(mongo_uri, database_name):
    """Run `scrapy crawl stackexchange` as a real subprocess from the repo root."""

    def run(*urls, **settings):
        command = [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            "stackexchange",
            "-a",
            "feed_url=" + ",".join(urls),
        ]
        settings = {"MONGO_URI": mongo_uri, "MONGO_DATABASE": database_name, "SOFEED_INTERVAL": 0, **settings}
        for name, value in settings.items():
            command += ["-s", f"{name}={value}"]
        finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        return CrawlResult(finished.returncode, finished.stderr)

    return run


def test_a_crawl_stores_the_newest_questions_with_their_text_decoded(crawl_api, source, simulator, store):
    asked = simulator.publish(title='Why doesn\'t "x" & <y> work?', display_name="Jörg O'Neil", score=3)
    result = crawl_api(source)
    assert result.returncode == 0, result.log
    assert result.errors == []
    assert result.stat("sofeed/new") == 31
    document = store.questions.find_one(
        {"_id": question_key(f"https://stackoverflow.com/q/{asked.question_id}")}
    )
    assert document["title"] == 'Why doesn\'t "x" & <y> work?'
    assert (document["author"], document["rank"]) == ("Jörg O'Neil", 3)
    assert document["link"] == asked.link
    assert document["published"].replace(tzinfo=UTC) == datetime.fromtimestamp(asked.creation_date, UTC)
    (request,) = simulator.requests_for()
    wanted = {
        "site": "stackoverflow",
        "sort": "creation",
        "order": "desc",
        "pagesize": "100",
        "filter": "withbody",
    }
    assert request.params == wanted
    assert "gzip" in request.headers["Accept-Encoding"]
    assert simulator.requests_for("/robots.txt") == []


def test_the_key_is_sent_and_never_logged(crawl_api, source, simulator):
    result = crawl_api(source, SOFEED_STACKEXCHANGE_KEY=KEY, LOG_LEVEL="DEBUG")
    assert result.returncode == 0, result.log
    assert [r.key for r in simulator.requests_for()] == [KEY]
    assert "Crawled (200)" in result.log  # the DEBUG line that names the request URL
    assert "key=[hidden]" in result.log
    assert KEY not in result.log
    assert "Sekr3tKey" not in result.log


def test_the_next_crawl_asks_from_the_newest_creation_date_seen(crawl_api, source, simulator, store):
    crawl_api(source)
    newest = max(doc["published"] for doc in store.questions.find()).replace(tzinfo=UTC)
    simulator.publish(title="Asked between two crawls")
    result = crawl_api(source)
    assert (result.stat("sofeed/new"), result.errors) == (1, [])
    first, second = simulator.requests_for()
    assert "fromdate" not in first.params
    assert int(second.params["fromdate"]) == int(newest.timestamp()) - OVERLAP_SECONDS


def test_one_question_from_the_atom_feed_and_the_api_is_one_document(crawl, crawl_api, feed_server, source,
                                                                     simulator, store):  # fmt: skip
    entry = Entry(question_id=79555001, title="One question, two sources", author="Ana & Luis")
    crawl(feed_server.serve_feed("/feeds", render_feed([entry])))
    simulator.publish(question_id=79555001, title="One question, two sources", display_name="Ana & Luis")
    result = crawl_api(source)
    assert (result.stat("sofeed/new"), result.stat("sofeed/duplicate")) == (30, 1)
    assert store.questions.count_documents({"question_id": 79555001}) == 1
    assert store.questions.count_documents({}) == 31


@pytest.mark.check  # the full tier: the quota tests cover the pace in the fast tier
def test_without_a_key_the_second_crawl_waits_for_its_pace(crawl_api, store):
    simulator = StackExchangeSimulator(seed=6)  # the API's own quota: 300 a day
    httpd, url = serve_in_thread(simulator)
    try:
        crawl_api(url + "?site=stackoverflow", SOFEED_INTERVAL=30)
        result = crawl_api(url + "?site=stackoverflow", SOFEED_INTERVAL=30)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(simulator.requests_for()) == 1
    assert result.returncode == 0, result.log
    assert "next request at" in result.log
    assert "left until 00:00 UTC" in result.log


@pytest.mark.check  # the full tier: the quota tests cover the backoff in the fast tier
def test_no_request_is_sent_before_the_apis_backoff_ends(crawl_api, source, simulator):
    simulator.backoff_next(600)
    first = crawl_api(source)
    assert "backoff of 600 s" in first.log
    second = crawl_api(source)
    assert "the API asked for a backoff" in second.log
    assert len(simulator.requests_for()) == 1
    assert [r.error_name for r in simulator.requests_for()] == [None]


def test_a_body_over_the_size_limit_is_one_error_and_stores_nothing(crawl_api, source, simulator, store):
    simulator.fault = "oversized"
    result = crawl_api(source)
    assert len(result.errors) == 1, result.log
    assert "fetch failed" in result.errors[0]
    assert store.questions.count_documents({}) == 0


# In-process: the spider's callbacks on the answers the simulator gives.

SOURCE = "http://127.0.0.1:9/2.3/questions?site=stackoverflow"


@pytest.fixture
def make_spider(mongo_uri, database_name):
    """A stackexchange spider on a crawler with the project's settings, on this test's database."""
    crawlers = []

    def make(clock=time.time, **settings):
        values = {name: getattr(project_settings, name) for name in dir(project_settings) if name.isupper()}
        values |= {"MONGO_URI": mongo_uri, "MONGO_DATABASE": database_name}
        crawler = get_crawler(StackExchangeSpider, settings_dict={**values, **settings})
        crawler.spider = StackExchangeSpider.from_crawler(crawler, feed_url=SOURCE, clock=clock)
        crawlers.append(crawler)
        return crawler.spider

    yield make
    for crawler in crawlers:
        crawler.get_extension(StoreExtension).close()


def answered(simulator):
    """The simulator's answer to the newest-questions request, as Scrapy hands it over (decompressed)."""
    url = request_url(SOURCE)
    answer = simulator.answer(url.split("9", 1)[1])
    request = Request(url, meta={FEED_META: SOURCE, "sofeed_page": 1})
    return TextResponse(url, status=answer.status, body=gzip.decompress(answer.body), request=request)


def outcome_of(spider):
    now = datetime.now(UTC)
    return CrawlOutcome.from_report(SOURCE, spider.report, "finished", now, now)


@pytest.mark.parametrize("name", ["bad_parameter", "access_denied", "throttle_violation", "internal_error"])
def test_an_error_wrapper_is_one_line_naming_it_and_a_failed_crawl(make_spider, caplog, name):
    simulator = StackExchangeSimulator(seed=1)
    simulator.error_next(name, "said the API")
    spider = make_spider()
    assert list(spider.parse(answered(simulator))) == []
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert name in errors[0].getMessage()
    assert "said the API" in errors[0].getMessage()
    outcome = outcome_of(spider)
    assert outcome.outcome == FAILED
    assert outcome.feed_failed  # the scheduler's backoff applies


def test_a_gzip_body_that_is_not_json_is_one_error(make_spider, caplog):
    simulator = StackExchangeSimulator(seed=1)
    simulator.fault = "not_json"
    spider = make_spider()
    assert list(spider.parse(answered(simulator))) == []
    (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "not JSON" in error
    assert "nothing stored" in error
    assert outcome_of(spider).outcome == FAILED


def test_empty_items_are_no_error_and_keep_the_quota(make_spider, caplog):
    simulator = StackExchangeSimulator(seed=1)
    simulator.fault = "empty_items"
    spider = make_spider()
    assert list(spider.parse(answered(simulator))) == []
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert outcome_of(spider).ok
    assert spider.report.quota_remaining == 299


def test_items_come_oldest_first_so_the_newest_is_stamped_last(make_spider):
    spider = make_spider()
    items = list(spider.parse(answered(StackExchangeSimulator(seed=1))))
    published = [item["published"] for item in items]
    assert len(published) == 30
    assert published == sorted(published)


def test_more_questions_than_a_page_holds_are_read_from_the_next_page(make_spider):
    simulator = StackExchangeSimulator(seed=1, initial=120)
    spider = make_spider()
    results = list(spider.parse(answered(simulator)))
    (follow,) = [r for r in results if isinstance(r, Request)]
    assert "page=2" in follow.url
    assert len(results) == 101


NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("page_open", "asks"), [(True, True), (False, False)])
def test_an_api_source_asks_sooner_while_a_page_is_open(make_spider, store, caplog, page_open, asks):
    caplog.set_level(logging.INFO)
    # 150 requests left at noon: a watched source asks every ~5 min, an unwatched one every ~20.
    quota = QuotaState(quota_max=300, quota_remaining=150, read_at=NOON - 400, last_request=NOON - 400)
    store.update_source_state(SOURCE, {"quota": quota.record()})
    if page_open:
        store.note_page_open(NOON - 20)
    spider = make_spider(clock=lambda: NOON)
    request = spider._first_request(SOURCE, shared_by=1)
    assert (request is not None) == asks
    if not asks:
        assert "no page open" in caplog.text


def test_only_api_questions_urls_are_api_sources():
    assert is_api_url("https://api.stackexchange.com/2.3/questions?site=stackoverflow&tagged=python")
    assert is_api_url("http://127.0.0.1:8766/2.3/questions")
    assert not is_api_url("https://stackoverflow.com/feeds")
    assert not is_api_url("https://api.stackexchange.com/2.3/answers?site=stackoverflow")


def test_the_request_keeps_the_sources_site_and_tags_and_replaces_a_key_in_it():
    url = request_url(
        "https://api.stackexchange.com/2.3/questions?site=superuser&tagged=bash&key=old", 1700, "new"
    )
    assert url == (
        "https://api.stackexchange.com/2.3/questions?site=superuser&tagged=bash&sort=creation&order=desc"
        "&pagesize=100&filter=withbody&fromdate=1700&key=new"
    )


def test_the_log_filter_hides_a_key_in_any_line():
    record = logging.LogRecord(
        "x", logging.DEBUG, "", 0, "Crawled <GET %s>", ("http://h/q?site=so&key=abc&x=1",), None
    )
    assert KeyRedactingFilter().filter(record)
    assert record.getMessage() == "Crawled <GET http://h/q?site=so&key=[hidden]&x=1>"


def test_the_scheduler_crawls_an_atom_feed_and_an_api_source_side_by_side(
    feed_server, source, simulator, mongo_uri, database_name, store, tmp_path, monkeypatch
):
    monkeypatch.setenv("SOFEED_STACKEXCHANGE_KEY", KEY)
    feed = feed_server.serve_feed("/feeds", render_feed(sample_entries(5)))
    scheduler = launch_scheduler([feed, source], mongo_uri, database_name, tmp_path / "scheduler.log", 1.0)
    try:
        wait_until(lambda: len(scheduler.crawls(source)) >= 2 and len(scheduler.crawls(feed)) >= 2)
        simulator.publish(title="Asked while the scheduler runs")
        wait_until(lambda: store.questions.count_documents({"title": "Asked while the scheduler runs"}) == 1)
    finally:
        stop(scheduler.process)
    assert store.questions.count_documents({}) == 5 + 30 + 1
    api_lines = [crawl.text for crawl in scheduler.crawls(source)]
    assert api_lines[0].startswith("HTTP 200, 30 new"), api_lines
    assert "API quota 999999999/1000000000 left" in api_lines[0]
    assert "Traceback" not in scheduler.log()
    assert " ERROR " not in scheduler.log()
    assert "fromdate" in simulator.requests_for()[-1].params
    assert {request.key for request in simulator.requests_for()} == {KEY}
    assert "Sekr3tKey" not in scheduler.log()


def test_the_atom_spider_leaves_api_sources_to_the_api_spider(caplog):
    caplog.set_level(logging.INFO)
    spider = make_atom_spider(SOFEED_FEED_URLS=f"http://127.0.0.1:9/feeds,{SOURCE}")

    async def requests():
        return [request async for request in spider.start()]

    assert [request.url for request in asyncio.run(requests())] == ["http://127.0.0.1:9/feeds"]
    assert "is an API source: `scrapy crawl stackexchange` reads it" in caplog.text


def test_an_unreachable_database_closes_the_crawl_in_one_line_before_the_api_is_asked(
    crawl_api, source, simulator
):
    result = crawl_api(source, MONGO_URI="mongodb://127.0.0.1:1", MONGO_TIMEOUT_MS=300)
    assert len(result.errors) == 1, result.log
    assert "MongoDB" in result.errors[0]
    assert simulator.requests_for() == []


def test_a_throttle_violation_sent_as_http_502_is_one_line_and_not_retried_at_once(
    crawl_api, source, simulator
):
    simulator.error_next("throttle_violation", "too many requests from this IP", http_status=502)
    result = crawl_api(source)
    assert len(result.errors) == 1, result.log
    assert "throttle_violation (error_id 502, HTTP 502): too many requests from this IP" in result.errors[0]
    assert len(simulator.requests_for()) == 1
