"""Push: live streams to thousands of pages, paced pollers beside them, slow clients, and saturation.

The system runs as in production on this machine: tools/sim/feed_server.py
plays Stack Overflow, scheduler.py crawls it every second, and the web app
runs under gunicorn with webapp/gunicorn_conf.py twice, taking turns: with
its default gevent worker, and with SOFEED_WORKER_CLASS=gthread (the anchor:
the threaded model the project had before, a thread per stream, so a few
streams per process). Each binds its own port, a socket per worker
(reuse_port), as in production. The clients are bench/clients.py, asyncio
processes on the same machine.

1. Streams. 1,000, 5,000 and then 10,000 pages ask for `/events` at once
   from the newest question, on a freshly started server. Once every page
   has its answer, the benchmark publishes 3 questions, the scheduler's
   next crawl stores them, and each page notes when it first has each
   one. A page refused a stream polls `/update` every 5 s as the page's
   script does, so the anchor's pages are delivered too, later. Figures:
   streams accepted, pages that received every question, delivery p50,
   p95 and max counted from the end of the crawl (its line in the
   scheduler's log), the web workers' RSS per page above their idle RSS,
   and their CPU while holding the pages and while delivering.
2. Paced pollers beside the streams. With the 10,000 pages still open,
   1,000 pollers each ask for `/update` (nothing new) once a second for
   20 s, on the clock: a request goes when due whether or not the last
   was answered, and its latency counts from when it was due.
3. Slow clients. An ordinary client asks for `/update` 20 times a second
   (paced the same way) for 8 s alone, then for 15 s beside 1,000
   connections that each trickle an endless request, a byte every 2 s.
4. Saturation. wrk flat out at 200 and then 1,000 connections for 8 s on
   `/update` (nothing new), taking turns with the trivial Flask view of
   bench/fanout.py under the same worker class.

Goals (issue 13): 10,000 streams accepted and every page delivered, p95
≤ 1 s after the crawl ends, ≤ 20 KB of RSS per stream above idle; paced
pollers p99 ≤ 50 ms and no error beside 10,000 streams; no failed
ordinary request and its p99 within 2x its p99 alone beside 1,000 slow
clients; no answer other than 2xx under wrk (its socket errors, timeouts
after 10 s included, are reported beside). Each figure's anchor is
the same measurement under gthread; the saturation figures' anchor is the
trivial view. BENCH_QUICK=1 runs 40 pages, short runs, and wrk at 200
connections only, with pages polling every second.
"""

import contextlib
import math
import os
import sys
import time
import uuid

import common

from bench import loadgen
from bench.clients import PacedPollers, Pages, Tricklers
from bench.fanout import TRIVIAL_APP, add_rate
from bench.services import Together, Workers, newest_fetched, private_database, web_app
from sofeed.store import Store
from tests.processes import FeedSimulator, launch_scheduler
from tests.reliability.pollers import percentile
from tools.sim.feed_server import FEED_SIZE
from webapp.documents import epoch

# The worker classes of webapp/gunicorn_conf.py: gevent, the production default, and the anchor.
SERVERS = {"gevent": {"WORKER_CLASS": "gevent"}, "gthread": {"WORKER_CLASS": "gthread"}}
MEASURED, ANCHOR = "gevent", "gthread"
ANCHOR_NAME = "gthread, same load"

