"""Scenario 9: push under load. 2,000 pages hold /events streams while a crawl
brings new questions; 1,000 slow clients trickle requests beside an ordinary
client; wrk keeps /update saturated.

The site runs as in production (tests/reliability/system.py: the feed
simulator, scheduler.py, gunicorn with webapp/gunicorn_conf.py), and the
load clients are bench/clients.py's, the ones bench/push.py measures with.
These tests check what must hold under the load (every page delivered, no
failed request, no 503); the timings they record are for the report, and
bench/push.py holds the goals on them.
"""

import time

import pytest

from bench import loadgen
from bench.clients import PacedPollers, Pages, Tricklers
from bench.services import Workers, newest_fetched
from tests.reliability.pollers import milliseconds, percentile
from tests.reliability.results import record
from tests.reliability.system import FEED_SIZE, Site

# The full tier (`make check`): real processes for seconds to minutes each.
pytestmark = pytest.mark.check

PAGES, QUESTIONS = 2000, 3
POLL_SECONDS = 0.5  # the test site's page setting (Site), for a page refused a stream
SLOW_CLIENTS, TRICKLE_EVERY = 1000, 2.0
ORDINARY_INTERVAL, ALONE_SECONDS, BESIDE_SECONDS = 0.05, 5, 15
# Far beyond a healthy answer: an ordinary request not answered by then has failed.
ORDINARY_TIMEOUT = 10.0
WRK_CONNECTIONS, WRK_SECONDS = (200, 1000), 10
# Flat out, a request waits its turn behind the others: connections / rate, seconds at 1,000
# connections. A request not answered after this long is stuck, not queued.
WRK_TIMEOUT = 30


def test_two_thousand_pages_holding_streams_each_receive_every_new_question_on_their_stream(
    mongo_uri, database_name, tmp_path
):
    with Site(mongo_uri, database_name, tmp_path, poll_seconds=POLL_SECONDS) as site:
        site.wait_for_first_crawl()
        web_pids, workers = site.web_pids(), Workers(site.web)
        idle_rss = workers.rss_mib()
        cursor = newest_fetched(site.web, FEED_SIZE)
        with Pages(site.url, PAGES, cursor, tmp_path / "pages.log", POLL_SECONDS) as pages:
            opening = pages.opened()
            open_rss = workers.rss_mib()
            logged = len(site.scheduler.crawls())
            ids = [site.feed.publish() for _ in range(QUESTIONS)]
            crawl_ended = max(crawl.ended for crawl in site.scheduler.crawls_storing(QUESTIONS, after=logged))
            receipts = pages.wait_for(ids, timeout=60)
        web_pids_after = site.web_pids()
        log_problems = site.log_problems()

    assert (opening.accepted, opening.refused, opening.failed) == (PAGES, {}, 0), opening
    assert [receipts.delivered(question_id) for question_id in ids] == [PAGES] * QUESTIONS
    assert receipts.by_polling == {}, "some pages were handed a question by polling, not by their stream"
    assert receipts.reconnects == 0, "the server ended streams"
    assert web_pids_after == web_pids, "a gunicorn worker died or was replaced"
    assert log_problems == []
    delays = receipts.delays(ids, crawl_ended)
    record(
        "Live streams",
        order="9a",
        injected=(
            f"{PAGES:,} pages (asyncio clients) open `/events` at once on gunicorn with "
            f"`webapp/gunicorn_conf.py`, then the feed gains {QUESTIONS} questions and "
            "`scheduler.py` crawls them"
        ),
        must_hold="every page gets a stream, and receives every new question on it; no worker dies",
        result=(
            f"{opening.accepted:,}/{PAGES:,} streams accepted in {opening.seconds:.1f} s; each "
            f"question reached {PAGES:,} pages, all by their stream; after the crawl ended p50 "
            f"{percentile(delays, 0.5):.2f} s, p95 {percentile(delays, 0.95):.2f} s, "
            f"max {max(delays):.2f} s; "
            f"web workers' RSS {idle_rss:.0f} MiB idle, {open_rss:.0f} MiB with the streams"
        ),
    )


