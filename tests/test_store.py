import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from pymongo.errors import ConfigurationError, DuplicateKeyError

from sofeed import store as store_module
from sofeed.store import Store, StrictClock, question_key
from tests.helpers import question_fields, save_days_ago

QUESTION = question_fields()


def test_question_key_is_the_sha224_hex_digest_of_the_entry_id():
    expected = hashlib.sha224(b"https://stackoverflow.com/q/77635559").hexdigest()
    assert question_key(QUESTION["entry_id"], QUESTION["link"]) == expected


def test_question_key_falls_back_to_the_link_when_there_is_no_entry_id():
    assert (
        question_key(None, "https://stackoverflow.com/questions/1")
        == hashlib.sha224(b"https://stackoverflow.com/questions/1").hexdigest()
    )


def test_question_key_refuses_a_question_with_neither_id_nor_link():
    with pytest.raises(ValueError, match="entry_id or a link"):
        question_key(None, None)


def test_save_question_inserts_every_field_with_fetched_and_last_changed(store):
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    assert store.save_question(QUESTION) is True
    [stored] = store.questions.find()
    assert stored["_id"] == question_key(QUESTION["entry_id"])
    assert {name: stored[name] for name in QUESTION} == QUESTION
    assert before <= stored["fetched"] <= datetime.now(UTC) + timedelta(seconds=1)
    assert stored["last_changed"] == stored["fetched"]


def test_a_known_question_seen_unchanged_is_not_written_again(store):
    store.save_question(QUESTION)
    [first] = store.questions.find()
    assert store.save_question(QUESTION) is False
    [second] = store.questions.find()
    assert second == first


def test_saving_a_known_question_refreshes_what_changes_but_never_fetched(store):
    store.save_question(QUESTION)
    [first] = store.questions.find()
    edited = {
        **QUESTION,
        "title": "Edited title",
        "link": "https://stackoverflow.com/questions/77635559/edited-title",
        "tags": ["git"],
        "rank": 5,
        "updated": datetime(2023, 12, 12, tzinfo=UTC),
        "summary_text": "Edited body.",
        "author": "Someone Else",
    }
    assert store.save_question(edited) is False
    [second] = store.questions.find()
    assert second["fetched"] == first["fetched"]
    assert second["last_changed"] > first["last_changed"]
    for name in ("title", "link", "tags", "rank", "updated", "summary_text"):
        assert second[name] == edited[name]
    assert second["author"] == QUESTION["author"]


def test_fetched_strictly_increases_across_inserts_within_one_millisecond(store):
    for n in range(60):
        store.save_question({**QUESTION, "entry_id": f"https://stackoverflow.com/q/{n}"})
    by_insertion = sorted(store.questions.find(), key=lambda doc: int(doc["entry_id"].rsplit("/", 1)[1]))
    fetched = [doc["fetched"] for doc in by_insertion]
    assert all(earlier < later for earlier, later in pairwise(fetched))


def test_strict_clock_steps_one_millisecond_when_the_time_stands_still():
    clock = StrictClock(now=lambda: 1_700_000_000.0004)
    first, second, third = clock(), clock(), clock()
    assert first == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert second - first == third - second == timedelta(milliseconds=1)


def test_strict_clock_never_goes_back_when_the_system_clock_does():
    times = iter([100.500, 100.200, 100.900])
    clock = StrictClock(now=lambda: next(times))
    values = [clock(), clock(), clock()]
    assert [v.timestamp() for v in values] == [100.5, 100.501, 100.9]


def test_ensure_indexes_creates_the_index_the_newest_first_query_sorts_on(store):
    store.ensure_indexes()
    keys = [index["key"] for index in store.questions.list_indexes()]
    assert {"fetched": -1, "_id": -1} in [dict(key) for key in keys]


def test_source_state_remembers_set_fields_and_forgets_fields_set_to_none(store):
    url = "https://stackoverflow.com/feeds"
    assert store.source_state(url) == {}
    later = datetime(2030, 1, 1, tzinfo=UTC)
    store.update_source_state(url, {"etag": '"abc"', "last_modified": None, "not_before": later})
    assert store.source_state(url) == {"_id": url, "etag": '"abc"', "not_before": later}
    store.update_source_state(url, {"not_before": None})
    assert store.source_state(url) == {"_id": url, "etag": '"abc"'}


@pytest.mark.parametrize("uri", ["mongodb://a:b:c", "http://127.0.0.1:27017"])
def test_a_malformed_uri_is_a_configuration_error_not_a_crash(uri):
    with pytest.raises(ConfigurationError):
        Store.connect(uri, "sofeed")


