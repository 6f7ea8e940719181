"""End to end: `python scheduler.py` as a real process, against the local
feed server and a real FerretDB. Intervals are half a second, so nothing
waits long; each wait polls for what it needs and gives up after seconds."""

import signal
from collections import Counter

import pytest

from sofeed.store import Store
from tests.helpers import save_days_ago
from tests.processes import launch_scheduler, stop, wait_until
from tools.sim.atom import render_feed, sample_entries
from tools.sim.feed_server import Reply
from tools.sim.stackexchange import StackExchangeSimulator, serve_in_thread

FIVE = sample_entries(5)
SIX = sample_entries(6)  # the same five, and a newer one on top


@pytest.fixture
def start_scheduler(mongo_uri, database_name, tmp_path):
    started = []

    def start(*feed_urls, interval=0.5, uri=mongo_uri, **settings):
        log_path = tmp_path / f"scheduler-{len(started)}.log"
        scheduler = launch_scheduler(feed_urls, uri, database_name, log_path, interval, **settings)
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        stop(scheduler.process)


def stored_ids(store):
    return Counter(doc["entry_id"] for doc in store.questions.find({}, {"entry_id": 1}))


def latest_crawl(store):
    """The scheduler's own record of its latest crawl (one feed in these tests), or {} before the first."""
    return next(iter(store.crawl_statuses()), {})


def test_the_scheduler_crawls_again_and_again_and_the_next_crawl_stores_a_feed_change(
    start_scheduler, feed_server, store
):
    url = feed_server.serve_feed("/feeds", render_feed(FIVE), etag='"five"')
    start_scheduler(url)
    wait_until(
        lambda: len(feed_server.requests_for("/feeds")) >= 3 and latest_crawl(store).get("http_status") == 304
    )
    assert stored_ids(store) == Counter(entry.entry_id for entry in FIVE)
    assert (latest_crawl(store)["outcome"], latest_crawl(store)["new"]) == ("not_modified", 0)

    feed_server.serve_feed("/feeds", render_feed(SIX), etag='"six"')
    changed_at = len(feed_server.requests_for("/feeds"))
    wait_until(lambda: len(feed_server.requests_for("/feeds")) >= changed_at + 3)
    # The first request after the change got the new feed, stored its new
    # question and saved its ETag: every later request is conditional on it.
    after_change = [r.headers.get("If-None-Match") for r in feed_server.requests_for("/feeds")[changed_at:]]
    assert after_change[0] == '"five"'
    assert set(after_change[1:]) == {'"six"'}
    assert stored_ids(store) == Counter(entry.entry_id for entry in SIX)
    # robots.txt is kept across crawls, not fetched as often as the feed.
    assert len(feed_server.requests_for("/robots.txt")) == 1


def test_a_feed_slower_than_the_interval_is_cut_off_and_crawls_never_overlap(
    start_scheduler, feed_server, store
):
    url = feed_server.serve("/feeds", Reply(body=render_feed(FIVE), delay=5))
    scheduler = start_scheduler(url)
    wait_until(lambda: len(feed_server.requests_for("/feeds")) >= 3)
    wait_until(lambda: latest_crawl(store).get("outcome") == "timeout")
    assert "cut off at its deadline" in latest_crawl(store)["error"]
    assert feed_server.most_at_once("/feeds") == 1
    assert scheduler.lines("tick skipped: the crawl cycle started")
    assert scheduler.process.poll() is None


def test_the_scheduler_survives_a_500_then_garbage_and_then_stores_the_valid_feed(
    start_scheduler, feed_server, store
):
    url = feed_server.serve(
        "/feeds", Reply(status=500, body=b"Internal Server Error", content_type="text/plain")
    )
    scheduler = start_scheduler(url)
    wait_until(lambda: scheduler.lines("failed after"))
    feed_server.serve(
        "/feeds", Reply(body=b"\x00\xffnot xml at all <<<", content_type="application/atom+xml")
    )
    wait_until(lambda: scheduler.lines("not an Atom feed"))
    feed_server.serve_feed("/feeds", render_feed(FIVE))
    wait_until(lambda: len(stored_ids(store)) == 5)
    [http_500, *_] = scheduler.lines("HTTP 500")
    assert "WARNING" in http_500
    assert "next try in" in http_500
    [garbage, *_] = scheduler.lines("not an Atom feed")
    assert "failures in a row" in garbage
    assert scheduler.process.poll() is None


def test_429_with_retry_after_3_means_no_request_to_that_feed_for_3_seconds(start_scheduler, feed_server):
    url = feed_server.serve("/feeds", Reply(status=429, body=b"slow down", headers={"Retry-After": "3"}))
    scheduler = start_scheduler(url)
    first, second = wait_until(
        lambda: (
            feed_server.requests_for("/feeds")[:2] if len(feed_server.requests_for("/feeds")) >= 2 else None
        )
    )
    assert second.at - first.at >= 3
    assert scheduler.lines("HTTP 429")


def test_sigterm_during_a_slow_crawl_exits_with_status_0_within_5_seconds_and_leaves_no_child(
    start_scheduler, feed_server
):
    url = feed_server.serve("/feeds", Reply(body=render_feed(FIVE), delay=60))
    scheduler = start_scheduler(url, interval=30)
    wait_until(lambda: feed_server.requests_for("/feeds"))
    assert scheduler.children() == []
    scheduler.process.send_signal(signal.SIGTERM)
    assert scheduler.process.wait(timeout=5) == 0
    assert scheduler.lines("stopping")
    assert scheduler.lines("released the crawl lease")


