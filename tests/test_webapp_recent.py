import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from sofeed.store import VISIBILITY_LAG, Store
from tests.cache_helpers import Clock, FlakyStore
from tests.helpers import save_numbered
from webapp import recent
from webapp.recent import OVERLAP, RecentQuestions, StoreUnavailable

LAG = VISIBILITY_LAG.total_seconds()


class CountingStore(Store):
    """A real Store that counts the reads the cache makes."""

    def __init__(self, client, database):
        super().__init__(client, database)
        self.calls = Counter()
        self.fetched_after = []

    def change_version(self):
        self.calls["change_version"] += 1
        return super().change_version()

    def recent_questions(self, after=None, limit=None):
        self.calls["recent_questions"] += 1
        self.fetched_after.append(after)
        return super().recent_questions(after, limit)

    def count_questions(self):
        self.calls["count_questions"] += 1
        return super().count_questions()


@pytest.fixture
def counting(store, database_name):
    return CountingStore(store.client, database_name)


def ids(questions):
    return [question["id"] for question in questions]


def test_a_question_is_handed_out_only_once_visibility_lag_has_passed_since_its_fetched(store):
    doc = save_numbered(store, 1)
    fetched = doc["fetched"].timestamp()
    clock = Clock(fetched + LAG - 0.001)
    cache = RecentQuestions(store, refresh_seconds=0, clock=clock)
    assert cache.snapshot().questions_after(0) == []
    clock.now = fetched + LAG
    assert ids(cache.snapshot().questions_after(0)) == [doc["_id"]]


def test_questions_after_a_timestamp_are_the_later_ones_newest_first(earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(5)]
    snapshot = RecentQuestions(earlier_store).snapshot()
    assert ids(snapshot.questions_after(0)) == [doc["_id"] for doc in reversed(docs)]
    cursor = round(docs[2]["fetched"].timestamp(), 3)
    assert ids(snapshot.questions_after(cursor)) == [docs[4]["_id"], docs[3]["_id"]]
    assert snapshot.questions_after(round(docs[4]["fetched"].timestamp(), 3)) == []


def test_many_requests_at_one_moment_cost_one_version_lookup_and_one_query(earlier_store, counting):
    save_numbered(earlier_store, 1)
    cache = RecentQuestions(counting, refresh_seconds=0.25, clock=Clock(time.time()))
    for _ in range(50):
        cache.snapshot()
    assert counting.calls["change_version"] == 1
    assert counting.calls["recent_questions"] == 1


def test_questions_are_read_again_only_when_the_change_version_moved(earlier_store, counting):
    save_numbered(earlier_store, 1)
    clock = Clock(time.time())
    cache = RecentQuestions(counting, refresh_seconds=0.25, clock=clock)
    first = cache.snapshot()
    clock.now += 0.25
    cache.snapshot()
    assert counting.calls["change_version"] == 2
    assert counting.calls["recent_questions"] == 1

    save_numbered(earlier_store, 2)
    clock.now += 0.25
    assert len(cache.snapshot().questions) == 2
    assert counting.calls["recent_questions"] == 2
    # The first read takes the newest KEEP; later ones overlap the previous read by OVERLAP.
    assert counting.fetched_after == [None, datetime.fromtimestamp(first.taken, UTC) - OVERLAP]


def test_a_question_whose_version_bump_was_lost_is_read_within_rescan_seconds(earlier_store, counting):
    save_numbered(earlier_store, 1)
    clock = Clock(time.time())
    cache = RecentQuestions(counting, refresh_seconds=0.25, clock=clock)
    assert len(cache.snapshot().questions) == 1
    # A second writer's $inc lost on FerretDB: the question is there, the version has not moved.
    version = earlier_store.change_version()
    hidden = save_numbered(earlier_store, 2)
    earlier_store.changes.update_one({"_id": "questions"}, {"$set": {"version": version}})
    clock.now += recent.RESCAN_SECONDS / 2
    assert len(cache.snapshot().questions) == 1
    clock.now += recent.RESCAN_SECONDS / 2
    assert hidden["_id"] in ids(cache.snapshot().questions)


