"""Data scale: does /update slow down as the database grows from 1,000 to 100,000 questions?

Two databases on a private FerretDB: one of 1,000 questions, saved by
Store.save_question as crawls save them; the other a copy of it plus
99,000 older questions (bench/store_data.py). The web app runs on each
under gunicorn with webapp/gunicorn_conf.py, side by side, and wrk at a
modest 10 connections measures /update in the two cases a page meets:
nothing new (`timestamp=<newest fetched>`) and a first poll
(`timestamp=0`, the 200 newest questions). Sizes and cases take turns,
three rounds of 2 s each, and each figure is the median of its rounds.

The anchor is the same measurement at 1,000 questions; goal: the latency
at 100,000 at most 1.5x that. For context, the writer's side too: the
time Store.save_question takes to store a new question at each size, and
how often it logged that MongoDB stays slow; and how busy FerretDB was
while wrk ran.
"""

import contextlib
import logging
import statistics
import sys
import time
import uuid

import common

from bench import loadgen, store_data
from bench.services import cpu_seconds, newest_fetched, private_database, web_app
from sofeed.store import Store

# (small size, large size, wrk connections, wrk seconds, rounds, timed saves at each size);
# the small size is at least UPDATE_LIMIT, so that timestamp=0 hands out 200 at both.
FULL = (1000, 100_000, 10, 2, 3, 20)
QUICK = (200, 1000, 10, 1, 1, 3)
# wrk runs this long first on each freshly started app, unmeasured (not in quick mode).
WARM_UP_SECONDS = 2
# The timed saves stop after this long, however few: one can take many seconds at 100,000.
SAVES_BUDGET_SECONDS = 40


class CountWarnings(logging.Handler):
    """Counts the store's warnings (a new question that MongoDB was too slow to announce)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        self.count += 1


def timed_saves(store, count, budget=SAVES_BUDGET_SECONDS):
    """Seconds each of count new questions took to save; fewer if they take longer than budget in all."""
    seconds = []
    deadline = time.monotonic() + budget
    while len(seconds) < count and time.monotonic() < deadline:
        started = time.perf_counter()
        store_data.save_new(store, 1)
        seconds.append(time.perf_counter() - started)
    return seconds


def measure_update(apps, connections, seconds, rounds, warm_up, database_process, log):
    """{size: {case: (Load, FerretDB's busy cores)}} for /update on each app.

    The sizes and cases take turns, rounds times, and each figure is the
    median over the rounds, so that a busy spell of the machine cannot
    weigh on one size alone.
    """
    for app in apps.values():
        app.wait_ready()
    cases = {
        size: {"nothing new": newest_fetched(app), "timestamp=0 (200 newest)": 0}
        for size, app in apps.items()
    }
    if warm_up:
        for app in apps.values():
            loadgen.load(f"{app.url}/update?timestamp=0", connections, warm_up, log)
    loads = {(size, case): [] for size in apps for case in cases[size]}
    busy = dict.fromkeys(loads, 0.0)
    for _round in range(rounds):
        for size, case in loads:
            before = cpu_seconds(database_process.pid)
            url = f"{apps[size].url}/update?timestamp={cases[size][case]}"
            loads[size, case].append(loadgen.load(url, connections, seconds, log))
            busy[size, case] += cpu_seconds(database_process.pid) - before
    measured = {size: {} for size in apps}
    for (size, case), runs in loads.items():
        measured[size][case] = (loadgen.median(runs), busy[size, case] / sum(run.seconds for run in runs))
    return measured


def run(quick):
    small, large, connections, seconds, rounds, saves = QUICK if quick else FULL
    warm_up = 0 if quick else WARM_UP_SECONDS
    work = common.work_dir("data_scale")
    run_id = uuid.uuid4().hex[:8]
    warnings = CountWarnings()
    logging.getLogger("sofeed.store").addHandler(warnings)
    with private_database(work / "ferretdb") as (mongo_uri, process), open(work / "wrk.log", "w") as log:
        databases = {size: f"bench_scale_{size}_{run_id}" for size in (small, large)}
        stores = {size: Store.connect(mongo_uri, database) for size, database in databases.items()}
        store_data.save_new(stores[small], small - saves)
        saves_small = timed_saves(stores[small], saves)
        warnings_small, warnings.count = warnings.count, 0

        started = time.monotonic()
        store_data.copy(stores[small], stores[large])
        store_data.add_older(stores[large], large - small)
        fill_seconds = time.monotonic() - started
        saves_large = timed_saves(stores[large], saves)
        stored = stores[large].count_questions()
        for store in stores.values():
            store.close()
        if stored != large + len(saves_large):
            raise AssertionError(f"the store counts {stored} questions, not {large + len(saves_large)}")

        with contextlib.ExitStack() as running:
            apps = {
                size: running.enter_context(web_app(work / f"gunicorn-{size}.log", mongo_uri, database))
                for size, database in databases.items()
            }
            measured = measure_update(apps, connections, seconds, rounds, warm_up, process, log)
    at_small, at_large = measured[small], measured[large]

    result = common.Result(
        "data_scale",
        "5. Data scale",
        f"/update with {small:,} and with {large:,} stored questions, wrk, {connections} connections, "
        f"median of {rounds} rounds of {seconds} s per case and size",
    )
    anchor = f"the same at {small:,} questions"
    for case, (load, _busy) in at_large.items():
        for label, attribute in (("p50", "p50_ms"), ("p99", "p99_ms")):
            value, anchor_value = getattr(load, attribute), getattr(at_small[case][0], attribute)
            share = common.ratio(value, anchor_value)
            result.add(
                f"/update {label}, {case}, {large:,} questions",
                value,
                "ms",
                anchor,
                anchor_value,
                share,
                f"x the latency at {small:,}",
                "≤ 1.5x",
                share <= 1.5,
            )
    median_small, median_large = statistics.median(saves_small), statistics.median(saves_large)
    result.add(
        f"Store.save_question of a new question, median, {large:,} questions",
        median_large * 1000,
        "ms",
        anchor,
        median_small * 1000,
        common.ratio(median_large, median_small),
        f"x the time at {small:,}",
        "none (context)",
        None,
    )
    result.note(
        "requests/s",
        "; ".join(
            f"{case}: {at_small[case][0].requests_per_second:,.0f} at {small:,}, "
            f"{at_large[case][0].requests_per_second:,.0f} at {large:,}"
            for case in at_small
        ),
    )
    result.note(
        "FerretDB CPU while wrk ran (cores busy)",
        "; ".join(
            f"{case}: {at_small[case][1]:.2f} at {small:,}, {at_large[case][1]:.2f} at {large:,}"
            for case in at_small
        ),
    )
    result.note(
        "Store.save_question of a new question, slowest",
        f"{max(saves_small) * 1000:.0f} ms at {small:,}, {max(saves_large) * 1000:.0f} ms at {large:,}; "
        f"'MongoDB stays slow' warnings: {warnings_small} at {small:,}, {warnings.count} at {large:,} "
        f"(of {len(saves_small)} and {len(saves_large)} saves)",
    )
    result.note(
        f"making the {large:,}-question database",
        f"a copy of the {small:,}, plus {large - small:,} older questions, in {fill_seconds:.1f} s",
    )
    return result


if __name__ == "__main__":
    sys.exit(common.main(run))
