"""Scenario 8's long run: the scheduler crawling the feed simulator every half second, for 600 cycles.

It runs in the background for the whole pytest session (tests/conftest.py
starts it when the long-run test is collected, and runs that test last),
so that five minutes of crawling cost the suite no extra wall time. The
test only waits for the cycles to be done, and checks what was measured.

The database is a private FerretDB, or MONGO_URI's server when it is set.
The simulator publishes nothing by itself: this module publishes a question
every PUBLISH_EVERY seconds and keeps its _id, so that every published
question can be looked for in the database at the end.
"""

import os
import threading
import time
import uuid
from contextlib import ExitStack, closing
from dataclasses import dataclass

from pymongo import MongoClient

from sofeed.store import Store
from tests.processes import FeedSimulator, PrivateFerretDB, launch_scheduler, stop, wait_until
from tests.reliability.system import cpu_seconds, feed_ids

CYCLES = int(os.environ.get("SOFEED_LONG_RUN_CYCLES", "600"))
# Half a second, the tests' interval: 600 cycles in five minutes keep `make check` short.
INTERVAL = 0.5
# The feed lists the newest 30: at one question every 2 s, a question stays
# in it for a minute, 120 crawls.
PUBLISH_EVERY = 2.0
SAMPLE_EVERY = 5.0
# Memory, files and threads are compared from this cycle on: the first crawls
# import and warm up much of Scrapy.
WARM_CYCLE = 50


@dataclass
class Sample:
    at: float  # seconds since the start
    cycles: int
    rss_mb: float
    fds: int
    threads: int
    children: int
    cpu_seconds: float


class LongRun:
    """The long run's processes, its publisher and its sampler; stop() ends them all."""

    def __init__(self, folder, cycles=CYCLES):
        self.cycles = cycles
        self.samples = []
        self.published = []  # store _ids, in order
        self.started = time.time()
        self._stopping = threading.Event()
        self._parts = ExitStack()
        try:
            self._start(folder)
        except BaseException:
            self._parts.close()
            raise

    def _start(self, folder):
        if os.environ.get("MONGO_URI"):
            uri, self.database = os.environ["MONGO_URI"], f"sofeed_long_run_{uuid.uuid4().hex[:12]}"
            self._parts.callback(_drop_database, uri, self.database)
        else:
            ferretdb = PrivateFerretDB(folder / "ferretdb")
            self._parts.callback(ferretdb.log.close)
            self._parts.callback(ferretdb.stop)
            uri, self.database = ferretdb.start(), "sofeed_long_run"
        self.store = self._parts.enter_context(closing(Store.connect(uri, self.database)))
        self.feed = FeedSimulator(every=0, seed=8)
        self._parts.callback(self.feed.stop)
        self.scheduler = launch_scheduler(
            [self.feed.feed_url], uri, self.database, folder / "scheduler.log", interval=INTERVAL
        )
        self._parts.callback(stop, self.scheduler.process)
        # Publishing starts once the first crawl is done: before it, a slow
        # start-up could let the feed's first questions scroll out unread.
        wait_until(self.scheduler.crawl_lines, timeout=60, what="the long run's first crawl")
        self.published += feed_ids(self.feed.feed_url)
        self._threads = [threading.Thread(target=work, daemon=True) for work in (self._publish, self._sample)]
        for thread in self._threads:
            thread.start()
        self._parts.callback(self._stop_threads)

    def _stop_threads(self):
        self._stopping.set()
        for thread in self._threads:
            thread.join()

    def _publish(self):
        while not self._stopping.wait(PUBLISH_EVERY):
            self.published.append(self.feed.publish())

    def _sample(self):
        while not self._stopping.wait(SAMPLE_EVERY):
            if self.scheduler.process.poll() is not None:
                return
            footprint = self.scheduler.footprint()
            self.samples.append(
                Sample(
                    at=time.time() - self.started,
                    cycles=len(self.scheduler.crawl_lines()),
                    rss_mb=footprint["rss_mb"],
                    fds=footprint["fds"],
                    threads=footprint["threads"],
                    children=footprint["children"],
                    cpu_seconds=cpu_seconds([self.scheduler.process.pid]),
                )
            )

    def wait_for_the_cycles(self):
        """Until the scheduler has logged `cycles` crawls (one feed: one line per cycle)."""
        remaining = self.cycles - len(self.scheduler.crawl_lines())
        wait_until(
            lambda: (
                len(self.scheduler.crawl_lines()) >= self.cycles or self.scheduler.process.poll() is not None
            ),
            timeout=max(remaining, 0) * INTERVAL * 2 + 120,
            step=1.0,
            what=f"{self.cycles} crawl cycles",
        )

    def finish(self):
        """Stop publishing, let the scheduler store the last question, then stop it: its exit status."""
        self._stop_threads()
        wait_until(lambda: self.missing() == [], timeout=30, step=0.5, what="the last questions stored")
        stop(self.scheduler.process)
        return self.scheduler.process.returncode

    def missing(self):
        """The published questions that are not in the database."""
        stored = {doc["_id"] for doc in self.store.questions.find({}, {"_id": 1})}
        return [key for key in self.published if key not in stored]

    def stop(self):
        self._parts.close()


def _drop_database(uri, database):
    client = MongoClient(uri)
    client.drop_database(database)
    client.close()