def test_the_count_is_read_again_when_questions_came_in_or_every_status_seconds(earlier_store, counting):
    clock = Clock(time.time())
    cache = RecentQuestions(counting, refresh_seconds=0, status_seconds=3.0, clock=clock)
    assert cache.snapshot().count == 0
    clock.now += 1.0
    assert cache.snapshot().count == 0
    assert counting.calls["count_questions"] == 1
    save_numbered(earlier_store, 1)
    clock.now += 1.0
    assert cache.snapshot().count == 1
    clock.now += 3.0
    cache.snapshot()
    assert counting.calls["count_questions"] == 3


def test_a_re_stamped_question_moves_to_its_new_fetched_and_is_handed_out_again(earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(3)]
    cache = RecentQuestions(earlier_store, refresh_seconds=0)
    cursor = cache.snapshot().questions_after(0)[0]["fetched"]
    # What a writer whose insert was slow does: a fresh fetched, and a version bump.
    later = docs[2]["fetched"] + timedelta(seconds=1)
    for collection in (earlier_store.questions, earlier_store.recent):
        collection.update_one({"_id": docs[0]["_id"]}, {"$set": {"fetched": later}})
    earlier_store.changes.update_one({"_id": "questions"}, {"$inc": {"version": 1}})
    snapshot = cache.snapshot()
    assert ids(snapshot.questions) == [docs[0]["_id"], docs[2]["_id"], docs[1]["_id"]]
    assert ids(snapshot.questions_after(cursor)) == [docs[0]["_id"]]


def test_the_cache_keeps_only_the_newest_questions(earlier_store, monkeypatch):
    monkeypatch.setattr(recent, "KEEP", 3)
    docs = [save_numbered(earlier_store, n) for n in range(5)]
    cache = RecentQuestions(earlier_store, refresh_seconds=0)
    assert ids(cache.snapshot().questions) == [doc["_id"] for doc in docs[:1:-1]]
    docs.append(save_numbered(earlier_store, 5))
    assert ids(cache.snapshot().questions) == [doc["_id"] for doc in docs[:2:-1]]


def test_a_database_that_was_emptied_empties_the_cache(earlier_store):
    save_numbered(earlier_store, 1)
    cache = RecentQuestions(earlier_store, refresh_seconds=0)
    assert len(cache.snapshot().questions) == 1
    for collection in (earlier_store.questions, earlier_store.recent, earlier_store.changes):
        collection.delete_many({})
    assert cache.snapshot().questions == ()


def test_a_clock_that_steps_back_refreshes_instead_of_serving_a_stale_snapshot(earlier_store):
    clock = Clock(time.time())
    cache = RecentQuestions(earlier_store, refresh_seconds=60, clock=clock)
    cache.snapshot()
    save_numbered(earlier_store, 1)
    clock.now -= 3600
    assert len(cache.snapshot().questions) == 1


def test_an_unreachable_database_raises_store_unavailable_and_is_not_retried_at_once():
    unreachable = CountingStore(Store.connect("mongodb://127.0.0.1:1", "sofeed", timeout_ms=200).client, "x")
    clock = Clock(time.time())
    cache = RecentQuestions(unreachable, refresh_seconds=0, retry_seconds=1.0, clock=clock)
    try:
        with pytest.raises(StoreUnavailable, match="the database is unavailable"):
            cache.snapshot()
        with pytest.raises(StoreUnavailable):
            cache.snapshot()
        assert unreachable.calls["change_version"] == 1
        clock.now += 1.0
        with pytest.raises(StoreUnavailable):
            cache.snapshot()
        assert unreachable.calls["change_version"] == 2
    finally:
        unreachable.close()


