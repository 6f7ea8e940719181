"""Crawl cycle cost: CPU time and memory of one scheduled crawl, in steady state.

scheduler.py crawls a local feed server every 0.5 s (a fixed 30-entry feed
shaped like Stack Overflow's) into a fresh database on a private FerretDB.
The feed server counts the requests for the feed; at the 20th and at the
220th, the benchmark reads the scheduler's `/proc/<pid>/stat` (utime +
stime) and `/proc/<pid>/status` (VmRSS, VmHWM): CPU per cycle is the
difference over the 200 cycles between them, each a 200 answer whose 30
entries are all duplicates. Then the feed starts sending an ETag, and the
same is measured over 60 cycles answered 304 Not Modified.

Anchor: `scrapy crawl sofeed` as a fresh subprocess per cycle, what cron
would run, on the same feed and database: CPU and peak RSS of each run come
from os.wait4's resource usage, the median of a few runs, for both answers.
Goals: at least 10x less CPU per cycle than the anchor, and RSS flat within
10 MiB over the 200 cycles.
"""

import os
import statistics
import subprocess
import sys
import uuid

import common

from bench.services import cpu_seconds, memory_mib, private_database
from sofeed.store import Store
from tests.processes import launch_scheduler, product_environment, wait_until
from tools.sim import atom
from tools.sim.feed_server import FeedServer

INTERVAL = 0.5
FEED_ENTRIES = 30
ETAG = '"bench-feed-1"'
# (warm-up cycles, measured 200 cycles, measured 304 cycles, `scrapy crawl` runs per answer)
FULL = (20, 200, 60, 3)
QUICK = (2, 3, 2, 1)


class Sample:
    """The scheduler's and the database's CPU time, and the scheduler's memory, at one moment."""

    def __init__(self, scheduler_pid, database_pid, requests):
        self.requests = requests
        self.cpu = cpu_seconds(scheduler_pid)
        self.database_cpu = cpu_seconds(database_pid)
        self.rss, self.peak_rss = memory_mib(scheduler_pid)


def sample_at(server, count, scheduler_process, database_process):
    """Wait for the count-th request for the feed, then take a Sample at once."""

    def arrived():
        if scheduler_process.poll() is not None:
            raise RuntimeError(f"scheduler.py exited with status {scheduler_process.returncode}")
        return len(server.requests_for("/feeds")) >= count

    wait_until(arrived, timeout=30 + count * INTERVAL * 3, step=0.005, what=f"feed request {count}")
    return Sample(scheduler_process.pid, database_process.pid, len(server.requests_for("/feeds")))


def scrapy_crawl(feed_url, mongo_uri, database, log_path, database_process):
    """One `scrapy crawl sofeed` subprocess: (its CPU seconds, its peak RSS in MiB, the database's CPU)."""
    command = [sys.executable, "-m", "scrapy", "crawl", "sofeed", "-a", f"feed_url={feed_url}"]
    command += ["-s", f"MONGO_URI={mongo_uri}", "-s", f"MONGO_DATABASE={database}"]
    database_before = cpu_seconds(database_process.pid)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, cwd=common.ROOT, env=product_environment(), stdout=log, stderr=subprocess.STDOUT
        )
        _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"scrapy crawl exited with status {process.returncode}; see {log_path}")
    return (
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        cpu_seconds(database_process.pid) - database_before,
    )


def check_answers(server, first, last, etag):
    """Fail unless requests first..last (1-based) asked with our ETag, so were answered 304."""
    requests = server.requests_for("/feeds")[first - 1 : last]
    conditional = sum(1 for request in requests if request.headers.get("If-None-Match") == etag)
    if conditional != len(requests):
        raise AssertionError(f"{len(requests) - conditional} of the 304 cycles were not conditional requests")


