"""MongoDB access for sofeed: the one module that speaks pymongo.

The pipeline, the source-state middleware, the API spider, the scheduler and
the web app go through a Store; nothing else builds a client or writes a query.

Collections:
  questions  one document per question; _id is the sha224 hex digest of the
             Atom <id> (the link when an entry has no id). `fetched` is set
             on first sight, and is the web page's cursor.
  recent     a copy of the newest RECENT_KEEP questions, for readers: the web
             app reads this small collection, never `questions` itself.
  changes    one document, "questions": a version bumped after each new
             question, so readers learn of new questions from one small
             document, and a recent count to start counting from; and
             "pruned": how many questions retention deleted, and when it
             last ran.
  counted    one document per question ever counted, numbered 1, 2, 3...
             by its `_id`: the stored questions are the highest number less
             the "pruned" count. FerretDB loses `$inc` updates that race on
             one document (two writers' counts came out short), but it
             never lets two inserts share an `_id`; see docs/COUNTING.md.
  sources    one document per source URL: an Atom feed's HTTP validators and
             Retry-After, an API source's quota, backoff and fromdate.
  crawls     one document per source URL: the scheduler's last crawl of it.
  leases     one document, "scheduler": which scheduler crawls, and until when.
  watched    one document, "pages": when the web app last saw an open page,
             so that API sources ask more often while someone watches.
  crawl_totals  one document per feed URL: crawls by outcome and questions by
             kind since the database began, for /metrics.
  pruning    while a prune runs, the ids it deletes: kept out of `changes`,
             which readers read several times a second.

On FerretDB (SQLite) an insert and its duplicate-key check use the `_id`
index, but every query, update or count scans the collection (0.3 to 12 s
at 100,000 questions): its `_id` pushdown does not match the index's
expression. So writers insert first and look known questions up in
`recent`, and readers only query `recent`, which stays small, and read the
count from `changes`. FerretDB has no transactions or change streams either.
"""

import hashlib
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pymongo
from bson import ObjectId
from pymongo import DESCENDING, MongoClient, ReturnDocument
from pymongo.errors import ConfigurationError, DuplicateKeyError

logger = logging.getLogger(__name__)

QUESTIONS = "questions"
RECENT = "recent"
CHANGES = "changes"
COUNTED = "counted"
PRUNED = "pruned"  # the retention's document in `changes`
PRUNING = "pruning"
SOURCES = "sources"
CRAWLS = "crawls"
LEASES = "leases"
WATCHED = "watched"
CRAWL_TOTALS = "crawl_totals"

# A new question is visible to readers, with its announcement, at most this
# long after the `fetched` it carries; the writer re-stamps it when an insert
# was slower. Readers that page by `fetched` wait this long before handing a
# question out, so one committed late by another writer cannot fall behind
# their cursor. See webapp/ for the reading side.
VISIBILITY_LAG = timedelta(milliseconds=500)
# How many of the newest questions `recent` keeps (a little more between trims).
RECENT_KEEP = 1000
RECENT_TRIM_EVERY = 100
# A prune deletes at most this many questions at a time: FerretDB deletes a
# command's documents in one SQL statement, and SQLite refuses one with more
# than 32,766 variables (here 30,000 were deleted at once, 33,000 refused).
PRUNE_BATCH = 10_000
# A question in `questions` but missing from `recent` this long after its
# `fetched`, while `recent` reaches back that far, was never announced: its
# writer died between the insert and the announcement. (A live writer
# finishes announcing within a few VISIBILITY_LAGs.)
UNANNOUNCED_AFTER = timedelta(seconds=10)

# Fields that change when a question is edited or voted on: refreshed when a
# sighting differs. Links change too, because they carry the title slug.
# Everything else is kept as first stored.
MUTABLE_FIELDS = ("title", "link", "tags", "rank", "updated", "summary_text")
FIXED_FIELDS = ("entry_id", "question_id", "author", "author_uri", "published")


def question_key(entry_id, link=None):
    """The _id of a question: sha224 of its stable Atom id, else of its link."""
    stable = entry_id or link
    if not stable:
        raise ValueError("a question needs an entry_id or a link to have an _id")
    return hashlib.sha224(stable.encode("utf-8")).hexdigest()