@pytest.mark.check  # the full tier: its own FerretDB, stopped and started again
def test_the_scheduler_survives_a_database_outage_and_stores_the_feed_after_it(
    start_scheduler, feed_server, private_ferretdb, database_name
):
    uri = private_ferretdb.start()
    url = feed_server.serve_feed("/feeds", render_feed(FIVE))
    scheduler = start_scheduler(url, uri=uri)
    store = Store.connect(uri, database_name)
    wait_until(lambda: stored_ids(store) == Counter(entry.entry_id for entry in FIVE))

    private_ferretdb.stop()
    feed_server.serve_feed("/feeds", render_feed(SIX))
    wait_until(
        lambda: scheduler.lines("failed after") and scheduler.lines("standby: the crawl lease may have")
    )
    [failed] = scheduler.lines("failed after")
    assert "MongoDB is unavailable" in failed
    private_ferretdb.start()
    wait_until(lambda: stored_ids(store) == Counter(entry.entry_id for entry in SIX), timeout=30)
    assert latest_crawl(store)["ok"]
    assert scheduler.process.poll() is None
    assert len(scheduler.lines("active: this scheduler")) == 2  # at the start, and after the outage
    store.close()


@pytest.mark.check  # the full tier: two schedulers and a wait for the lease to expire
def test_two_schedulers_one_database_one_crawls_and_the_standby_takes_over_after_a_kill(
    start_scheduler, feed_server, store
):
    url = feed_server.serve_feed("/feeds", render_feed(FIVE))
    first = start_scheduler(url)
    wait_until(lambda: first.lines("active: this scheduler"))
    second = start_scheduler(url)
    wait_until(lambda: second.lines("standby: "))
    crawls_before = len(feed_server.requests_for("/feeds"))
    wait_until(lambda: len(feed_server.requests_for("/feeds")) >= crawls_before + 3)
    assert latest_crawl(store)["pid"] == first.process.pid
    assert second.crawl_lines() == []

    first.process.kill()
    first.process.wait()
    # How soon it takes over is the lease's (tests/test_scheduling.py, with an injected clock).
    wait_until(lambda: latest_crawl(store).get("pid") == second.process.pid)
    assert len(second.lines("active: this scheduler")) == 1
    assert first.crawls()[-1].ended < second.crawls()[0].ended


def test_a_manual_crawl_while_the_scheduler_runs_stores_no_duplicates(
    start_scheduler, crawl, feed_server, store
):
    url = feed_server.serve_feed("/feeds", render_feed(sample_entries(60)))
    scheduler = start_scheduler(url)
    manual = crawl(url)
    wait_until(lambda: len(feed_server.requests_for("/feeds")) >= 4 and latest_crawl(store).get("ok"))
    assert manual.returncode == 0, manual.log
    assert scheduler.process.poll() is None
    assert stored_ids(store) == Counter(entry.entry_id for entry in sample_entries(60))
    assert len(store.recent_questions()) == 60  # each announced once to the pages


def test_with_no_source_configured_a_feed_refused_by_robots_txt_gives_way_to_the_api_and_back(
    start_scheduler, feed_server, store
):
    feed_server.serve("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /\n", content_type="text/plain"))
    feed = feed_server.serve_feed("/feeds", render_feed(FIVE))
    simulator = StackExchangeSimulator(seed=5, initial=12)
    httpd, api_url = serve_in_thread(simulator)
    api = api_url + "?site=stackoverflow"
    try:
        scheduler = start_scheduler(
            DEFAULT_FEED_URL=feed, DEFAULT_API_URL=api, DEFAULT_FEED_RETRY_SECONDS=3, ROBOTSTXT_KEEP_SECONDS=1
        )
        wait_until(lambda: store.count_questions() == 12, what="the API's twelve questions")
        wait_until(lambda: store.crawls.find_one({"_id": api}), what="the API crawl's record")
        records = {doc["_id"]: doc for doc in store.crawl_statuses()}
        assert records[feed]["refused"] == "robots"
        assert "robots.txt" in records[api]["via"]
        assert feed_server.requests_for("/feeds") == []  # robots.txt forbids it: never fetched
        assert len(scheduler.lines("is refused (robots.txt); mirroring Stack Overflow through the")) == 1

        feed_server.serve("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
        wait_until(lambda: store.count_questions() == 12 + 5, timeout=30, what="the feed's five questions")
        wait_until(
            lambda: scheduler.lines(f"the default feed {feed} can be read again"), what="the switch back"
        )
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.check  # the full tier: waits for the retention thread's first look, ten intervals in
def test_a_scheduler_with_keep_days_prunes_the_old_questions_in_the_background_while_it_crawls(
    start_scheduler, feed_server, store
):
    save_days_ago(store, 40, range(1000, 1003))
    url = feed_server.serve_feed("/feeds", render_feed(FIVE))
    scheduler = start_scheduler(url, KEEP_DAYS=30)
    wait_until(lambda: store.last_prune() is not None, timeout=60, what="a prune")
    # The prune's line is logged just after its record is written.
    deleted = "retention: deleted 3 questions first fetched before "
    wait_until(lambda: scheduler.lines(deleted), timeout=30, what="the prune's line")
    assert stored_ids(store) == Counter(entry.entry_id for entry in FIVE)
    assert store.count_questions() == 5
    assert scheduler.process.poll() is None