FULL = {
    "pages": (1000, 5000, 10_000),
    "questions": 3,
    "poll_seconds": 5.0,  # the page's default
    "crawl_interval": 1.0,
    "holding_seconds": 2.0,  # CPU sampled while the pages idle
    "pollers": (1000, 1.0, 20.0),  # count, interval, seconds
    "ordinary": (0.05, 8.0, 15.0),  # interval, seconds alone, seconds beside the slow clients
    "tricklers": (1000, 2.0),  # count, seconds between bytes
    "wrk": ((200, 1000), 8),  # connections, seconds per run
    "timeout": 5.0,  # a request not answered by then is a failure
}
QUICK = {
    "pages": (40,),
    "questions": 2,
    "poll_seconds": 1.0,
    "crawl_interval": 0.5,
    "holding_seconds": 0.2,
    "pollers": (40, 0.5, 0.5),
    "ordinary": (0.05, 0.4, 0.5),
    "tricklers": (40, 0.5),
    "wrk": ((200,), 1),
    "timeout": 0.5,
}
# A delivery is waited for this long after the crawl, and for gthread's pollers this many poll periods more.
DELIVERY_WAIT, POLL_PERIODS = 10.0, 3


class Phases:
    """How long each part of the benchmark took, to keep its time in check."""

    def __init__(self):
        self.seconds = {}
        self._last = time.monotonic()

    def ended(self, name):
        now = time.monotonic()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now

    def describe(self):
        return ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.seconds.items())


class Site:
    """The feed simulator and the scheduler crawling it into a private database: what every server reads."""

    def __init__(self, running, work, interval):
        self.work = work
        self.database = f"bench_push_{uuid.uuid4().hex[:8]}"
        self.simulator = FeedSimulator(every=0, seed=13)
        running.callback(self.simulator.stop)
        self.mongo_uri, _ = running.enter_context(private_database(work / "ferretdb"))
        self.scheduler = running.enter_context(
            launch_scheduler(
                [self.simulator.feed_url], self.mongo_uri, self.database, work / "scheduler.log", interval
            )
        )
        self.store = Store.connect(self.mongo_uri, self.database)
        running.callback(self.store.close)
        self.stored = FEED_SIZE  # the first crawl stores the whole feed

    @contextlib.contextmanager
    def servers(self, name, trivial=False):
        """A fresh web app of each worker class, booted side by side and stopped together: {kind: app}.

        With trivial, {kind: (app, the trivial view under the same worker class)}.
        """
        with Together() as running:
            apps, anchors = {}, {}
            for kind, options in SERVERS.items():
                log_path = self.work / f"gunicorn-{kind}-{name}.log"
                apps[kind] = running.enter(web_app(log_path, self.mongo_uri, self.database, **options))
                if trivial:
                    log_path = self.work / f"gunicorn-trivial-{kind}.log"
                    anchors[kind] = running.enter(web_app(log_path, app=TRIVIAL_APP, **options))
            for part in running.parts:
                part.wait_ready()
            for app in apps.values():
                newest_fetched(app, self.stored)  # the first crawl is in, and handed out
            yield {kind: (app, anchors[kind]) for kind, app in apps.items()} if trivial else apps

    def newest(self):
        """The cursor of a page that has every stored question: the newest `fetched`, as /update gives it.

        Read from the database, so that an anchor too busy to answer cannot stall the benchmark.
        """
        return epoch(self.store.recent_questions(limit=1)[0]["fetched"])

    def crawl_new(self, count):
        """Publish count questions and wait until the scheduler stores them: (ids, when its crawl ended)."""
        logged = len(self.scheduler.crawls())
        ids = [self.simulator.publish() for _ in range(count)]
        crawls = self.scheduler.crawls_storing(count, after=logged)
        self.stored += count
        return ids, max(crawl.ended for crawl in crawls)


