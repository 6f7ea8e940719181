"""Scenario 3: the scheduler killed with SIGKILL while it inserts a 200-entry feed, then restarted.

A crawl stores a feed oldest entry first, and saves the feed's ETag only
after a crawl that stored everything, so the next crawl reads the whole
feed again and stores what is missing. The kill is placed, not hoped for:
the test freezes the scheduler (SIGSTOP), looks at the database, and kills
it (SIGKILL) only at the moment it wants, else lets it go on (SIGCONT).

The naive strategy, kept here as a comparison and nowhere in the product,
walks the feed newest first and stops at the first question it already
has: the same crash would lose every entry it had not reached.
"""

import contextlib
import os
import signal
import time
from collections import Counter

import pytest

from sofeed.scheduling.loop import LEASE_INTERVALS
from sofeed.store import UNANNOUNCED_AFTER, question_key
from tests.processes import launch_scheduler, log_time, stop, wait_until
from tests.reliability.results import record
from tools.sim.atom import render_feed, sample_entries

# The full tier (`make check`): real processes for seconds to minutes each.
pytestmark = pytest.mark.check

INTERVAL = 1.0
FEED = sample_entries(200)  # newest first, as the feed lists them
IDS = [entry.entry_id for entry in FEED]


def stop_at_first_duplicate_loss(newest_first, stored_before_the_crash):
    """How many entries a naive crawl would never store after restarting: one that walks the
    feed newest first, inserting, and stops at the first question it already has."""
    stored = set(stored_before_the_crash)
    for entry_id in newest_first:
        if entry_id in stored:
            break
        stored.add(entry_id)
    return len(set(newest_first) - stored)