def run(quick):
    warm_up, cycles, not_modified_cycles, anchor_runs = QUICK if quick else FULL
    work = common.work_dir("crawl_cycle")
    body = atom.realistic_feed(FEED_ENTRIES, seed=30)
    database = f"bench_crawl_{uuid.uuid4().hex[:8]}"
    server = FeedServer().start()
    try:
        with private_database(work / "ferretdb") as (mongo_uri, database_process):
            feed_url = server.serve_feed("/feeds", body)
            log_path = work / "scheduler.log"
            with launch_scheduler([feed_url], mongo_uri, database, log_path, INTERVAL) as running:
                process = running.process
                first = sample_at(server, warm_up, process, database_process)
                after = sample_at(server, warm_up + cycles, process, database_process)
                server.serve_feed("/feeds", body, etag=ETAG)
                start_304 = warm_up + cycles + 2  # a 200 with the ETag, then 304s
                first_304 = sample_at(server, start_304, process, database_process)
                after_304 = sample_at(server, start_304 + not_modified_cycles, process, database_process)
            check_answers(server, start_304, start_304 + not_modified_cycles - 1, ETAG)
            store = Store.connect(mongo_uri, database)
            stored = store.count_questions()
            store.close()
            if stored != FEED_ENTRIES:
                raise AssertionError(f"the scheduler stored {stored} questions, not {FEED_ENTRIES}")

            # The scheduler left the feed's ETag in the database: these runs get 304s.
            before = len(server.requests_for("/feeds"))
            anchor_304 = [
                scrapy_crawl(feed_url, mongo_uri, database, work / f"scrapy-304-{n}.log", database_process)
                for n in range(anchor_runs)
            ]
            server.serve_feed("/feeds", body)
            anchor_200 = [
                scrapy_crawl(feed_url, mongo_uri, database, work / f"scrapy-200-{n}.log", database_process)
                for n in range(anchor_runs)
            ]
            check_answers(server, before + 1, before + anchor_runs, ETAG)
    finally:
        server.stop()

    measured = after.requests - first.requests
    measured_304 = after_304.requests - first_304.requests
    cpu = (after.cpu - first.cpu) / measured
    cpu_304 = (after_304.cpu - first_304.cpu) / measured_304
    anchor_cpu = statistics.median(run[0] for run in anchor_200)
    anchor_cpu_304 = statistics.median(run[0] for run in anchor_304)
    anchor_rss = statistics.median(run[1] for run in anchor_200)
    growth = after.rss - first.rss

    result = common.Result(
        "crawl_cycle",
        "2. Crawl cycle cost",
        f"scheduler.py --interval {INTERVAL} against a local {FEED_ENTRIES}-entry feed, "
        f"{measured} cycles answered 200 (all duplicates) and {measured_304} answered 304, "
        f"after {warm_up} warm-up cycles; anchor: median of {anchor_runs} `scrapy crawl sofeed` runs each",
    )
    anchor_name = "`scrapy crawl sofeed` subprocess"
    result.add(
        "CPU per cycle, 200 with 30 duplicates",
        cpu * 1000,
        "ms",
        anchor_name,
        anchor_cpu * 1000,
        common.ratio(anchor_cpu, cpu),
        "x less CPU",
        "≥ 10x less",
        anchor_cpu >= 10 * cpu,
    )
    result.add(
        "CPU per cycle, 304 Not Modified",
        cpu_304 * 1000,
        "ms",
        anchor_name,
        anchor_cpu_304 * 1000,
        common.ratio(anchor_cpu_304, cpu_304),
        "x less CPU",
        "≥ 10x less",
        anchor_cpu_304 >= 10 * cpu_304,
    )
    result.add(
        f"peak RSS (VmHWM) after the {measured} cycles",
        after.peak_rss,
        "MiB",
        anchor_name + " (ru_maxrss)",
        anchor_rss,
        common.ratio(after.peak_rss, anchor_rss),
        "x the anchor's peak",
        "none (context)",
        None,
    )
    result.add(
        f"RSS growth over {measured} cycles",
        growth,
        "MiB",
        "none (a fresh process per cycle)",
        None,
        None,
        "",
        "≤ 10 MiB",
        growth <= 10,
    )
    result.note(
        "scheduler RSS",
        f"{first.rss:.1f} MiB at cycle {first.requests}, {after.rss:.1f} MiB at cycle {after.requests}, "
        f"{after_304.rss:.1f} MiB at cycle {after_304.requests}; peak {after_304.peak_rss:.1f} MiB",
    )
    result.note(
        "FerretDB CPU per cycle",
        f"scheduler: {(after.database_cpu - first.database_cpu) / measured * 1000:.1f} ms (200), "
        f"{(after_304.database_cpu - first_304.database_cpu) / measured_304 * 1000:.1f} ms (304); "
        f"scrapy crawl: {statistics.mean(run[2] for run in anchor_200) * 1000:.0f} ms (200), "
        f"{statistics.mean(run[2] for run in anchor_304) * 1000:.0f} ms (304), at 10 ms resolution",
    )
    result.note(
        "anchor runs",
        "200: "
        + ", ".join(f"{run[0]:.2f} CPU-s / {run[1]:.0f} MiB" for run in anchor_200)
        + "; 304: "
        + ", ".join(f"{run[0]:.2f} CPU-s / {run[1]:.0f} MiB" for run in anchor_304),
    )
    return result


if __name__ == "__main__":
    sys.exit(common.main(run))
