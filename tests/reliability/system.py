"""The whole site as real processes, for the reliability scenarios that need all of it.

A Site is tools/sim/feed_server.py, scheduler.py crawling it every second and the
web app under gunicorn (production config), on one database, with their
logs in a folder; tests/processes.py starts each part. Also here: what the
database holds, what the feed holds, the CPU time of a process tree, and
headless Chromium.
"""

import contextlib
import os
import re
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from lxml import etree
from playwright.sync_api import sync_playwright
from pymongo import MongoClient

from sofeed.atom import ATOM_NS, read_entry
from sofeed.store import VISIBILITY_LAG, Store, question_key
from tests.browser import launch_chromium
from tests.processes import FeedSimulator, WebApp, launch_scheduler, stop, wait_until

REFRESH_SECONDS = 0.25  # the web app's default: how stale a process's cache may be
FEED_SIZE = 30  # entries in tools/sim/feed_server.py's feed
# A traceback, or a line logged at ERROR or worse, in scheduler.py's or gunicorn's format.
_PROBLEM = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")


class Site:
    """The feed simulator, the scheduler crawling it and gunicorn, on one database.

    Use it as a context manager: it stops what it started, last first.
    publish_every is the simulator's --every (0: only what the test publishes).
    """

    def __init__(self, mongo_uri, database, folder, publish_every=0.0, poll_seconds=0.5):
        self.folder = Path(folder)
        self._parts = contextlib.ExitStack()
        try:
            self.feed = self._parts.enter_context(_stopping(FeedSimulator(every=publish_every)))
            self.scheduler = launch_scheduler(
                [self.feed.feed_url], mongo_uri, database, self.folder / "scheduler.log"
            )
            self._parts.callback(stop, self.scheduler.process)
            # gunicorn writes to its own copy of the log's file descriptor.
            with open(self.folder / "gunicorn.log", "w") as log:
                self.web = self._parts.enter_context(
                    _stopping(WebApp(mongo_uri, database, log, poll_seconds))
                )
            self.store = self._parts.enter_context(contextlib.closing(Store.connect(mongo_uri, database)))
        except BaseException:
            self._parts.close()
            raise
        self.url = self.web.url

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._parts.close()

    def stop_writing(self):
        """Stop the feed, let the scheduler log a crawl begun after that, then stop the scheduler.

        So the stored set stops growing, and every crawl that stored a question has logged its line.
        """
        self.feed.stop()
        logged = len(self.scheduler.crawls())
        wait_until(lambda: len(self.scheduler.crawls()) >= logged + 2, 30, what="a crawl of the stopped feed")
        stop(self.scheduler.process)

    def stored(self):
        return stored_questions(self.store)

    def wait_for_first_crawl(self, timeout=60):
        wait_until(lambda: self.store.count_questions() >= FEED_SIZE, timeout, what="the first crawl")

    def wait_until_stored(self, ids, timeout=60):
        """Until every one of ids is in the database."""
        wait_until(lambda: set(ids) <= self.stored().keys(), timeout, step=0.2, what="the crawl storing them")

    def wait_until_settled(self):
        """Until the web app hands out every question stored so far (VISIBILITY_LAG and a refresh)."""
        newest = max(self.stored().values(), default=0)
        settled = newest + VISIBILITY_LAG.total_seconds() + REFRESH_SECONDS
        wait_until(lambda: time.time() > settled, what="the newest question settling")

    def feed_ids(self):
        """The _ids of the entries the feed holds now."""
        return feed_ids(self.feed.feed_url)

    def log_problems(self):
        """Lines of the scheduler's and gunicorn's logs that tell of a crash or an error."""
        lines = self.scheduler.log().splitlines() + (self.folder / "gunicorn.log").read_text().splitlines()
        return [line for line in lines if _PROBLEM.search(line)]

    def web_pids(self):
        """gunicorn's master and its workers."""
        return [self.web.process.pid, *self.web.workers()]


@contextlib.contextmanager
def throwaway_site(mongo_uri, prefix, folder):
    """A Site on a database of its own, after its first crawl; the database is dropped afterwards."""
    database = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with Site(mongo_uri, database, folder) as site:
        site.wait_for_first_crawl()
        yield site
    client = MongoClient(mongo_uri)
    client.drop_database(database)
    client.close()


@contextlib.contextmanager
def _stopping(part):
    try:
        yield part
    finally:
        part.stop()


def stored_questions(store):
    """{_id: fetched epoch seconds, as the web app hands it out} of every stored question."""
    documents = store.questions.find({}, {"fetched": 1})
    return {doc["_id"]: round(doc["fetched"].timestamp(), 3) for doc in documents}


def feed_ids(feed_url):
    """The store _ids of the entries in the feed at feed_url, read as the spider reads them."""
    with urllib.request.urlopen(feed_url, timeout=10) as response:
        root = etree.fromstring(response.read())
    ids = []
    for entry in root.iter(f"{{{ATOM_NS}}}entry"):
        fields = read_entry(entry, feed_url)
        ids.append(question_key(fields["entry_id"], fields["link"]))
    return ids


def entry_id_counts(store):
    """How many stored documents each Atom id has: 1 each when every question is stored once."""
    return Counter(doc["entry_id"] for doc in store.questions.find({}, {"entry_id": 1}))


def cpu_seconds(pids):
    """User plus system CPU time, in seconds, that the processes have used so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def chromium():
    """Debian's headless Chromium, driven by Playwright."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def displayed_ids(page):
    """The ids of the questions on the page, top to bottom."""
    return page.locator("#questions > li[data-id]").evaluate_all(
        "items => items.map(item => item.dataset.id)"
    )