@contextlib.contextmanager
def streams(site, app, count, settings, pages_log):
    """Scenario 1 on a fresh app: count pages, a crawl of new questions, their delivery.

    Yields what was measured with the pages still open, so that scenario 2
    can run beside them; the pages close after.
    """
    workers = Workers(app)
    idle_rss = workers.rss_mib()
    cursor = site.newest()
    with Pages(app.url, count, cursor, pages_log, poll_seconds=settings["poll_seconds"]) as pages:
        opening = pages.opened()
        time.sleep(settings["holding_seconds"] / 2)  # the last pages' first events
        open_rss = workers.rss_mib()
        cpu_before, started = workers.cpu(), time.monotonic()
        time.sleep(settings["holding_seconds"])
        holding_cpu = (workers.cpu() - cpu_before) / (time.monotonic() - started)
        cpu_before = workers.cpu()
        ids, crawl_ended = site.crawl_new(settings["questions"])
        wait = DELIVERY_WAIT + POLL_PERIODS * settings["poll_seconds"]
        receipts = pages.wait_for(ids, max(1.0, crawl_ended + wait - time.time()))
        yield {
            "opening": opening,
            "receipts": receipts,
            "delays": receipts.delays(ids, crawl_ended),
            "delivered": [receipts.delivered(question_id) for question_id in ids],
            "never": count * len(ids) - sum(receipts.delivered(question_id) for question_id in ids),
            "rss_per_page_kib": (open_rss - idle_rss) * 1024 / count,
            "idle_rss_mib": idle_rss,
            "open_rss_mib": open_rss,
            "holding_cpu": holding_cpu,
            "delivery_cpu": workers.cpu() - cpu_before,
            "replaced_workers": sorted(set(workers.pids) - set(app.workers())),
        }


def paced_polls(site, app, settings, log_path):
    """Scenario 2: the paced pollers, beside whatever is open on app; a Polls."""
    count, interval, seconds = settings["pollers"]
    target = f"/update?timestamp={site.newest()!r}"
    with PacedPollers(app.url, target, count, interval, log_path, settings["timeout"]) as pollers:
        time.sleep(seconds)
        return pollers.finish()


def slow_clients(site, app, settings, log_path):
    """Scenario 3: (Polls alone, Polls beside the tricklers, Trickling)."""
    interval, alone_seconds, beside_seconds = settings["ordinary"]
    count, every = settings["tricklers"]
    target = f"/update?timestamp={site.newest()!r}"
    with PacedPollers(app.url, target, 1, interval, log_path, settings["timeout"]) as ordinary:
        time.sleep(alone_seconds)
        alone = ordinary.finish()
    with (
        Tricklers(app.url, count, every, log_path) as tricklers,
        PacedPollers(app.url, target, 1, interval, log_path, settings["timeout"]) as ordinary,
    ):
        time.sleep(beside_seconds)
        beside = ordinary.finish()
        trickling = tricklers.finish()
    return alone, beside, trickling


def saturation(site, app, trivial, settings, log):
    """Scenario 4: {connections: (Load of /update, Load of the trivial view)}, taking turns."""
    connection_counts, seconds = settings["wrk"]
    url = f"{app.url}/update?timestamp={site.newest()!r}"
    return {
        connections: (
            loadgen.load(url, connections, seconds, log),
            loadgen.load(trivial.url + "/update", connections, seconds, log),
        )
        for connections in connection_counts
    }


