"""Retention: what a prune (Store.prune_questions) costs on FerretDB at 100,000 questions.

A private FerretDB holds 100,000 questions (bench/store_data.py: the newest
1,000 saved as crawls save them, 99,000 older ones inserted a second apart,
a month old). Three prunes run one after the other, as the scheduler's
retention thread runs them: one with nothing to delete (the cutoff before
the oldest question), a day's worth of Stack Overflow (the oldest 3,000),
and one batch (PRUNE_BATCH, 10,000) of a backlog, as the first prunes of a
mirror that turned SOFEED_KEEP_DAYS on late go. While each runs, a second
client saves new questions one after the other, as a crawl would, and each
save is timed.

The anchor of a prune is the prune with nothing to delete: on FerretDB it
is one scan of `questions`, which finding the old questions costs whatever
their number. For the crawl, the anchor is the same saves with no prune
running. No goal: these figures are what the README's Retention section
quotes.
"""

import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import common

from bench import store_data
from bench.services import private_database
from sofeed.store import PRUNE_BATCH, Store

# (questions, one day's worth to prune, questions a prune deletes at most)
FULL = (100_000, 3_000, PRUNE_BATCH)
QUICK = (500, 100, 100)


def timed(function, *args):
    """(function(*args), seconds it took)."""
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def saves_until(done, saver):
    """Save new questions one after the other, as a crawl does, until done(); the seconds each took."""
    seconds = []
    while not done():
        seconds.append(timed(store_data.save_new, saver, 1)[1])
    return seconds


def prune_while_saving(store, saver, before, batch):
    """(deleted, seconds, save times) of one prune in a thread, with saves going on beside it."""
    pruned = {}
    pruning = threading.Thread(
        target=lambda: pruned.update(done=timed(store.prune_questions, before, datetime.now(UTC), batch))
    )
    pruning.start()
    saves = saves_until(lambda: not pruning.is_alive(), saver)
    pruning.join()
    return (*pruned["done"], saves)


def run(quick):
    size, one_day, batch = QUICK if quick else FULL
    work = common.work_dir("prune")
    database = f"bench_prune_{uuid.uuid4().hex[:8]}"
    with private_database(work / "ferretdb") as (mongo_uri, _process):
        store = Store.connect(mongo_uri, database, socket_timeout_ms=600_000)
        saver = Store.connect(mongo_uri, database, socket_timeout_ms=600_000)
        _, fill_seconds = timed(store_data.fill, store, size)
        oldest = store.questions.find_one({}, sort=[("fetched", 1)])["fetched"]

        quiet_until = time.monotonic() + (1 if quick else 3)
        quiet = saves_until(lambda: time.monotonic() > quiet_until, saver)
        prunes = {}
        for name, before in (
            ("nothing to delete", oldest),
            (f"a day's worth ({one_day:,})", oldest + timedelta(seconds=one_day)),
            (f"one batch of a backlog ({batch:,})", oldest + timedelta(seconds=size // 2)),
        ):
            stored = store.count_questions()
            prunes[name] = (stored, *prune_while_saving(store, saver, before, batch))
        counted, documents = store.count_questions(), store.questions.count_documents({})
        store.client.drop_database(database)
        store.close()
        saver.close()
    if counted != documents:
        raise AssertionError(f"after the prunes the store counts {counted} questions, but holds {documents}")

    result = common.Result(
        "prune",
        "6. Retention",
        f"Store.prune_questions on FerretDB at {size:,} questions, while a second client saves new "
        f"questions one after the other (load average {os.getloadavg()[0]:.1f} at the end)",
    )
    quiet_median = statistics.median(quiet)
    anchor_seconds = prunes["nothing to delete"][2]
    for name, (stored, deleted, seconds, saves) in prunes.items():
        if name != "nothing to delete":  # the anchor itself
            result.add(
                f"prune of {name}, from {stored:,} questions",
                seconds,
                "s",
                "a prune with nothing to delete (one scan)",
                anchor_seconds,
                common.ratio(seconds, anchor_seconds),
                "x a scan",
                "none (context)",
                None,
            )
        slowest, median = max(saves, default=0.0), statistics.median(saves) if saves else 0.0
        result.add(
            f"slowest Store.save_question during the prune of {name} ({len(saves)} saves)",
            slowest * 1000,
            "ms",
            "the median save with no prune running",
            quiet_median * 1000,
            common.ratio(slowest, quiet_median),
            "x the median save",
            "none (context)",
            None,
        )
        result.note(
            f"prune of {name}",
            f"deleted {deleted:,} in {seconds:.2f} s; saves beside it: "
            f"median {median * 1000:.0f} ms, slowest {slowest * 1000:.0f} ms",
        )
    result.note(
        "with no prune running",
        f"{len(quiet)} saves, median {quiet_median * 1000:.0f} ms, slowest {max(quiet) * 1000:.0f} ms",
    )
    result.note(f"making the {size:,}-question database", f"{fill_seconds:.1f} s")
    result.note("after the prunes", f"the store counts {counted:,} questions and holds {documents:,}")
    return result


if __name__ == "__main__":
    sys.exit(common.main(run))
