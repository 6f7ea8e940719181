"""The scheduler's loop: `schedule` jobs driven by a Twisted LoopingCall, crawls run in-process.

One process, one reactor, one CrawlerRunner and one database client for
weeks of crawls: a crawl costs a Crawler object, not a Python start-up, so
it takes a small fraction of the CPU of `scrapy crawl` in a subprocess.

What keeps the loop alive:
  - Every job is guarded, and so is run_pending itself: `schedule` lets a
    job's exception escape, and an exception would stop the LoopingCall for
    good.
  - A crawl never overlaps the next: a tick that finds the previous cycle
    still running is skipped and logged. Each crawl has a deadline below
    the interval (CrawlDeadlineMiddleware caps its downloads by it), and is
    closed if it is still running a little after that.
  - Database calls of the loop itself (lease, status records) run in
    threads, so an unreachable server never stalls the reactor.

Coroutines here run as asyncio tasks on Scrapy's asyncio reactor, so they
await Deferreds through maybe_deferred_to_future.
"""

import logging
import time
from datetime import UTC, datetime

import schedule
from pymongo.errors import PyMongoError
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet import defer, task, threads
from twisted.python.failure import Failure

from sofeed.extensions import report_of
from sofeed.outage import short_reason
from sofeed.scheduling.backoff import FeedBackoff
from sofeed.scheduling.outcome import CrawlOutcome
from sofeed.sources import spider_for

logger = logging.getLogger(__name__)

# A crawl must end by this part of the interval, and is closed at GRACE more.
DEADLINE_SHARE = 0.8
GRACE_SHARE = 0.1
FIRST_CRAWL_DEADLINE = 10.0
# The lease lasts this many intervals, and is renewed (or, on standby,
# checked) every half interval: a dead holder is replaced within 3 intervals.
LEASE_INTERVALS = 2.5


def utc(epoch):
    return datetime.fromtimestamp(epoch, UTC)