def freeze_when(process, condition, timeout=60):
    """SIGSTOP the process at a moment when condition() holds, and leave it stopped.

    Between two looks it runs for a while, so that the freezes do not make
    its inserts look slow (a slow insert is stamped again, and logged).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        os.kill(process.pid, signal.SIGSTOP)
        if condition():
            return
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.03)
    raise AssertionError(f"the scheduler was never caught in that state within {timeout} s")


@pytest.fixture
def feed_url(feed_server):
    return feed_server.serve_feed("/feeds", render_feed(FEED))


@pytest.fixture
def schedulers(mongo_uri, database_name, tmp_path):
    """Start schedulers on the feed; each is stopped at the end, however the test ends."""
    started = []

    def start(feed_url):
        scheduler = launch_scheduler(
            [feed_url], mongo_uri, database_name, tmp_path / f"scheduler-{len(started)}.log", INTERVAL
        )
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        if scheduler.process.poll() is None:
            os.kill(scheduler.process.pid, signal.SIGCONT)
            stop(scheduler.process)


def kill_and_restart(schedulers, feed_url, store, at_the_right_moment):
    """Kill the first scheduler with SIGKILL at the right moment of its inserts, start a
    second one; returns (what the first left stored, the killed lease, the second, kill time)."""
    first = schedulers(feed_url)
    wait_until(lambda: store.questions.count_documents({}) >= 10, timeout=60, step=0.01)
    freeze_when(first.process, lambda: at_the_right_moment(store.questions.count_documents({})))
    first.process.kill()
    first.process.wait()
    killed_at = time.time()
    left = [doc["entry_id"] for doc in store.questions.find({}, {"entry_id": 1})]
    lease = store.lease("scheduler")
    second = schedulers(feed_url)
    # Until the crawls that stored the rest have logged their lines (a crawl
    # cut off at its deadline stores its items all the same, and says so).
    wait_until(
        lambda: sum(crawl.count("new") for crawl in second.crawls()) >= len(FEED) - len(left),
        timeout=180,
        step=0.2,
        what="the restarted scheduler storing the rest of the feed",
    )
    return left, lease, second, killed_at


def test_a_scheduler_killed_while_inserting_a_200_entry_feed_stores_every_entry_once_after_a_restart(
    schedulers, feed_url, store
):
    # Killed between two questions: each one stored so far is in `questions`, `recent` and the count.
    def between_two_questions(inserted):
        return 20 <= inserted < len(FEED) - 20 and store.count_questions() == inserted

    left, lease, second, killed_at = kill_and_restart(schedulers, feed_url, store, between_two_questions)

    assert 0 < len(left) < len(FEED)
    # Oldest first: what the crash left is the oldest part of the feed.
    assert set(left) == set(IDS[len(FEED) - len(left) :])
    assert Counter(doc["entry_id"] for doc in store.questions.find()) == Counter(IDS)
    # The kill can still land inside the next question's announcement; a later
    # crawl announces such a question once it is UNANNOUNCED_AFTER old.
    wait_until(
        lambda: {doc["_id"] for doc in store.recent.find({}, {"_id": 1})} == {question_key(i) for i in IDS},
        timeout=40,
        what="every question in `recent`, what the page reads",
    )
    # ... or between its copy in `recent` and its count: one short for good (scenario 3c).
    assert len(FEED) - 1 <= store.count_questions() <= len(FEED)
    new_after_the_kill = sum(crawl.count("new") for crawl in second.crawls())
    assert new_after_the_kill - (len(FEED) - len(left)) in (0, 1)
    assert second.unexpected_lines() == []
    # The dead scheduler's lease ran out by itself; the new one waited for it, then crawled.
    [active] = second.lines("active: this scheduler")
    assert lease["expires"].timestamp() <= killed_at + LEASE_INTERVALS * INTERVAL
    assert log_time(active[:23]) >= lease["expires"].timestamp() or not second.lines("standby: ")
    takeover = second.crawls()[0].started - killed_at
    lost_by_stopping = stop_at_first_duplicate_loss(IDS, IDS[: len(left)])  # its crash kept the newest
    assert lost_by_stopping == len(FEED) - len(left) > 0
    # Our order is what makes even a stop at the first duplicate safe in this crash
    # (not why the crawl goes on).
    assert stop_at_first_duplicate_loss(IDS, left) == 0

    record(
        "Crash in the middle of a crawl",
        injected=f"`kill -9` of the scheduler after {len(left)} of a {len(FEED)}-entry feed's inserts, "
        "then a restart",
        must_hold="every entry stored exactly once, in `questions`, `recent` and the count; "
        "the restart takes over the dead scheduler's lease",
        result=f"{len(FEED)}/{len(FEED)} stored once ({len(left)} before the kill, "
        f"{len(FEED) - len(left)} new after it); the restart crawled {takeover:.1f} s after the kill "
        f"(lease: {LEASE_INTERVALS:g} intervals); a newest-first stop-at-first-duplicate "
        f"crawl would have lost {lost_by_stopping} of {len(FEED)} in the same crash",
        order="3a",
    )


def crawled_since(store, moment):
    """Whether a crawl begun after `moment` (epoch seconds) has ended: its record is written at its end."""
    return any(crawl["started"].timestamp() > moment for crawl in store.crawl_statuses())


def before_its_copy_in_recent(store, inserted):
    return store.recent.count_documents({}) < inserted


def before_it_is_counted(store, inserted):
    return store.recent.count_documents({}) == inserted and store.count_questions() < inserted


UNCOUNTED = pytest.mark.xfail(
    strict=True,
    reason="sofeed/store.py: a writer killed between a question's copy into `recent` and taking its "
    "number in `counted` leaves the count one short for good (the question itself shows: it is in "
    "`recent`); recounting `questions` scans it on FerretDB, so the count is kept (docs/COUNTING.md)",
)


@pytest.mark.parametrize(
    ("moment", "when", "order"),
    [
        pytest.param(
            before_its_copy_in_recent,
            "a question is in `questions`, not yet in `recent` (what the page reads) nor counted",
            "3b",
            id="before-its-copy-in-recent",
        ),
        pytest.param(
            before_it_is_counted,
            "a question is in `questions` and `recent`, not yet counted",
            "3c",
            marks=UNCOUNTED,
            id="before-it-is-counted",
        ),
    ],
)
def test_a_scheduler_killed_between_a_questions_insert_and_its_announcement_still_shows_and_counts_it(
    moment, when, order, schedulers, feed_url, store
):
    def at_that_moment(inserted):
        return 20 <= inserted < len(FEED) - 20 and moment(store, inserted)

    left, _lease, _second, killed_at = kill_and_restart(schedulers, feed_url, store, at_that_moment)

    assert Counter(doc["entry_id"] for doc in store.questions.find()) == Counter(IDS)

    def missing_from_recent():
        return {question_key(i) for i in IDS} - {doc["_id"] for doc in store.recent.find({}, {"_id": 1})}

    def recovered():
        return not missing_from_recent() and store.count_questions() == len(FEED)

    # The scheduler keeps crawling: the crawls that see what the dead one left
    # announce it once it is UNANNOUNCED_AFTER old. A crawl begun two intervals
    # after that has had its chance: waiting longer would wait for nothing.
    chance = killed_at + UNANNOUNCED_AFTER.total_seconds() + 2 * INTERVAL
    with contextlib.suppress(AssertionError):
        wait_until(lambda: recovered() or crawled_since(store, chance), timeout=60)
    missing, counted = missing_from_recent(), store.count_questions()
    record(
        f"Crash between a question's insert and its announcement, {moment.__name__.replace('_', ' ')}",
        injected=f"`kill -9` of the scheduler when {when} (question {len(left)} of {len(FEED)}), "
        "then a restart",
        must_hold="every entry stored exactly once, in `questions`, `recent` and the count",
        result=f"{len(FEED)}/{len(FEED)} in `questions`; {len(missing)} missing from `recent` "
        f"(the page); count {counted} of {len(FEED)}",
        order=order,
    )
    assert missing == set()
    assert counted == len(FEED)
