import gzip
import json
from datetime import UTC, datetime

import pytest

from sofeed.quota import (
    IDLE_FACTOR,
    QUOTA_WITHOUT_KEY,
    RECHECK_SECONDS,
    RESERVE,
    QuotaState,
    Reading,
    next_reset,
    pace,
)
from tools.sim.stackexchange import StackExchangeSimulator

MIDNIGHT = datetime(2026, 3, 4, tzinfo=UTC).timestamp()
NOON = MIDNIGHT + 12 * 3600
DAY = 24 * 3600
NEWEST = "/2.3/questions?site=stackoverflow&sort=creation&order=desc&pagesize=100&filter=withbody"


def test_the_quota_resets_at_the_next_midnight_utc():
    assert next_reset(NOON) == MIDNIGHT + DAY
    assert next_reset(MIDNIGHT) == MIDNIGHT + DAY


def test_without_a_key_a_watched_source_asks_about_every_five_minutes():
    state = QuotaState()
    first = pace(state, MIDNIGHT, interval=30, listeners=1)
    assert first.due(MIDNIGHT)
    state.observe(Reading(at=MIDNIGHT, quota_max=300, quota_remaining=299))
    second = pace(state, MIDNIGHT, interval=30, listeners=1)
    assert second.spacing == pytest.approx(DAY / (299 - RESERVE))
    assert 280 < second.spacing < 300
    assert second.next_at == pytest.approx(MIDNIGHT + second.spacing)
    assert not second.due(MIDNIGHT + 60)


def test_with_a_key_the_interval_is_the_limit():
    state = QuotaState()
    state.observe(Reading(at=NOON, quota_max=10_000, quota_remaining=9_000))
    assert pace(state, NOON, interval=30, listeners=0, keyed=True).spacing == 30
    assert pace(state, NOON, interval=30, listeners=3, keyed=True).next_at == NOON + 30


def test_nobody_watching_asks_less_often_than_a_watched_page():
    state = QuotaState()
    state.observe(Reading(at=NOON, quota_max=300, quota_remaining=150))
    watched = pace(state, NOON, interval=30, listeners=2)
    unknown = pace(state, NOON, interval=30, listeners=None)
    idle = pace(state, NOON, interval=30, listeners=0)
    assert watched.spacing == unknown.spacing == pytest.approx(12 * 3600 / (150 - RESERVE))
    assert idle.spacing == pytest.approx(watched.spacing * IDLE_FACTOR)


def test_a_source_slowed_for_want_of_watchers_is_looked_at_again_within_a_minute():
    state = QuotaState()
    state.observe(Reading(at=NOON, quota_max=300, quota_remaining=150))
    idle = pace(state, NOON + 10, interval=30, listeners=0)
    assert idle.next_at > NOON + 1000
    assert idle.recheck_at(NOON + 10) == NOON + 10 + RECHECK_SECONDS
    watched = pace(state, NOON + 10, interval=30, listeners=1)
    assert watched.recheck_at(NOON + 10) == watched.next_at
    state.observe(Reading(at=NOON + 20, backoff=3000))
    backed_off = pace(state, NOON + 30, interval=30, listeners=0)
    assert backed_off.recheck_at(NOON + 30) == NOON + 3020


def test_sources_sharing_one_quota_each_ask_less_often():
    state = QuotaState()
    state.observe(Reading(at=NOON, quota_max=300, quota_remaining=150))
    one = pace(state, NOON, interval=30, listeners=1)
    assert pace(state, NOON, interval=30, listeners=1, sources=2).spacing == pytest.approx(2 * one.spacing)


def test_a_quota_spent_down_to_its_reserve_waits_for_midnight():
    state = QuotaState()
    state.observe(Reading(at=NOON, quota_max=300, quota_remaining=RESERVE))
    spent = pace(state, NOON + 1, interval=30, listeners=5)
    assert spent.next_at == MIDNIGHT + DAY
    assert "00:00 UTC" in spent.reason
    assert pace(state, MIDNIGHT + DAY, interval=30, listeners=5).remaining == 300


def test_no_request_before_the_backoff_has_elapsed():
    state = QuotaState()
    state.observe(Reading(at=NOON, quota_max=10_000, quota_remaining=9_000, backoff=120))
    backed_off = pace(state, NOON, interval=30, keyed=True)
    assert backed_off.next_at == NOON + 120
    assert backed_off.reason == "the API asked for a backoff"
    assert not backed_off.due(NOON + 119)
    state.observe(Reading(at=NOON + 120, quota_remaining=8_999))
    assert pace(state, NOON + 120, interval=30, keyed=True).next_at == NOON + 150


def test_the_state_survives_a_round_trip_through_its_record():
    state = QuotaState()
    state.observe(Reading(at=NOON, quota_max=300, quota_remaining=7, backoff=10))
    assert QuotaState.from_record(state.record()) == state
    assert QuotaState.from_record(None) == QuotaState()


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.mark.parametrize("watched_hours", [range(24), range(8, 16), range(0)])
def test_a_whole_day_against_the_simulator_never_runs_out_of_quota(watched_hours):
    """Crawl every 30 s from midnight to midnight as the pace allows, a page open in some hours."""
    clock = Clock(MIDNIGHT)
    simulator = StackExchangeSimulator(seed=2, clock=clock, initial=1)
    state = QuotaState()
    watched_requests = 0
    while clock.now < MIDNIGHT + DAY:
        listeners = 1 if int((clock.now - MIDNIGHT) // 3600) in watched_hours else 0
        if pace(state, clock.now, interval=30, listeners=listeners).due(clock.now):
            wrapper = json.loads(gzip.decompress(simulator.answer(NEWEST).body))
            assert "error_name" not in wrapper, wrapper
            state.observe(Reading(clock.now, wrapper["quota_max"], wrapper["quota_remaining"]))
            watched_requests += listeners
        clock.now += 30
    requests = len(simulator.requests_for())
    assert QUOTA_WITHOUT_KEY - requests >= RESERVE
    if len(watched_hours) == 8:
        # Eight watched hours get more than their even share (a third of the day's quota).
        assert watched_requests > QUOTA_WITHOUT_KEY / 3
    if not watched_hours:
        # Unwatched, the morning is paced at a quarter of the even spread (what is left by
        # the evening is spent then, as the quota would lapse at midnight anyway).
        morning = [r for r in simulator.requests_for() if r.at < NOON]
        assert len(morning) < QUOTA_WITHOUT_KEY / 2 / 3