def _upserting(write, query, *args, **kwargs):
    """Run an upserting write, again if it lost a race to insert the same `_id`.

    Two writers that find no document both insert one, and the loser gets
    E11000; MongoDB 4.2 and later retry such an upsert themselves, FerretDB
    does not. The second attempt finds the winner's document and updates it.
    (Not for a lease: there the filter asks more than the `_id`, and losing
    is the answer.)
    """
    try:
        return write(query, *args, upsert=True, **kwargs)
    except DuplicateKeyError:
        return write(query, *args, upsert=True, **kwargs)


class StrictClock:
    """UTC datetimes at BSON's millisecond precision that strictly increase.

    Two inserts within one millisecond still get different `fetched` values,
    so a reader that pages by `fetched` can never skip one of them.
    """

    def __init__(self, now=time.time):
        self._now = now
        self._last_ms = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self._last_ms = max(int(self._now() * 1000), self._last_ms + 1)
            ms = self._last_ms
        return datetime.fromtimestamp(ms / 1000, tz=UTC)


# One clock per process: every Store of this process writes through it.
_process_clock = StrictClock()


class Store:
    """Questions and feed state in one MongoDB database."""

    def __init__(self, client, database, clock=_process_clock, timer=time.monotonic):
        self.client = client
        self.db = client[database]
        self.questions = self.db[QUESTIONS]
        self.recent = self.db[RECENT]
        self.changes = self.db[CHANGES]
        self.counted = self.db[COUNTED]
        self.sources = self.db[SOURCES]
        self.crawls = self.db[CRAWLS]
        self.leases = self.db[LEASES]
        self.crawl_totals = self.db[CRAWL_TOTALS]
        self._clock = clock
        self._timer = timer
        self._indexes_ensured = False

    @classmethod
    def connect(cls, uri, database, timeout_ms=3000, socket_timeout_ms=None):
        """Open a client that gives up after timeout_ms instead of hanging.

        A server that accepts the connection but does not answer is given
        socket_timeout_ms (three times timeout_ms unless set).

        A malformed URI raises ConfigurationError, like every other problem
        with the server's address: pymongo raises a bare ValueError for some.
        """
        try:
            client = MongoClient(
                uri,
                appname="sofeed",
                tz_aware=True,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                socketTimeoutMS=socket_timeout_ms or timeout_ms * 3,
            )
        except ValueError as error:
            raise ConfigurationError(f"{uri!r} is not a MongoDB URI: {error}") from error
        return cls(client, database)

    def close(self):
        self.client.close()

    @staticmethod
    def within(seconds):
        """A context in which all calls together give up after seconds.

        The client's own timeouts bound each try, but pymongo retries a read
        once, selecting the server and connecting again: against a server that
        hangs, one call can take three timeouts. This bounds them all.
        """
        return pymongo.timeout(seconds)

    def ping(self):
        """Raise a PyMongoError unless the server answers."""
        self.client.admin.command("ping")

    def knows_a_server(self):
        """Whether the client knows a server it can read from, without asking one: pymongo's own view.

        pymongo forgets a server at a refused or broken connection, and finds
        it again within half a second of its return.
        """
        return self.client.topology_description.has_readable_server()

    def ensure_indexes(self):
        """Create the "newest first" indexes and the change marker, once per Store."""
        if not self._indexes_ensured:
            self.questions.create_index([("fetched", DESCENDING), ("_id", DESCENDING)])
            self.recent.create_index([("fetched", DESCENDING)])
            self._ensure_marker()
            self._indexes_ensured = True

    def _ensure_marker(self):
        """Count and copy the newest questions of a database that predates the marker.

        A scan of `questions`, once in the life of a database.
        """
        if self.changes.find_one({"_id": QUESTIONS}) is not None:
            return
        newest = self.questions.find().sort([("fetched", DESCENDING)]).limit(RECENT_KEEP)
        for question in newest:
            _upserting(self.recent.replace_one, {"_id": question["_id"]}, question)
        count = self.questions.count_documents({})
        marker = {"$setOnInsert": {"version": 0, "count": count}}
        _upserting(self.changes.update_one, {"_id": QUESTIONS}, marker)

    def known_questions(self, keys):
        """Each key's copy in `recent` (its mutable fields), or None where none: one query for a feed."""
        known = dict.fromkeys(keys)
        if known:
            found = self.recent.find({"_id": {"$in": list(known)}}, dict.fromkeys(MUTABLE_FIELDS, 1))
            known.update((doc["_id"], doc) for doc in found)
        return known

    def save_question(self, fields, known=None):
        """Insert a question seen for the first time, or refresh a known one.

        Returns True when the question is new. A known question whose mutable
        fields changed gets them, and `last_changed`, refreshed; its
        `fetched` never changes (unless a slow insert re-stamps it).

        Every crawl sees mostly known questions, and on FerretDB any update
        or query of `questions` scans it (a third of a second at 100,000
        questions), while an insert and its duplicate-key check use the
        unique `_id` index. So a question is first looked up in the small
        `recent` collection: a known, unchanged one costs that one lookup,
        or nothing when `known` (from known_questions) already answers for it.
        Anything else is inserted, and only a real change is written.
        """
        key = question_key(fields.get("entry_id"), fields.get("link"))
        mutable = {name: fields.get(name) for name in MUTABLE_FIELDS}
        if known is not None and key in known:
            copy = known[key]
        else:
            copy = self.recent.find_one({"_id": key}, dict.fromkeys(MUTABLE_FIELDS, 1))
        if copy is not None:
            if any(copy.get(name) != value for name, value in mutable.items()):
                self._refresh(key, mutable, also_recent=True)
            return False
        now = self._clock()
        question = {"_id": key, **{name: fields.get(name) for name in FIXED_FIELDS}, **mutable}
        question.update(fetched=now, last_changed=now)
        started = self._timer()
        try:
            self.questions.insert_one(question)
        except DuplicateKeyError:
            # Known, but older than `recent` keeps, or just stored by another
            # writer, or stored by one that died before announcing it.
            stored = self._refresh(key, mutable, also_recent=False)
            if stored is None or not self._unannounced(stored):
                return False
            question = {**stored, **mutable, "fetched": self._clock()}  # re-stamped: pages are past it
            self.questions.update_one({"_id": key}, {"$set": {"fetched": question["fetched"]}})
            started = self._timer()
        self._announce(question, started)
        return True

    def _refresh(self, key, mutable, also_recent):
        """Write a known question's mutable fields; returns its `questions` document as it was."""
        changes = {"$set": {**mutable, "last_changed": self._clock()}}
        stored = self.questions.find_one_and_update({"_id": key}, changes)
        if also_recent:
            self.recent.update_one({"_id": key}, changes)
        return stored

    def _unannounced(self, stored):
        """Whether a question that is not in `recent` should be: see UNANNOUNCED_AFTER."""
        if self._clock() - stored["fetched"] < UNANNOUNCED_AFTER:
            return False  # its writer may still be announcing it
        reaches_back = self.recent.find_one({"fetched": {"$lte": stored["fetched"]}}, {"_id": 1})
        return reaches_back is not None or self.recent.estimated_document_count() < RECENT_KEEP

    def _announce(self, question, started):
        """Copy a new question into `recent` and count it; re-stamp it if that was slow.

        Keeps VISIBILITY_LAG true: when the insert and its announcement took
        longer than half of it, the question gets a fresh `fetched` (and is
        announced again), so readers still see it ahead of their cursor.
        Readers read `recent`; the re-stamp reaches `questions` afterwards,
        outside the timed part, because on FerretDB an update of `questions`
        scans it (a second at 100,000 questions) and would make every
        attempt slow again.
        """
        counting = True
        restamped = False
        try:
            for _attempt in range(5):
                _upserting(self.recent.replace_one, {"_id": question["_id"]}, question)
                bump = {"$inc": {"version": 1}}
                if counting:
                    bump["$max"] = {"count": self._count_one()}
                    counting = False
                marker = _upserting(
                    self.changes.find_one_and_update,
                    {"_id": QUESTIONS},
                    bump,
                    return_document=ReturnDocument.AFTER,
                )
                if marker["version"] % RECENT_TRIM_EVERY == 0:
                    self._trim_recent()
                if self._timer() - started < VISIBILITY_LAG.total_seconds() / 2:
                    return
                started = self._timer()
                question["fetched"] = self._clock()
                restamped = True
            logger.warning("question %s: MongoDB stays slow; readers may see it late", question["_id"])
        finally:
            if restamped:
                restamp = {"$set": {"fetched": question["fetched"]}}
                self.questions.update_one({"_id": question["_id"]}, restamp)

    def _count_one(self):
        """Number a new question: the next free `_id` in `counted`, which is returned.

        Numbers are taken in order, and the count in `changes` trails the
        highest by a few at most, so the first free number above it is a
        few inserts away (docs/COUNTING.md).
        """
        number = (self.changes.find_one({"_id": QUESTIONS}, {"count": 1}) or {}).get("count", 0)
        while True:
            number += 1
            try:
                self.counted.insert_one({"_id": number})
                return number
            except DuplicateKeyError:
                continue  # another writer's question has this number

    def _trim_recent(self):
        """Drop all but the newest RECENT_KEEP questions from `recent`."""
        oldest_kept = list(
            self.recent.find({}, {"fetched": 1})
            .sort([("fetched", DESCENDING)])
            .skip(RECENT_KEEP - 1)
            .limit(1)
        )
        if oldest_kept:
            self.recent.delete_many({"fetched": {"$lt": oldest_kept[0]["fetched"]}})

    def source_state(self, url):
        """What we remember about a source: etag, last_modified, not_before; quota, fromdate."""
        return self.sources.find_one({"_id": url}) or {}

    def update_source_state(self, url, changes):
        """Set (or, where a value is None, forget) fields of a source's state."""
        kept = {name: value for name, value in changes.items() if value is not None}
        dropped = {name: "" for name, value in changes.items() if value is None}
        update = {}
        if kept:
            update["$set"] = kept
        if dropped:
            update["$unset"] = dropped
        if update:
            _upserting(self.sources.update_one, {"_id": url}, update)

    # Reading questions, for the web app: only the small `recent` and
    # `changes` collections, so that reads cost the same at any size.

    def change_version(self):
        """The questions' change version: 0 before the first new question."""
        marker = self.changes.find_one({"_id": QUESTIONS}, {"version": 1}) or {}
        return marker.get("version", 0)

    def recent_questions(self, after=None, limit=None):
        """Of the newest RECENT_KEEP questions, those fetched after `after` (all if None), newest first."""
        query = {} if after is None else {"fetched": {"$gt": after}}
        cursor = self.recent.find(query).sort([("fetched", DESCENDING), ("_id", DESCENDING)])
        if limit:
            cursor = cursor.limit(limit)
        return list(cursor)

    def count_questions(self):
        """How many questions are stored: as numbered by the writers, less what retention deleted."""
        counts = {doc["_id"]: doc.get("count", 0) for doc in self.changes.find({}, {"count": 1})}
        # The count in "questions" may lag (a writer stopped before raising it, or a
        # racing update lost): the numbers above it that are taken count as well.
        highest = counts.get(QUESTIONS, 0)
        while self.counted.find_one({"_id": highest + 1}, {"_id": 1}) is not None:
            highest += 1
        return highest - counts.get(PRUNED, 0)

    # The scheduler's records: one status document per feed, and its lease.

    def record_crawl(self, feed_url, status):
        """Keep the result of the latest crawl of a feed (a dict of fields), and add it to its totals."""
        _upserting(self.crawls.replace_one, {"_id": feed_url}, {"_id": feed_url, **status})
        # Only the lease holder crawls, so these $inc never race each other (FerretDB loses racing ones).
        counts = {f"outcomes.{status.get('outcome') or 'unknown'}": 1}
        counts.update((kind, status.get(kind) or 0) for kind in ("new", "duplicate", "invalid"))
        update = {"$inc": counts}
        if status.get("ok") and status.get("finished") is not None:
            update["$max"] = {"last_good": status["finished"]}
        _upserting(self.crawl_totals.update_one, {"_id": feed_url}, update)

    def crawl_totals_by_feed(self):
        """Each feed's totals: _id (the URL), outcomes ({outcome: n}), new, duplicate, invalid, last_good."""
        return list(self.crawl_totals.find())

    # Retention: questions first fetched before a cutoff are deleted, off the crawl's path.

    def prune_questions(self, before, now, limit=PRUNE_BATCH):
        """Delete up to `limit` of the questions first fetched before `before`; returns how many.

        Fewer than `limit` means none is left before `before`: the prune is
        complete, and `now` is kept as its time (last_prune()). `recent`
        loses the same questions, and the "pruned" document in `changes`
        counts them, so count_questions() and the page stay right. Their ids
        are noted as pending until the delete is done: a prune cut short
        (its process stopped in the middle) is finished and counted by the
        next one. On FerretDB, finding them and deleting them each scan
        `questions` (bench/prune.py measures it). One prune at a time: the
        scheduler that holds the crawl lease runs them.
        """
        pending = self.db[PRUNING].find_one({"_id": PRUNED})
        if pending is not None:  # cut short: it deleted all of its batch or none, and counted none
            self._delete_batch(pending, {}, counting=len(pending["ids"]))
        old = self.questions.find({"fetched": {"$lt": before}}, {"_id": 1}).limit(limit)
        batch = {"_id": PRUNED, "batch": ObjectId(), "ids": [doc["_id"] for doc in old]}
        _upserting(self.changes.update_one, {"_id": PRUNED}, {"$setOnInsert": {"count": 0}})
        _upserting(self.db[PRUNING].replace_one, {"_id": PRUNED}, batch)
        complete = len(batch["ids"]) < limit
        return self._delete_batch(batch, {"last": now, "before": before} if complete else {})

    def _delete_batch(self, batch, done, counting=None):
        """Delete a batch's questions and count them (`counting` of them, else what this delete removed)."""
        ids, deleted = batch["ids"], 0
        if ids:  # on FerretDB even a delete of nothing scans `questions`
            # `questions` first: a writer that still finds a question in `recent` takes it as known.
            deleted = self.questions.delete_many({"_id": {"$in": ids}}).deleted_count
            self.recent.delete_many({"_id": {"$in": ids}})
        # What this delete removed, not len(ids): a second prune at the same moment (a lease
        # lost in a stall) counts what it removed itself. Counted once, even if a stop between
        # this line and the next makes the next prune finish the batch.
        counted = {"$inc": {"count": deleted if counting is None else counting}}
        counted["$set"] = {"batch": batch["batch"], **done}
        self.changes.update_one({"_id": PRUNED, "batch": {"$ne": batch["batch"]}}, counted)
        self.db[PRUNING].delete_one({"_id": PRUNED})
        return deleted

    def last_prune(self):
        """When retention last ran (an aware datetime), or None."""
        return (self.changes.find_one({"_id": PRUNED}, {"last": 1}) or {}).get("last")

    def prune_cutoff(self):
        """The `before` of the last complete prune (an aware datetime), or None: older is gone."""
        return (self.changes.find_one({"_id": PRUNED}, {"before": 1}) or {}).get("before")

    def crawl_statuses(self):
        """The latest crawl of every feed, most recent first."""
        return sorted(
            self.crawls.find(),
            key=lambda doc: doc.get("started") or datetime.min.replace(tzinfo=UTC),
            reverse=True,
        )

    def hold_lease(self, name, holder, ttl, now, details=None):
        """Take or renew a lease. Returns (held, lease document).

        The lease is ours if no one holds it, we hold it, or its holder let it
        expire. One update does the check and the write, so two contenders
        cannot both win: the loser's upsert hits the existing _id.
        """
        claim = {"holder": holder, "expires": now + ttl, "renewed": now, **(details or {})}
        try:
            lease = self.leases.find_one_and_update(
                {"_id": name, "$or": [{"holder": holder}, {"expires": {"$lte": now}}]},
                {"$set": claim},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False, self.leases.find_one({"_id": name})
        return True, lease

    def release_lease(self, name, holder):
        """Give a lease up at once, so that a standby need not wait for it to expire."""
        self.leases.delete_one({"_id": name, "holder": holder})

    # Whether anyone watches: the web app notes open pages, API pacing reads it.

    def note_page_open(self, now):
        """Record that a page was open at epoch seconds now."""
        _upserting(self.db[WATCHED].update_one, {"_id": "pages"}, {"$set": {"seen": now}})

    def page_last_seen(self):
        """Epoch seconds when a page was last noted open, or None."""
        doc = self.db[WATCHED].find_one({"_id": "pages"}) or {}
        return doc.get("seen")

    def lease(self, name):
        return self.leases.find_one({"_id": name})


class SharedStores:
    """One Store per (URI, database, timeout) in this process, open while anyone holds it.

    pymongo wants one client per process. The scheduler holds its Store for
    its whole life, so every crawl it runs borrows that client instead of
    opening and closing one every 30 seconds; `scrapy crawl` opens one for
    its crawl and closes it at the end.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._held = {}  # key -> [Store, holders]

    def acquire(self, uri, database, timeout_ms=3000):
        """The shared Store for these settings, opened if nobody holds it; release() it when done."""
        key = (uri, database, timeout_ms)
        with self._lock:
            held = self._held.get(key)
            if held is None:
                held = self._held[key] = [Store.connect(uri, database, timeout_ms), 0]
            held[1] += 1
            return held[0]

    def release(self, store):
        """Give a Store from acquire() back; the last holder's release closes it."""
        with self._lock:
            for key, held in list(self._held.items()):
                if held[0] is store:
                    held[1] -= 1
                    if held[1] == 0:
                        del self._held[key]
                        store.close()
                    return


SHARED = SharedStores()
