"""Scenario 10: two web hosts behind one nginx, two schedulers, one database; one of each is killed.

Two gunicorns, each with its own per-process caches, stand behind one
nginx `upstream` (deploy/nginx/sofeed.conf as shipped, one server line per
gunicorn); two scheduler.py processes crawl one growing feed, one active
and one on standby for the crawl lease, into one database. 50 pages listen
through nginx as webapp/static/app.js does (tests/reliability/pollers.py's
Listener: a stream on /events, or polls of /update where a stream is
refused). The test kills one gunicorn with all its workers (SIGKILL), then
the active scheduler. Every page must end with exactly the stored
questions, each shown once, without loading `/` again; the test records
how long the pages went without a new question around each kill.
"""

import asyncio
import contextlib
import os
import signal
import statistics
import time
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import urlsplit

import pytest

from sofeed.scheduling.loop import LEASE_INTERVALS
from sofeed.store import VISIBILITY_LAG, Store
from tests.nginx import Nginx
from tests.processes import FeedSimulator, WebApp, launch_scheduler, stop, wait_until
from tests.reliability.pollers import Crowd, Listener
from tests.reliability.results import record
from tests.reliability.system import REFRESH_SECONDS, entry_id_counts, stored_questions

# The full tier (`make check`): real processes for seconds to minutes each.
pytestmark = pytest.mark.check

PAGES = 50
INTERVAL = 1.0  # each scheduler's crawl interval
PUBLISH_EVERY = 0.5  # the feed gains a question this often: a few for each crawl
POLL_SECONDS = 1.0  # a page whose stream is refused polls this often (the page's data-poll-seconds)
STEADY, AFTER_WEB, AFTER_SCHEDULER = 6.0, 8.0, 10.0  # seconds before, between and after the kills


@dataclass
class TwoHosts:
    """The parts of the site, as two_hosts() started them."""

    store: Store
    feed: FeedSimulator
    schedulers: list
    webs: list
    nginx: Nginx

    def active_scheduler(self):
        """The scheduler whose pid holds the crawl lease."""
        pid = self.store.lease("scheduler")["pid"]
        [active] = [scheduler for scheduler in self.schedulers if scheduler.process.pid == pid]
        return active


@contextlib.contextmanager
def two_hosts(mongo_uri, database, folder):
    """The feed simulator, two schedulers, two gunicorns and nginx before them, on one database.

    Everything it started is stopped at the end, last first.
    """
    with contextlib.ExitStack() as parts:
        store = parts.enter_context(contextlib.closing(Store.connect(mongo_uri, database)))
        feed = FeedSimulator(every=PUBLISH_EVERY)
        parts.callback(feed.stop)
        schedulers = []
        for number in range(2):
            log = folder / f"scheduler-{number}.log"
            scheduler = launch_scheduler([feed.feed_url], mongo_uri, database, log, INTERVAL)
            parts.callback(stop, scheduler.process)
            schedulers.append(scheduler)
            # The first takes the lease, the second stands by.
            wait_until(lambda s=scheduler: s.lines("active: ") or s.lines("standby: "), timeout=60)
        webs = []
        for number in range(2):
            with open(folder / f"gunicorn-{number}.log", "w") as log:
                web = WebApp(mongo_uri, database, log, poll_seconds=POLL_SECONDS)
            parts.callback(web.stop)
            webs.append(web)
        nginx = Nginx([urlsplit(web.url).netloc for web in webs])
        parts.callback(nginx.stop)
        yield TwoHosts(store, feed, schedulers, webs, nginx)


def kill_web(web):
    """SIGKILL to a gunicorn's master and workers at once: a host that dies."""
    os.killpg(web.process.pid, signal.SIGKILL)
    web.process.wait()


def silences(pages, start, end):
    """The longest time each page went without a new question between start and end (monotonic s).

    Counted from the last question a page got before start (or start) to
    the first it got after it, and so on up to end.
    """
    longest = []
    for page in pages:
        times = sorted(at for at in page.arrived.values() if at <= end)
        before = [at for at in times if at < start]
        marks = [before[-1] if before else start, *(at for at in times if at >= start), end]
        longest.append(max(later - earlier for earlier, later in pairwise(marks)))
    return longest


def seconds(values):
    return f"median {statistics.median(values):.1f} s, worst {max(values):.1f} s"


