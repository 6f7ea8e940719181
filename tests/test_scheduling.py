"""The scheduler's logic, without sleeping: backoff, outcomes, the lease, the loop's guards."""

import logging
from datetime import UTC, datetime, timedelta

from twisted.internet.defer import Deferred

from sofeed.report import CrawlReport
from sofeed.scheduling.backoff import FeedBackoff
from sofeed.scheduling.lease import CrawlLease
from sofeed.scheduling.loop import CrawlLoop
from sofeed.scheduling.outcome import CrawlOutcome
from sofeed.store import Store

FEED = "http://127.0.0.1:8765/feeds"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_feed_that_never_failed_is_due_at_every_tick():
    backoff = FeedBackoff(interval=30)
    assert backoff.due(now=1000.0)


def test_consecutive_failures_double_the_wait_up_to_ten_minutes():
    backoff = FeedBackoff(interval=30)
    waits = [backoff.failed(now=1000.0) for _ in range(7)]
    assert waits == [60, 120, 240, 480, 600, 600, 600]


def test_a_failed_feed_is_not_due_before_its_backoff_and_is_due_at_the_tick_it_ends_on():
    backoff = FeedBackoff(interval=30)
    backoff.failed(now=1000.0)
    assert not backoff.due(now=1030.0)
    assert backoff.due(now=1059.9)  # the tick that lands a hair early still crawls


def test_the_first_success_resets_the_backoff():
    backoff = FeedBackoff(interval=30)
    for _ in range(3):
        backoff.failed(now=1000.0)
    backoff.succeeded()
    assert backoff.due(now=1000.0)
    assert backoff.failed(now=2000.0) == 60


def test_retry_after_is_never_undercut_even_when_it_is_longer_than_ten_minutes():
    backoff = FeedBackoff(interval=30)
    wait = backoff.failed(now=1000.0, retry_at=1000.0 + 3600)
    assert wait == 3600
    assert not backoff.due(now=1000.0 + 3599.9)
    assert backoff.due(now=1000.0 + 3600)


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it():
    backoff = FeedBackoff(interval=30)
    assert backoff.failed(now=1000.0, retry_at=1003.0) == 60


def test_the_next_run_is_the_first_tick_after_the_backoff():
    backoff = FeedBackoff(interval=30)
    assert backoff.next_run(now=1000.0, next_tick=1030.0) == 1030.0
    backoff.failed(now=1000.0)  # next try at 1060
    assert backoff.next_run(now=1000.0, next_tick=1030.0) == 1060.0
    backoff.failed(now=1000.0)  # next try at 1120
    assert backoff.next_run(now=1000.0, next_tick=1030.0) == 1120.0


def outcome_of(report, finish_reason="finished", **changes):
    return CrawlOutcome.from_report(FEED, report, finish_reason, T0, T0 + timedelta(seconds=1), **changes)


def failed(message, **fields):
    report = CrawlReport(**fields)
    report.fail(message)
    return report


def test_a_crawl_that_stored_questions_is_ok_and_its_line_has_the_counts():
    outcome = outcome_of(CrawlReport(http_status=200, new=3, duplicate=27))
    assert (outcome.outcome, outcome.ok) == ("ok", True)
    assert outcome.line() == f"feed {FEED}: HTTP 200, 3 new, 27 duplicate, 0 invalid, 1.00 s"


def test_a_304_is_a_success_with_nothing_new():
    outcome = outcome_of(CrawlReport(http_status=304, not_modified=True))
    assert (outcome.outcome, outcome.ok) == ("not_modified", True)
    assert "HTTP 304, 0 new" in outcome.line()


def test_a_broken_feed_is_a_failure_whose_line_gives_the_spiders_reason_once():
    outcome = outcome_of(failed(f"feed {FEED}: HTTP 500", http_status=500))
    assert (outcome.outcome, outcome.ok, outcome.error) == ("failed", False, "HTTP 500")
    assert outcome.line().count(FEED) == 1


def test_an_unreachable_database_is_a_failure_that_says_so():
    report = CrawlReport()
    report.lose_store("MongoDB is unavailable: x")
    outcome = outcome_of(report, "mongodb_unavailable")
    assert (outcome.outcome, outcome.error) == ("failed", "MongoDB is unavailable: x")


def test_a_crawl_past_its_deadline_is_a_timeout():
    outcome = outcome_of(failed("fetch failed: TimeoutError"), deadline_passed=True)
    assert (outcome.outcome, outcome.ok) == ("timeout", False)
    assert "deadline" in outcome.error


def test_a_crawl_that_read_its_feed_but_ran_past_its_deadline_is_slow_and_not_a_failure_of_the_feed():
    outcome = outcome_of(CrawlReport(http_status=200, new=1, duplicate=29), "timeout", deadline_passed=True)
    assert (outcome.outcome, outcome.ok, outcome.feed_failed) == ("slow", False, False)
    assert (
        "(HTTP 200, 1 new, 29 duplicate, 0 invalid): the feed answered, but the crawl ran past"
        in outcome.line()
    )


def test_a_crawl_whose_deadline_passed_before_the_feed_was_requested_is_slow_too():
    outcome = outcome_of(CrawlReport(not_requested=True), deadline_passed=True)
    assert (outcome.outcome, outcome.feed_failed) == ("slow", False)
    assert "deadline passed before the feed was requested" in outcome.line()