def test_an_ordinary_client_is_answered_without_a_failure_beside_a_thousand_slow_clients(
    mongo_uri, database_name, tmp_path
):
    log_path = tmp_path / "clients.log"
    with Site(mongo_uri, database_name, tmp_path) as site:
        site.wait_for_first_crawl()
        web_pids = site.web_pids()
        target = f"/update?timestamp={newest_fetched(site.web, FEED_SIZE)!r}"
        with PacedPollers(site.url, target, 1, ORDINARY_INTERVAL, log_path, ORDINARY_TIMEOUT) as ordinary:
            time.sleep(ALONE_SECONDS)
            alone = ordinary.finish()
        with (
            Tricklers(site.url, SLOW_CLIENTS, TRICKLE_EVERY, log_path) as tricklers,
            PacedPollers(site.url, target, 1, ORDINARY_INTERVAL, log_path, ORDINARY_TIMEOUT) as ordinary,
        ):
            time.sleep(BESIDE_SECONDS)
            beside = ordinary.finish()
            trickling = tricklers.finish()
        web_pids_after = site.web_pids()
        log_problems = site.log_problems()

    assert tricklers.connected == SLOW_CLIENTS, "not every slow client got a connection"
    assert (alone.errors, alone.error_samples) == (0, [])
    assert (beside.errors, beside.error_samples) == (0, [])
    assert beside.latencies, "the ordinary client sent nothing beside the slow clients"
    assert web_pids_after == web_pids, "a gunicorn worker died or was replaced"
    assert log_problems == []
    dropped = trickling.dropped_after
    record(
        "Slow clients",
        order="9b",
        injected=(
            f"{SLOW_CLIENTS:,} connections each trickling an endless request, a byte every "
            f"{TRICKLE_EVERY:g} s, for {BESIDE_SECONDS} s, beside a client asking for `/update` every "
            f"{ORDINARY_INTERVAL * 1000:.0f} ms (paced by the clock), on gunicorn with "
            "`webapp/gunicorn_conf.py`"
        ),
        must_hold=(
            f"every ordinary request answered 200 within {ORDINARY_TIMEOUT:g} s, alone and beside the slow "
            "clients; no worker dies"
        ),
        result=(
            f"0 of {beside.requests} ordinary requests failed (0 of {alone.requests} alone); p99 "
            f"{milliseconds(percentile(beside.latencies, 0.99))} beside them, "
            f"{milliseconds(percentile(alone.latencies, 0.99))} alone; the server dropped "
            f"{trickling.dropped:,} slow connections"
            + (f", after {percentile(dropped, 0.5):.1f} s (median)" if dropped else "")
            + f"; {trickling.connections:,} slow connections opened in all"
        ),
    )


def test_update_saturated_by_wrk_answers_every_request_with_a_200(mongo_uri, database_name, tmp_path):
    # A question a second, so that the cache's refreshes read while the CPU is saturated.
    with (
        Site(mongo_uri, database_name, tmp_path, publish_every=1.0) as site,
        open(tmp_path / "wrk.log", "w") as log,
    ):
        site.wait_for_first_crawl()
        web_pids = site.web_pids()
        url = f"{site.url}/update?timestamp={newest_fetched(site.web, FEED_SIZE)!r}"
        loads = [
            loadgen.load(url, connections, WRK_SECONDS, log, timeout_seconds=WRK_TIMEOUT)
            for connections in WRK_CONNECTIONS
        ]
        web_pids_after = site.web_pids()
        log_problems = site.log_problems()

    for load in loads:
        assert (load.non_2xx, load.errors) == (0, 0), f"{load}; see {tmp_path / 'wrk.log'}"
        assert load.requests > 0
    assert web_pids_after == web_pids, "a gunicorn worker died or was replaced"
    assert log_problems == []
    record(
        "Saturation",
        order="9c",
        injected=(
            f"wrk flat out on `/update` for {WRK_SECONDS} s at "
            f"{' and then '.join(f'{load.connections:,}' for load in loads)} connections, on gunicorn with "
            "`webapp/gunicorn_conf.py`, while `scheduler.py` crawled a feed gaining a question a second"
        ),
        must_hold=(
            f"every answer a 200 (no 503: the database is healthy), none later than {WRK_TIMEOUT} s, no "
            "socket error; no worker dies"
        ),
        result="; ".join(
            f"{load.connections:,} connections: {load.requests:,} requests "
            f"({load.requests_per_second:,.0f}/s), 0 errors, p50 {load.p50_ms:.0f} ms, "
            f"p99 {load.p99_ms:.0f} ms"
            for load in loads
        ),
    )
