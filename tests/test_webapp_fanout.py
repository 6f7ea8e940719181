import time

import pytest

from tests.cache_helpers import Clock, FlakyStore
from tests.helpers import save_numbered
from tests.processes import wait_until
from webapp.fanout import Fanout
from webapp.filters import QuestionFilter
from webapp.recent import RecentQuestions
from webapp.stream import events_after

EVERYTHING = QuestionFilter()


@pytest.fixture
def flaky(store, database_name):
    return FlakyStore(store.client, database_name)


@pytest.fixture
def fanout(flaky):
    """A fanout on a cache that re-reads the database whenever it is asked (REFRESH_SECONDS=0)."""
    fanout = Fanout(RecentQuestions(flaky, refresh_seconds=0, status_seconds=0))
    yield fanout
    fanout.stop()


def open_streams(fanout, count, cursor=0.0, wanted=EVERYTHING):
    """count streams, each past its `retry:` line."""
    streams = [events_after(fanout, cursor, wanted, lasting=60) for _ in range(count)]
    for stream in streams:
        assert next(stream).startswith(b"retry: ")
    return streams


def test_streams_at_one_cursor_with_one_filter_write_the_very_same_bytes(fanout, earlier_store):
    first = save_numbered(earlier_store, 1, tags=["python"])
    cursor = round(first["fetched"].timestamp(), 3)
    streams = open_streams(fanout, 3, cursor)
    python = open_streams(fanout, 2, cursor, QuestionFilter(tags=("python",)))
    save_numbered(earlier_store, 2, tags=["python"])
    written = [next(stream) for stream in streams + python]
    try:
        assert written[0].startswith(b"id: ")
        # One json.dumps for each (cursor, filter), not one per stream.
        assert written[0] is written[1] is written[2]
        assert written[3] is written[4]
        assert written[0] == written[3]
        assert fanout.listeners == 5
    finally:
        for stream in streams + python:
            stream.close()
    assert fanout.listeners == 0


def test_a_refresh_that_brings_nothing_new_wakes_no_stream(fanout, earlier_store):
    save_numbered(earlier_store, 1)
    [stream] = open_streams(fanout, 1)
    try:
        next(stream)  # the question there is
        edition = fanout.current()
        for _ in range(3):
            assert fanout.recent.next_refresh.wait(timeout=30)  # the fanout's loop refreshed again
        assert fanout.current() is edition
        assert not edition.ended.is_set()
        save_numbered(earlier_store, 2)
        assert edition.ended.wait(timeout=30)
        assert fanout.current() is not edition
    finally:
        stream.close()


def test_a_stream_survives_a_refresh_that_fails_once(fanout, flaky, earlier_store):
    first = save_numbered(earlier_store, 1)
    [stream] = open_streams(fanout, 1)
    try:
        assert b"event: questions" in next(stream)
        flaky.failing = 1
        wait_until(lambda: flaky.failures == 1, timeout=30, what="a refresh failing")
        later = save_numbered(earlier_store, 2)
        pushed = next(stream)
    finally:
        stream.close()
    # Neither "unavailable" nor "available": the failed refresh was never the page's business.
    assert pushed.startswith(b"id: ")
    assert b"event: questions" in pushed
    assert later["_id"].encode() in pushed
    assert first["_id"].encode() not in pushed


def test_streams_are_told_unavailable_only_once_a_request_would_be(flaky, earlier_store):
    save_numbered(earlier_store, 1)
    clock = Clock(float(int(time.time())))
    recent = RecentQuestions(flaky, refresh_seconds=0.25, stale_seconds=3.0, clock=clock)
    fanout = Fanout(recent)
    [stream] = open_streams(fanout, 1)
    try:
        assert b"event: questions" in next(stream)
        flaky.stalling, flaky.failing = True, 1000
        clock.now += 1.0
        assert recent.refresh_if_due(wait=False)
        assert flaky.stalled.wait(timeout=30)
        clock.now += 5.0  # past the window, but the refresh has not failed: requests are served
        assert fanout.publish().snapshot is not None
        ended = recent.next_refresh
        flaky.stalling = False
        flaky.released.set()
        assert ended.wait(timeout=30)  # it failed: now a request would be answered 503
        edition = fanout.publish()
        assert edition.snapshot is None
        assert next(stream) == edition.unavailable_event()
    finally:
        stream.close()
        fanout.stop()
        flaky.stalling = False
        flaky.released.set()