def run(quick):
    settings = QUICK if quick else FULL
    work = common.work_dir("push")
    largest = settings["pages"][-1]
    stream_runs, polls, slow, saturated = {}, {}, {}, {}
    phases, load_before = Phases(), os.getloadavg()[0]
    with contextlib.ExitStack() as running, open(work / "wrk.log", "w") as wrk_log:
        site = Site(running, work, settings["crawl_interval"])
        for count in settings["pages"]:
            with site.servers(f"{count}") as apps:
                phases.ended("starting")
                for kind, app in apps.items():
                    log_path = work / f"clients-{kind}-{count}.log"
                    with streams(site, app, count, settings, log_path) as stream_runs[kind, count]:
                        phases.ended(f"{count:,} pages, {kind}")
                        if count == largest:
                            polls[kind] = paced_polls(site, app, settings, log_path)
                            phases.ended(f"pollers, {kind}")
            phases.ended("stopping")
        # Fresh servers again: streams that ended leave work behind for a while.
        with site.servers("slow", trivial=True) as apps:
            phases.ended("starting")
            for kind, (app, trivial) in apps.items():
                slow[kind] = slow_clients(site, app, settings, work / f"clients-slow-{kind}.log")
                phases.ended(f"slow clients, {kind}")
                saturated[kind] = saturation(site, app, trivial, settings, wrk_log)
                phases.ended(f"saturation, {kind}")
        phases.ended("stopping")

    result = common.Result(
        "push",
        "6. Push",
        f"gunicorn -c webapp/gunicorn_conf.py with gevent, beside gthread; {settings['questions']} new "
        f"questions per crawl, the scheduler crawling every {settings['crawl_interval']:g} s; pages polling "
        f"every {settings['poll_seconds']:g} s when refused a stream; clients on the same machine",
    )
    report_streams(result, settings, stream_runs)
    report_polls(result, settings, largest, polls)
    report_slow_clients(result, settings, slow)
    report_saturation(result, saturated)
    result.note("seconds taken", phases.describe())
    result.note(
        "machine load", f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    return result


def compare(result, name, values, unit, goal="none (context)", met=None, anchor=ANCHOR_NAME):
    """A figure: the measured server's value beside the anchor's, values being (measured, anchor)."""
    value, anchor_value = values
    finite = math.isfinite(value) and math.isfinite(anchor_value)
    ratio = common.ratio(value, anchor_value) if finite else None
    result.add(name, value, unit, anchor, anchor_value, ratio, "x the anchor's", goal, met)


def quantile(values, share, never=0):
    """The share-quantile (nearest rank) of values and `never` more that never came (inf); inf if empty."""
    return percentile([*values, *[math.inf] * never], share) if values or never else math.inf


def report_streams(result, settings, runs):
    for count in settings["pages"]:
        both = (runs[MEASURED, count], runs[ANCHOR, count])
        accepted = [run["opening"].accepted for run in both]
        compare(
            result,
            f"streams accepted of {count:,}",
            accepted,
            "streams",
            f"all {count:,}",
            accepted[0] == count,
        )
        delivered = [min(run["delivered"]) for run in both]
        name = f"pages that received every question, of {count:,}"
        compare(result, name, delivered, "pages", f"all {count:,}", delivered[0] == count)
        p95 = [quantile(run["delays"], 0.95, run["never"]) for run in both]
        name = f"delivery p95 after the crawl ended, {count:,} pages"
        compare(result, name, p95, "s", "≤ 1 s", p95[0] <= 1.0)
        per_page = [run["rss_per_page_kib"] for run in both]
        name = f"web workers' RSS per page above idle, {count:,} pages"
        compare(result, name, per_page, "KiB", "≤ 20 KB", per_page[0] * 1.024 <= 20)
        cpu = [run["holding_cpu"] * 100 for run in both]
        compare(result, f"web workers' CPU holding {count:,} idle pages", cpu, "% of a core")
        for kind, run in zip((MEASURED, ANCHOR), both, strict=True):
            result.note(f"{kind}, {count:,} pages", describe_streams(run))


def describe_streams(run):
    opening, receipts, delays = run["opening"], run["receipts"], run["delays"]
    answers = [f"{count:,} answered {status}" for status, count in opening.refused.items()]
    answers += [f"{opening.failed:,} failed"] if opening.failed else []
    answers += [f"{opening.unanswered:,} unanswered"] if opening.unanswered else []
    p50, p95, most = (quantile(delays, share, run["never"]) for share in (0.5, 0.95, 1))
    return (
        f"{opening.accepted:,} streams in {opening.seconds:.1f} s"
        + "".join(f", {text}" for text in answers)
        + f"; each question reached {' / '.join(f'{n:,}' for n in run['delivered'])} pages "
        f"({sum(receipts.by_polling.values()):,} receipts by polling); delivery after the crawl "
        f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {most:.2f} s; workers' RSS {run['idle_rss_mib']:.0f} MiB "
        f"idle, {run['open_rss_mib']:.0f} MiB with the pages; CPU {run['delivery_cpu']:.2f} s to deliver; "
        f"{receipts.reconnects:,} streams reopened; {receipts.polls:,} polls, {receipts.poll_errors:,} failed"
        + (f"; workers replaced: {run['replaced_workers']}" if run["replaced_workers"] else "")
        + (f"; first errors: {receipts.errors[:2]}" if receipts.errors else "")
    )


def report_polls(result, settings, largest, polls):
    count, interval, _seconds = settings["pollers"]
    both = (polls[MEASURED], polls[ANCHOR])
    p99 = [quantile(run.latencies, 0.99) * 1000 for run in both]
    name = f"paced /update p99, {count:,} pollers at {1 / interval:g}/s beside {largest:,} pages"
    compare(result, name, p99, "ms", "≤ 50 ms, no errors", p99[0] <= 50 and both[0].errors == 0)
    for kind, run in zip((MEASURED, ANCHOR), both, strict=True):
        result.note(f"{kind}, paced pollers", describe_polls(run))


def describe_polls(polls):
    p50, p99, most = (quantile(polls.latencies, share) * 1000 for share in (0.5, 0.99, 1))
    late_p99, late_max = (quantile(polls.late, share) * 1000 for share in (0.99, 1))
    return (
        f"{polls.requests:,} requests in {polls.seconds:.0f} s on {polls.connections:,} connections; "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {most:.0f} ms; {polls.errors:,} errors"
        + (f" ({polls.error_samples[:2]})" if polls.errors else "")
        + f"; the client itself sent them p99 {late_p99:.0f} ms, max {late_max:.0f} ms after they were due"
    )


def report_slow_clients(result, settings, slow):
    count, every = settings["tricklers"]
    alone, beside, _trickling = slow[MEASURED]
    alone_p99 = quantile(alone.latencies, 0.99) * 1000
    p99 = [quantile(slow[kind][1].latencies, 0.99) * 1000 for kind in (MEASURED, ANCHOR)]
    met = p99[0] <= 2 * alone_p99 and beside.errors == alone.errors == 0
    name = f"ordinary /update p99 beside {count:,} slow clients"
    compare(result, name, p99, "ms", f"≤ 2x alone ({alone_p99:.1f} ms), no failure", met)
    for kind, (alone, beside, trickling) in slow.items():
        result.note(
            f"{kind}, slow clients",
            f"alone: {describe_polls(alone)}. Beside {count:,} connections trickling a byte every "
            f"{every:g} s: {describe_polls(beside)}; slow clients: {describe_trickling(trickling)}",
        )


def describe_trickling(trickling):
    drops = "none dropped"
    if trickling.dropped:
        answers = ", ".join(f"{n} with {status}" for status, n in trickling.answers.items()) or "no answer"
        median = quantile(trickling.dropped_after, 0.5)
        drops = f"{trickling.dropped:,} dropped ({answers}) after {median:.1f} s (median)"
    return f"{trickling.connections:,} connections, {drops}, {trickling.connect_errors:,} connect errors"


def report_saturation(result, saturated):
    for kind, loads in saturated.items():
        for connections, (load, trivial) in loads.items():
            add_rate(
                result,
                f"requests/s flat out at {connections:,} connections, {kind}",
                load,
                trivial,
                f"trivial Flask view under {kind}",
                "no non-2xx answer",
                failures="non_2xx",
            )
        result.note(f"{kind}, saturation", "; ".join(describe_load(*loads) for loads in loads.items()))


def describe_load(connections, loads):
    load, trivial = loads
    return (
        f"{connections:,} connections: {load.requests:,} requests, {load.non_2xx:,} non-2xx, "
        f"{load.errors - load.non_2xx:,} socket errors, p50 {load.p50_ms:.0f} ms, p99 {load.p99_ms:.0f} ms "
        f"(trivial view {trivial.requests_per_second:,.0f} req/s, {trivial.errors:,} errors)"
    )


if __name__ == "__main__":
    sys.exit(common.main(run))