def test_each_new_question_moves_the_change_version_and_a_known_one_does_not(store):
    assert store.change_version() == 0
    store.save_question(QUESTION)
    store.save_question({**QUESTION, "entry_id": "https://stackoverflow.com/q/2"})
    assert store.change_version() == 2
    store.save_question(QUESTION)
    assert store.change_version() == 2


class OneSlowInsert:
    """A monotonic timer under which the first write seems to take a second, and the rest their real time."""

    def __init__(self):
        self.lag = 0.0

    def __call__(self):
        now = time.monotonic() + self.lag
        self.lag = 1.0  # everything after the first reading happens a second later
        return now


def test_a_question_inserted_slowly_is_re_stamped_so_readers_cannot_miss_it(store):
    slow = Store(store.client, store.db.name, timer=OneSlowInsert())
    before = datetime.now(UTC)
    slow.save_question(QUESTION)
    [stored] = store.questions.find()
    assert stored["fetched"] > stored["last_changed"] >= before - timedelta(milliseconds=1)
    assert store.recent.find_one({"_id": stored["_id"]})["fetched"] == stored["fetched"]
    assert store.change_version() == 2  # announced twice: first stamp, then the fresh one
    slow.save_question({**QUESTION, "entry_id": "https://stackoverflow.com/q/2"})
    assert store.change_version() == 3  # a quick insert is announced once


def test_recent_questions_returns_the_later_ones_newest_first(store):
    for n in range(5):
        store.save_question({**QUESTION, "entry_id": f"https://stackoverflow.com/q/{n}"})
    everything = store.recent_questions()
    assert [doc["entry_id"][-1] for doc in everything] == ["4", "3", "2", "1", "0"]
    later = store.recent_questions(everything[2]["fetched"])
    assert [doc["entry_id"][-1] for doc in later] == ["4", "3"]
    assert len(store.recent_questions(limit=2)) == 2
    assert store.count_questions() == 5
    assert everything[0]["title"] == QUESTION["title"]  # a whole question, not just its id


def test_recent_keeps_only_the_newest_questions(store, monkeypatch):
    monkeypatch.setattr(store_module, "RECENT_KEEP", 3)
    monkeypatch.setattr(store_module, "RECENT_TRIM_EVERY", 5)
    for n in range(10):
        store.save_question({**QUESTION, "entry_id": f"https://stackoverflow.com/q/{n}"})
    assert [doc["entry_id"][-1] for doc in store.recent_questions()] == ["9", "8", "7"]
    assert store.questions.count_documents({}) == store.count_questions() == 10


def test_a_database_from_before_the_marker_gets_its_count_and_recent_questions(store):
    for n in range(3):
        store.questions.insert_one(
            {**QUESTION, "_id": f"key{n}", "fetched": datetime(2026, 1, 1, n, tzinfo=UTC)}
        )
    store.ensure_indexes()
    assert store.count_questions() == 3
    assert [doc["_id"] for doc in store.recent_questions()] == ["key2", "key1", "key0"]
    store.save_question(QUESTION)
    assert store.count_questions() == 4


def test_a_database_counted_by_an_older_sofeed_numbers_its_new_questions_from_that_count(store):
    store.changes.insert_one({"_id": "questions", "version": 9, "count": 7})
    store.ensure_indexes()
    assert store.count_questions() == 7
    store.save_question(QUESTION)
    assert store.count_questions() == 8
    assert [doc["_id"] for doc in store.counted.find()] == [8]


def test_writers_saving_at_the_same_moment_count_every_question_once(mongo_uri, store):
    # FerretDB loses $inc updates that race on one document; numbered inserts cannot be lost.
    writers, each = 4, 40
    start = threading.Barrier(writers)

    def write(w):
        own = Store.connect(mongo_uri, store.db.name)
        try:
            start.wait()
            for n in range(each):
                own.save_question({**QUESTION, "entry_id": f"https://stackoverflow.com/q/{w}-{n}"})
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.questions.count_documents({}) == store.count_questions() == writers * each
    assert sorted(doc["_id"] for doc in store.counted.find()) == list(range(1, writers * each + 1))


def test_a_count_left_behind_by_a_lost_update_is_caught_up_from_the_numbers_taken(store):
    for n in range(3):
        store.save_question({**QUESTION, "entry_id": f"https://stackoverflow.com/q/{n}"})
    store.changes.update_one({"_id": "questions"}, {"$set": {"count": 1}})  # two raises lost
    assert store.count_questions() == 3
    store.save_question(QUESTION)
    assert store.count_questions() == 4
    assert store.changes.find_one({"_id": "questions"})["count"] == 4