def test_threads_waiting_for_the_first_refresh_share_its_failure():
    unreachable = CountingStore(Store.connect("mongodb://127.0.0.1:1", "sofeed", timeout_ms=300).client, "x")
    cache = RecentQuestions(unreachable, refresh_seconds=0.25)
    outcomes = []

    def request():
        try:
            cache.snapshot()
            outcomes.append("served")
        except StoreUnavailable:
            outcomes.append("unavailable")

    threads = [threading.Thread(target=request) for _ in range(10)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        unreachable.close()
    assert outcomes == ["unavailable"] * 10
    assert unreachable.calls["change_version"] == 1


# Stale-if-error: the last good snapshot is served while a refresh runs late, and
# while refreshes fail until the database has not answered for stale_seconds.


@pytest.fixture
def flaky(store, database_name):
    return FlakyStore(store.client, database_name)


class Heard:
    """What the cache tells its observer (webapp/metrics.py counts the same calls)."""

    def __init__(self):
        self.stale = self.failed = 0

    def stale_served(self):
        self.stale += 1

    def refresh_failed(self):
        self.failed += 1


def whole_second_clock():
    """A Clock at a whole second, so that adding seconds to it is exact."""
    return Clock(float(int(time.time())))


def stale_cache(flaky, **options):
    """A cache over `flaky` that refreshes every 0.25 s and serves stale for 3 s, and its clock."""
    clock = whole_second_clock()
    cache = RecentQuestions(flaky, refresh_seconds=0.25, stale_seconds=3.0, clock=clock, **options)
    return clock, cache


def test_a_failing_database_is_hidden_until_it_has_not_answered_for_stale_seconds(earlier_store, flaky):
    save_numbered(earlier_store, 1)
    heard = Heard()
    clock, cache = stale_cache(flaky, observer=heard)
    good = cache.snapshot()
    flaky.failing = 1000
    clock.now += 1.0
    assert cache.snapshot() is good
    assert (flaky.failures, cache.age(good)) == (1, 1.0)
    clock.now += 2.0
    assert cache.snapshot() is good  # 3 s old: served still, after another failed refresh
    assert flaky.failures == 2
    clock.now += 0.01
    with pytest.raises(StoreUnavailable, match="the database is unavailable: connection closed"):
        cache.snapshot()
    assert (heard.failed, heard.stale) == (2, 2)


def test_while_the_last_snapshot_serves_a_failed_refresh_is_retried_soon_then_every_retry_seconds(flaky):
    clock, cache = stale_cache(flaky, retry_seconds=1.0)
    cache.snapshot()
    flaky.failing = 1000
    clock.now += 0.25
    cache.snapshot()
    clock.now += 0.25
    cache.snapshot()
    assert flaky.failures == 2  # retried after refresh_seconds: the answers are still good
    clock.now += 3.0
    with pytest.raises(StoreUnavailable):
        cache.snapshot()
    assert flaky.failures == 3
    clock.now += 0.5
    with pytest.raises(StoreUnavailable):
        cache.snapshot()
    assert flaky.failures == 3  # unavailable now: retried only after retry_seconds
    clock.now += 0.5
    flaky.failing = 0
    assert cache.age(cache.snapshot()) == 0.0


def test_a_refresh_running_late_leaves_the_last_snapshot_served_however_long_it_takes(flaky):
    # A process starved of CPU reads slowly but does read: only a failed refresh means an outage.
    clock, cache = stale_cache(flaky)
    good = cache.snapshot()
    cache.first_wait = 0  # from now on no request waits for the late refresh
    flaky.stalling = True
    clock.now += 1.0
    try:
        assert cache.snapshot() is good  # and the refresh it started stalls
        assert flaky.stalled.wait(timeout=30)
        assert cache.refreshing
        clock.now += 2.5
        assert cache.snapshot() is good  # 3.5 s without an answer, but none has failed
        clock.now += 10.0
        assert cache.snapshot() is good
        assert cache.age(good) == 13.5  # what the Age header and /status say
    finally:
        ended = cache.next_refresh
        flaky.stalling = False
        flaky.released.set()
    assert ended.wait(timeout=30)
    fresh = cache.current()
    assert fresh is not good
    assert cache.age(fresh) == 12.5  # read by the refresh that began 12.5 s ago


def test_a_late_refresh_serves_the_last_snapshot_stale_seconds_at_most_once_the_server_is_lost(flaky):
    # A stopped database: the refresh's retried calls take seconds to fail, but pymongo knows at once.
    clock, cache = stale_cache(flaky)
    good = cache.snapshot()
    cache.first_wait = 0
    flaky.stalling = True
    clock.now += 1.0
    try:
        assert cache.snapshot() is good  # and the refresh it started stalls
        assert flaky.stalled.wait(timeout=30)
        flaky.lost = True
        clock.now += 2.0
        assert cache.snapshot() is good  # 3 s without an answer: still within stale_seconds
        clock.now += 0.01
        with pytest.raises(StoreUnavailable, match="it has not answered for 3 s"):
            cache.snapshot()
        flaky.lost = False  # the server is back, and the refresh under way will read it
        assert cache.snapshot() is good
    finally:
        ended = cache.next_refresh
        flaky.stalling = False
        flaky.released.set()
    assert ended.wait(timeout=30)
    assert cache.current() is not good


def test_a_late_refresh_that_then_fails_ends_the_window_from_the_last_answer(flaky):
    clock, cache = stale_cache(flaky)
    cache.snapshot()
    cache.first_wait = 0
    flaky.stalling, flaky.failing = True, 1000
    clock.now += 1.0
    cache.snapshot()  # starts a refresh, which stalls, then fails
    assert flaky.stalled.wait(timeout=30)
    clock.now += 4.0
    ended = cache.next_refresh
    flaky.stalling = False
    flaky.released.set()
    assert ended.wait(timeout=30)
    with pytest.raises(StoreUnavailable, match="connection closed"):
        cache.snapshot()


def test_the_window_counts_from_the_databases_last_answer_not_from_when_a_slow_refresh_began(flaky):
    clock, cache = stale_cache(flaky)
    cache.snapshot()
    cache.first_wait = 0
    flaky.stalling = True
    clock.now += 1.0
    cache.snapshot()  # starts a refresh, which stalls
    assert flaky.stalled.wait(timeout=30)
    clock.now += 2.0  # the refresh answers 2 s after it began
    ended = cache.next_refresh
    flaky.stalling = False
    flaky.released.set()
    assert ended.wait(timeout=30)
    read = cache.current()
    flaky.failing = 1000
    clock.now += 3.0
    assert cache.snapshot() is read  # 5 s old, but the database answered 3 s ago
    assert cache.age(read) == 5.0
    clock.now += 0.01
    with pytest.raises(StoreUnavailable):
        cache.snapshot()


def test_once_a_refresh_failed_a_request_with_nothing_to_serve_is_not_held_for_the_next_one(flaky):
    clock, cache = stale_cache(flaky, retry_seconds=1.0)
    cache.snapshot()
    flaky.failing = 1
    clock.now += 3.5
    with pytest.raises(StoreUnavailable, match="connection closed"):
        cache.snapshot()
    cache.first_wait = 3600  # a request that waited for the stalled refresh would hang
    flaky.stalling = True
    clock.now += 1.0
    assert cache.refresh_if_due(wait=False)  # the retry, as the fanout's loop starts it
    outcome = []

    def ask():
        try:
            cache.snapshot()
            outcome.append("served")
        except StoreUnavailable as error:
            outcome.append(str(error))

    assert flaky.stalled.wait(timeout=30)
    asker = threading.Thread(target=ask)
    asker.start()
    try:
        asker.join(timeout=30)  # only a bound: it answers at once
        assert not asker.is_alive(), "the request waited for the stalled refresh"
    finally:
        flaky.stalling = False
        flaky.released.set()
        asker.join()
    assert outcome == ["the database is unavailable: connection closed (injected by the test)"]


def test_a_request_that_finds_a_refresh_under_way_waits_for_it_if_its_snapshot_is_old(flaky):
    # An idle process's first requests come together: one starts the refresh, the others must
    # not answer from a snapshot read before the questions they ask for were stored.
    clock, cache = stale_cache(flaky)
    old = cache.snapshot()
    clock.now += 0.5
    flaky.stalling = True
    assert cache.refresh_if_due(wait=False)
    assert flaky.stalled.wait(timeout=30)
    assert cache.snapshot() is old  # half a second old: served at once
    clock.now += 5.0
    ended = cache.next_refresh
    waiting = threading.Thread(target=lambda: answers.append(cache.snapshot()))
    answers = []
    waiting.start()
    try:
        assert not ended.wait(timeout=0.2)  # the request is waiting for the refresh, not answering
        assert answers == []
    finally:
        flaky.stalling = False
        flaky.released.set()
    waiting.join(timeout=30)
    [answer] = answers
    assert answer is not old