class CrawlLoop:
    """Crawl the sources every `interval` seconds, one cycle at a time.

    The sources are the configured URLs, or, when there are none, a
    DefaultSource that says which URL to crawl (default_source.py).
    """

    def __init__(self, runner, store, feeds, interval, reactor, lease=None, clock=time.time, default=None):
        self.runner = runner
        self.store = store
        self.feeds = list(feeds)
        self.default = default
        self.interval = interval
        self.reactor = reactor
        self.lease = lease
        self.clock = clock
        self.deadline = interval * DEADLINE_SHARE
        self.backoff = {}  # source URL -> FeedBackoff
        self.schedule = schedule.Scheduler()
        self.driver = task.LoopingCall(self.run_pending)
        self.driver.clock = reactor
        self.cycle = None  # the running cycle's Deferred
        self.cycle_started = 0.0
        self.checking_lease = False
        self.pending_records = set()
        self.stopping = False
        self.warm = False

    # Running

    def start(self):
        """Crawl now (once the lease is ours, if there is one), then every interval."""
        self.schedule.every(self.interval).seconds.do(self.tick)
        if self.lease is not None:
            self.schedule.every(self.interval / 2).seconds.do(self.check_lease)
            self.check_lease()
        else:
            self.tick()
        step = min(self.interval / 10, 0.5)
        self.driver.start(step, now=False).addErrback(self._driver_died)

    def run_pending(self):
        try:
            self.schedule.run_pending()
        except Exception:
            logger.exception("a scheduled job failed; the loop goes on")

    def _driver_died(self, failure):
        # run_pending catches everything, so this is a bug in the loop itself.
        logger.critical("the scheduling loop stopped: %s", failure.getErrorMessage())
        self.stop()

    def tick(self):
        """Start a crawl cycle, unless one is still running or another scheduler crawls."""
        if self.stopping:
            return
        if self.cycle is not None:
            running = self.clock() - self.cycle_started
            logger.info("tick skipped: the crawl cycle started %.1f s ago is still running", running)
            return
        if self.lease is not None and not self.lease.may_crawl(self.deadline):
            return
        self.cycle = deferred_from_coro(self.run_cycle())
        self.cycle.addErrback(self._cycle_failed)
        self.cycle.addBoth(self._cycle_done)

    def _cycle_failed(self, failure):
        logger.error("crawl cycle failed: %s", failure.getErrorMessage())

    def _cycle_done(self, _):
        self.cycle = None

    def check_lease(self):
        """Renew the lease, or see whether it is free; crawl at once when it becomes ours."""
        if self.checking_lease or self.stopping:
            return
        self.checking_lease = True
        was_active = self.lease.active
        checked = self._in_thread(self.lease.hold)

        def done(may_crawl):
            self.checking_lease = False
            if may_crawl and not was_active:
                self.tick()

        def failed(failure):
            self.checking_lease = False
            logger.error("crawl lease check failed: %s", failure.getErrorMessage())

        checked.addCallbacks(done, failed)

    # Crawling

    def sources(self, now):
        """The URLs to crawl this cycle."""
        return [self.default.current(now)] if self.default is not None else self.feeds

    def _backoff(self, feed):
        if feed not in self.backoff:
            self.backoff[feed] = FeedBackoff(self.interval)
        return self.backoff[feed]

    async def run_cycle(self, every_feed=False):
        """Crawl the sources that are due (all of them if every_feed), side by side."""
        now = self.cycle_started = self.clock()
        due = [feed for feed in self.sources(now) if every_feed or self._backoff(feed).due(now)]
        outcomes = await self._crawl_all(due)
        if self.default is not None and any(self._switched(outcome) for outcome in outcomes):
            # Refused just now: the same cycle reads the questions through the API.
            outcomes += await self._crawl_all(self.sources(self.clock()))
        return outcomes

    async def _crawl_all(self, feeds):
        crawls = [deferred_from_coro(self.crawl(feed)) for feed in feeds]
        results = await maybe_deferred_to_future(defer.DeferredList(crawls, consumeErrors=True))
        return [outcome for succeeded, outcome in results if succeeded]

    def _switched(self, outcome):
        """Tell the default source of a crawl; True when it now reads another URL."""
        line = self.default.observe(outcome, outcome.finished.timestamp())
        if line is not None:
            logger.warning(line)
        return line is not None and outcome.refusal is not None

    async def crawl(self, feed):
        """Crawl one source, log its line, keep its status; returns its CrawlOutcome."""
        started = self.clock()
        # The process's first crawl imports and sets up much of Scrapy: it
        # gets time for that even at the short intervals that tests use.
        allowed = self.deadline if self.warm else max(self.deadline, FIRST_CRAWL_DEADLINE)
        deadline = time.monotonic() + allowed
        crawler = self.runner.create_crawler(spider_for(feed))
        crawler.settings.set("SOFEED_CRAWL_DEADLINE", deadline, priority="cmdline")
        cut_off = self.reactor.callLater(allowed + GRACE_SHARE * self.interval, self._cut_off, crawler)
        try:
            await maybe_deferred_to_future(self.runner.crawl(crawler, feed_url=feed))
        except Exception as error:
            logger.debug("crawl of %s raised", feed, exc_info=True)
            outcome = CrawlOutcome.crashed(feed, error, utc(started), utc(self.clock()))
        else:
            outcome = CrawlOutcome.from_report(
                feed,
                report_of(crawler),
                crawler.stats.get_value("finish_reason"),
                utc(started),
                utc(self.clock()),
                deadline_passed=time.monotonic() >= deadline,
            )
        finally:
            if cut_off.active():
                cut_off.cancel()
        if self.default is not None:
            outcome.via = self.default.via(feed)
        self.warm = True
        self.report(outcome)
        return outcome

    def _cut_off(self, crawler, reason="timeout"):
        """Close a crawl still running: past its deadline, or because the scheduler stops.

        A crawl still opening is closed once it has opened: closing it
        before breaks its stats. (Scrapy's Crawler.stop() is no way out
        either: on a crawl still opening, it leaves the crawl running for good.)
        """
        if not crawler.crawling:
            return
        if crawler.engine is None or crawler.stats.get_value("start_time") is None:
            self.reactor.callLater(0.1, self._cut_off, crawler, reason)
            return
        deferred_from_coro(self._close_if_open(crawler.engine, reason))

    @staticmethod
    async def _close_if_open(engine, reason):
        # The coroutine runs a moment after _cut_off: by then the crawl may
        # have closed by itself, and closing it again raises "Spider not opened".
        if engine.spider is not None:
            await engine.close_spider_async(reason=reason)

    def report(self, outcome):
        """Log the crawl's line, move the feed's backoff, and keep its status record."""
        backoff = self._backoff(outcome.feed)
        now = outcome.finished.timestamp()
        retry_at = outcome.retry_at.timestamp() if outcome.retry_at else None
        if not outcome.feed_failed:
            backoff.succeeded()
            if retry_at is not None:
                backoff.defer(retry_at)
            logger.log(
                logging.INFO if outcome.ok and not outcome.warning else logging.WARNING, outcome.line()
            )
        else:
            wait = backoff.failed(now, retry_at)
            if not self.driver.running:  # a single crawl (--once): there is no next try
                logger.warning(outcome.line())
            else:
                logger.warning(
                    "%s; next try in %.0f s (%d failure%s in a row)",
                    outcome.line(),
                    wait,
                    backoff.failures,
                    "" if backoff.failures == 1 else "s",
                )
        next_run = backoff.next_run(now, next_tick=self.cycle_started + self.interval)
        self._keep_record(outcome, utc(next_run))

    def _keep_record(self, outcome, next_run):
        record = {**outcome.record(), "next_run": next_run}
        if self.lease is not None:
            record.update(host=self.lease.host, pid=self.lease.pid)
        written = self._in_thread(self.store.record_crawl, outcome.feed, record)
        self.pending_records.add(written)

        def done(result):
            self.pending_records.discard(written)
            if isinstance(result, Failure) and not result.check(PyMongoError):
                logger.error("crawl status of %s not kept: %s", outcome.feed, result.getErrorMessage())
            elif isinstance(result, Failure):
                logger.debug("crawl status of %s not kept: %s", outcome.feed, short_reason(result.value))

        written.addBoth(done)

    # Stopping

    async def shutdown(self, wait=3.0):
        """Stop ticking, close running crawls, give the lease up; at most about `wait` seconds."""
        self.stopping = True
        self.schedule.clear()
        if self.driver.running:
            self.driver.stop()
        pending = [d for d in (self.cycle, *self.pending_records) if d is not None]
        if pending:
            if self.cycle is not None:
                logger.info("stopping: closing the running crawl")
                for crawler in list(self.runner.crawlers):
                    self._cut_off(crawler, reason="shutdown")
            await self._within(defer.DeferredList(pending, consumeErrors=True), wait)
        if self.lease is not None and self.lease.active:
            await self._within(self._in_thread(self.lease.release), 1.0)

    def _in_thread(self, function, *args):
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), function, *args)

    async def _within(self, deferred, seconds):
        """Wait for deferred, but no longer than seconds; a late result is dropped."""
        waiter = defer.Deferred()
        timer = self.reactor.callLater(seconds, lambda: waiter.called or waiter.callback(None))

        def settle(result):
            if not waiter.called:
                timer.cancel()
                waiter.callback(None)
            return result if not isinstance(result, Failure) else None

        deferred.addBoth(settle)
        await maybe_deferred_to_future(waiter)

    def stop(self):
        return deferred_from_coro(self.shutdown())