def test_an_upsert_that_loses_the_race_to_insert_is_retried_and_updates_the_winners_document(store):
    def rival_inserts_first(query, update, upsert):
        if store.changes.find_one(query) is None:
            store.changes.insert_one({**query, "version": 0})  # the winner's insert
            raise DuplicateKeyError("E11000 duplicate key error")  # what the loser's upsert got
        return store.changes.update_one(query, update, upsert=upsert)

    store_module._upserting(rival_inserts_first, {"_id": "questions"}, {"$inc": {"version": 1}})
    assert store.changes.find_one({"_id": "questions"})["version"] == 1


def test_record_crawl_keeps_only_the_latest_crawl_of_each_feed(store):
    first = datetime(2026, 1, 1, tzinfo=UTC)
    store.record_crawl("http://a/feed", {"started": first, "outcome": "failed"})
    store.record_crawl("http://a/feed", {"started": first + timedelta(seconds=30), "outcome": "ok"})
    store.record_crawl("http://b/feed", {"started": first + timedelta(seconds=10), "outcome": "ok"})
    statuses = store.crawl_statuses()
    assert [(s["_id"], s["outcome"]) for s in statuses] == [("http://a/feed", "ok"), ("http://b/feed", "ok")]


def test_a_lease_is_held_by_one_holder_until_it_expires_or_is_released(store):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ttl = timedelta(seconds=90)
    assert store.hold_lease("scheduler", "a", ttl, now)[0] is True
    held, lease = store.hold_lease("scheduler", "b", ttl, now + timedelta(seconds=30))
    assert (held, lease["holder"]) == (False, "a")
    assert store.hold_lease("scheduler", "a", ttl, now + timedelta(seconds=60))[0] is True
    assert store.hold_lease("scheduler", "b", ttl, now + timedelta(seconds=149))[0] is False
    assert store.hold_lease("scheduler", "b", ttl, now + timedelta(seconds=150))[0] is True
    store.release_lease("scheduler", "a")  # not a's any more: nothing happens
    assert store.lease("scheduler")["holder"] == "b"
    store.release_lease("scheduler", "b")
    assert store.lease("scheduler") is None


def unannounced_insert(store, age):
    """What a writer killed between its insert and its announcement leaves: the question only."""
    fetched = datetime.now(UTC) - age
    key = question_key(QUESTION["entry_id"])
    store.questions.insert_one({**QUESTION, "_id": key, "fetched": fetched, "last_changed": fetched})
    return key


def test_a_question_whose_writer_died_before_announcing_it_is_announced_when_seen_again(store):
    key = unannounced_insert(store, age=timedelta(seconds=30))
    assert store.save_question(QUESTION) is True
    [copy] = store.recent.find()
    assert copy["_id"] == key
    # Re-stamped: the pages are past its old fetched.
    assert copy["fetched"] > datetime.now(UTC) - timedelta(seconds=5)
    assert store.questions.find_one({"_id": key})["fetched"] == copy["fetched"]
    assert (store.change_version(), store.count_questions()) == (1, 1)
    assert store.save_question(QUESTION) is False
    assert store.change_version() == 1


def test_a_question_another_writer_is_still_announcing_is_left_to_it(store):
    unannounced_insert(store, age=timedelta(seconds=1))
    assert store.save_question(QUESTION) is False
    assert store.recent.count_documents({}) == 0
    assert store.change_version() == 0


# Retention: Store.prune_questions, which the scheduler runs (sofeed/scheduling/retention.py).

DAY = timedelta(days=1)


def test_a_prune_deletes_the_questions_fetched_before_the_cutoff_from_questions_recent_and_the_count(store):
    save_days_ago(store, 40, range(5))
    kept = save_days_ago(store, 2, range(5, 8))
    version = store.change_version()
    now = datetime.now(UTC)

    assert store.prune_questions(now - 30 * DAY, now) == 5

    assert sorted(doc["_id"] for doc in store.questions.find()) == sorted(kept)
    assert [doc["_id"] for doc in store.recent_questions()] == kept[::-1]  # newest first
    assert store.count_questions() == 3
    assert store.change_version() == version  # nothing new for the pages to fetch
    assert abs(store.last_prune() - now) < timedelta(milliseconds=1)