def test_fifty_pages_behind_nginx_keep_every_question_when_a_web_host_and_then_the_active_scheduler_die(
    mongo_uri, database_name, tmp_path
):
    with two_hosts(mongo_uri, database_name, tmp_path) as site:
        wait_until(lambda: site.store.count_questions() >= 30, timeout=60, what="the first crawl")
        time.sleep(VISIBILITY_LAG.total_seconds() + REFRESH_SECONDS)
        killed_web, surviving_web = site.webs
        first_active = site.active_scheduler()
        marks = {}

        async def failover(pages):
            marks["start"] = time.monotonic()
            await asyncio.sleep(STEADY)
            marks["web"] = time.monotonic()
            await asyncio.to_thread(kill_web, killed_web)
            await asyncio.sleep(AFTER_WEB)
            marks["scheduler"], marks["scheduler_wall"] = time.monotonic(), time.time()
            first_active.process.kill()
            await asyncio.to_thread(first_active.process.wait)
            await asyncio.sleep(AFTER_SCHEDULER)
            marks["end"] = time.monotonic()
            # No more questions: the feed stops, the new active scheduler crawls it once more and stops.
            await asyncio.to_thread(site.feed.stop)
            standby = site.active_scheduler()
            crawled = len(standby.crawls())
            await asyncio.to_thread(wait_until, lambda: len(standby.crawls()) >= crawled + 2, 30)
            await asyncio.to_thread(stop, standby.process)
            stored = await asyncio.to_thread(stored_questions, site.store)
            await asyncio.sleep(VISIBILITY_LAG.total_seconds() + REFRESH_SECONDS)
            deadline = time.monotonic() + 30
            while any(set(page.shown) != stored.keys() for page in pages):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            return stored, standby

        with Crowd(site.nginx.url, PAGES, kind=Listener) as crowd:
            crowd.load()
            stored, standby = crowd.listen_while(failover(crowd.pages))
            pages = crowd.pages
        counts = entry_id_counts(site.store)
        counted = site.store.count_questions()
        first_crawl = standby.crawls()[0]
        takeover = first_crawl.started - marks["scheduler_wall"]
        surviving_alive = surviving_web.process.poll() is None

    assert standby is not first_active
    assert surviving_alive
    # nginx passed no failure on: a request the dead host refused went to the other one. Only a
    # request cut off in the middle of its answer by the kill may fail, and the page polls again.
    errors = [error for page in pages for error in page.errors]
    assert [error for error in errors if "answered" in error] == []
    for page in pages:
        assert set(page.shown) == stored.keys()
        assert len(page.shown) == len(set(page.shown))
        for question_id, fetched in page.receipts.items():
            # Brought again only with a later stamp, and the last one is what the store keeps.
            assert fetched == sorted(set(fetched)), question_id
            assert fetched[-1] == stored[question_id], question_id
    assert set(counts.values()) == {1}
    assert counted == len(stored)

    before_web = silences(pages, marks["start"] + 1, marks["web"])
    after_web = silences(pages, marks["web"], marks["scheduler"])
    after_scheduler = silences(pages, marks["scheduler"], marks["end"])
    streams_cut = sum(1 for page in pages if page.stream_errors)
    polling = sum(1 for page in pages if page.refused)
    record(
        "Two web hosts, one address",
        order="10",
        injected=(
            f"2 gunicorns behind one nginx `upstream` (the shipped config), 2 schedulers (one active, one on "
            f"standby, {INTERVAL:g} s interval), one database; a feed gaining a question every "
            f"{PUBLISH_EVERY:g} s; {PAGES} pages listening through nginx as the page's script does "
            f"(`/events`, or `/update` every {POLL_SECONDS:g} s when a stream is refused); after "
            f"{STEADY:g} s `kill -9` of one gunicorn and its workers, {AFTER_WEB:g} s later `kill -9` of "
            "the active scheduler"
        ),
        must_hold=(
            "each page ends with exactly the stored set, shown once each, without loading `/` again; "
            "the standby takes the lease over; each question stored once"
        ),
        result=(
            f"{len(stored)} questions stored once each; {PAGES}/{PAGES} pages hold exactly that set. "
            f"Longest time a page went without a new question: before the kills {seconds(before_web)}; "
            f"after the web kill {seconds(after_web)} ({streams_cut} streams cut, {len(errors)} polls "
            f"cut; {polling} pages polling at the end, their stream refused); "
            f"after the scheduler kill {seconds(after_scheduler)} "
            f"(the standby began its first crawl {takeover:.1f} s after the kill, and it took "
            f"{first_crawl.took or 0:.1f} s; lease "
            f"{LEASE_INTERVALS:g} intervals)"
        ),
    )