def test_a_feed_that_did_not_answer_by_the_deadline_is_a_failure_of_the_feed():
    outcome = outcome_of(failed("fetch failed: TimeoutError"), "timeout", deadline_passed=True)
    assert (outcome.outcome, outcome.feed_failed) == ("timeout", True)


def test_a_feed_still_waiting_for_its_retry_after_is_deferred_not_failed():
    later = T0 + timedelta(minutes=5)
    outcome = outcome_of(CrawlReport(not_before=later))
    assert (outcome.outcome, outcome.ok, outcome.retry_at) == ("deferred", True, later)
    assert "12:05:00" in outcome.line()


def test_a_feed_read_with_a_warning_is_ok_and_its_line_carries_the_warning():
    outcome = outcome_of(CrawlReport(http_status=200, new=2, warnings=["its DTD declares 1 entity"]))
    assert (outcome.outcome, outcome.ok) == ("ok", True)
    assert (
        outcome.line()
        == f"feed {FEED}: HTTP 200, 2 new, 0 duplicate, 0 invalid, 1.00 s; its DTD declares 1 entity"
    )


def test_a_crawl_that_raised_is_a_failure_with_the_exception_in_its_line():
    outcome = CrawlOutcome.crashed(FEED, RuntimeError("boom"), T0, T0)
    assert (outcome.ok, outcome.error) == (False, "RuntimeError: boom")


class Clocks:
    """A wall clock and a monotonic clock that tests move by hand."""

    def __init__(self):
        self.wall = T0.timestamp()
        self.mono = 100.0

    def advance(self, seconds):
        self.wall += seconds
        self.mono += seconds


def lease_for(store, clocks, ttl=75):
    return CrawlLease(store, ttl=ttl, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)


def test_the_first_scheduler_takes_the_lease_and_the_second_stands_by(store, caplog):
    caplog.set_level(logging.INFO)
    clocks = Clocks()
    first, second = lease_for(store, clocks), lease_for(store, clocks)
    assert first.hold() is True
    assert second.hold() is False
    assert "standby" in caplog.records[-1].getMessage()
    assert first.holder in caplog.records[-1].getMessage()


def test_a_standby_takes_over_once_the_holders_lease_has_expired(store):
    clocks = Clocks()
    first, second = lease_for(store, clocks), lease_for(store, clocks)
    first.hold()
    clocks.advance(74)
    assert second.hold() is False
    clocks.advance(1)
    assert second.hold() is True
    assert first.hold() is False  # and the old holder learns it lost the lease


def test_a_holder_that_cannot_renew_stops_crawling_when_its_own_lease_time_is_up(store):
    clocks = Clocks()
    lease = lease_for(store, clocks)
    assert lease.hold()

    lease.store = Store.connect("mongodb://127.0.0.1:9", "sofeed", timeout_ms=100)  # nothing listens there
    clocks.advance(60)
    assert lease.hold() is True  # still within its lease
    assert not lease.may_crawl(seconds=24)  # but not long enough for a whole crawl
    clocks.advance(15)
    assert lease.hold() is False
    lease.store.close()


def test_a_released_lease_is_free_for_the_standby_at_once(store):
    clocks = Clocks()
    first, second = lease_for(store, clocks), lease_for(store, clocks)
    first.hold()
    first.release()
    assert second.hold() is True


def idle_loop(**changes):
    """A CrawlLoop that is never started: its jobs are called by hand."""
    return CrawlLoop(runner=None, store=None, feeds=[FEED], interval=30, reactor=None, **changes)


def test_run_pending_survives_a_job_that_raises_so_the_looping_call_goes_on(caplog):
    loop = idle_loop()
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("job bug")

    loop.schedule.every(30).seconds.do(broken)
    loop.schedule.jobs[0].next_run = datetime(2000, 1, 1)
    loop.run_pending()
    assert calls == [1]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "the loop goes on" in record.getMessage()


def test_a_tick_while_a_cycle_runs_is_skipped_and_logged(caplog):
    caplog.set_level(logging.INFO)
    loop = idle_loop()
    running = loop.cycle = Deferred()
    loop.tick()
    assert loop.cycle is running
    assert "tick skipped" in caplog.records[-1].getMessage()


class FakeReactor:
    def __init__(self):
        self.later = []

    def callLater(self, seconds, function, *args):
        self.later.append((seconds, function, args))


class FakeEngine:
    def __init__(self, spider):
        self.spider = spider
        self.closed = []

    async def close_spider_async(self, reason):
        self.closed.append(reason)


class FakeCrawler:
    def __init__(self, engine, started):
        self.crawling = True
        self.engine = engine
        self.stats = type("Stats", (), {"get_value": lambda self, key: started})()


def test_a_crawl_still_opening_is_cut_off_only_once_it_has_opened():
    reactor = FakeReactor()
    loop = CrawlLoop(runner=None, store=None, feeds=[FEED], interval=1, reactor=reactor)
    loop._cut_off(FakeCrawler(engine=None, started=None), reason="shutdown")
    [(seconds, again, args)] = reactor.later
    assert (seconds, again, args[1]) == (0.1, loop._cut_off, "shutdown")


def test_a_crawl_that_closed_by_itself_meanwhile_is_not_closed_again():
    import asyncio

    closed, open_ = FakeEngine(spider=None), FakeEngine(spider="a spider")
    asyncio.run(CrawlLoop._close_if_open(closed, "timeout"))
    asyncio.run(CrawlLoop._close_if_open(open_, "timeout"))
    assert (closed.closed, open_.closed) == ([], ["timeout"])