def test_questions_saved_after_a_prune_are_counted_and_shown_with_the_kept_ones(store):
    save_days_ago(store, 40, range(5))
    kept = save_days_ago(store, 2, range(5, 8))
    now = datetime.now(UTC)
    store.prune_questions(now - 30 * DAY, now)

    version = store.change_version()
    assert store.save_question(question_fields(entry_id="https://stackoverflow.com/q/9")) is True
    assert store.save_question(question_fields(entry_id="https://stackoverflow.com/q/7")) is False
    assert store.count_questions() == store.questions.count_documents({}) == 4
    newest = store.recent_questions()
    assert [doc["_id"] for doc in newest[1:]] == kept[::-1]
    assert store.change_version() == version + 1


def test_recent_still_holds_the_newest_questions_after_a_prune(store, monkeypatch):
    monkeypatch.setattr(store_module, "RECENT_KEEP", 3)
    monkeypatch.setattr(store_module, "RECENT_TRIM_EVERY", 5)
    save_days_ago(store, 40, range(5))
    kept = save_days_ago(store, 2, range(5, 10))
    now = datetime.now(UTC)

    assert store.prune_questions(now - 30 * DAY, now) == 5

    assert [doc["_id"] for doc in store.recent_questions()][:3] == kept[::-1][:3]
    assert store.count_questions() == store.questions.count_documents({}) == 5


def test_a_prune_with_nothing_to_delete_counts_nothing_and_notes_when_it_ran(store):
    save_days_ago(store, 2, range(3))
    now = datetime.now(UTC)
    assert store.last_prune() is None
    assert store.prune_questions(now - 30 * DAY, now) == 0
    assert store.count_questions() == 3
    assert store.last_prune() is not None


class StoppedMidPrune(Store):
    """A scheduler stopped in the middle of a prune: `questions` lost the old ones, nothing else happened."""

    def _delete_batch(self, batch, done, counting=None):
        self.questions.delete_many({"_id": {"$in": batch["ids"]}})
        raise KeyboardInterrupt


class StoppedAfterCounting(Store):
    """A scheduler stopped at the very end of a prune: deleted and counted, still noted as pending."""

    def _delete_batch(self, batch, done, counting=None):
        pending = self.db[store_module.PRUNING].find_one()
        super()._delete_batch(batch, done, counting)
        self.db[store_module.PRUNING].insert_one(pending)
        raise KeyboardInterrupt


@pytest.mark.parametrize("stopped", [StoppedMidPrune, StoppedAfterCounting])
def test_a_prune_cut_short_is_finished_and_counted_once_by_the_next_one(store, stopped):
    save_days_ago(store, 40, range(5))
    save_days_ago(store, 20, range(5, 7))
    kept = save_days_ago(store, 2, range(7, 10))
    now = datetime.now(UTC)
    with pytest.raises(KeyboardInterrupt):
        stopped(store.client, store.db.name).prune_questions(now - 30 * DAY, now)
    assert store.questions.count_documents({}) == 5  # the old ones are gone

    assert store.prune_questions(now - 10 * DAY, now) == 2  # the next prune reaches further back

    assert [doc["_id"] for doc in store.recent_questions()] == kept[::-1]
    assert store.count_questions() == store.questions.count_documents({}) == 3


class PrunedBesideAnother(Store):
    """A scheduler whose prune runs beside another's (its lease lost in a stall): the other deletes first."""

    def _delete_batch(self, batch, done, counting=None):
        if batch["ids"]:
            Store(self.client, self.db.name).prune_questions(self.before, datetime.now(UTC))
        return super()._delete_batch(batch, done, counting)


def test_two_prunes_at_once_count_each_question_once(store):
    save_days_ago(store, 40, range(5))
    kept = save_days_ago(store, 2, range(5, 8))
    late = PrunedBesideAnother(store.client, store.db.name)
    late.before = datetime.now(UTC) - 30 * DAY

    assert late.prune_questions(late.before, datetime.now(UTC)) == 0  # the other one deleted them

    assert [doc["_id"] for doc in store.recent_questions()] == kept[::-1]
    assert store.count_questions() == store.questions.count_documents({}) == 3


def test_a_prune_deletes_at_most_its_limit_and_is_complete_only_when_nothing_older_is_left(store):
    save_days_ago(store, 40, range(5))
    kept = save_days_ago(store, 2, range(5, 8))
    now = datetime.now(UTC)

    assert store.prune_questions(now - 30 * DAY, now, limit=3) == 3
    assert (store.count_questions(), store.last_prune()) == (5, None)  # two old ones left
    assert store.prune_questions(now - 30 * DAY, now, limit=3) == 2
    assert store.last_prune() is not None

    assert [doc["_id"] for doc in store.recent_questions()] == kept[::-1]
    assert store.count_questions() == store.questions.count_documents({}) == 3
