"""MongoDB access for sofeed: the one module that speaks pymongo.

The pipeline, the feed-state middleware (and later the scheduler and the web
app) go through a Store; nothing else builds a client or writes a query.

Collections:
  questions  one document per question; _id is the sha224 hex digest of the
             Atom <id> (the link when an entry has no id). `fetched` is set
             once, on first sight, and is the web page's cursor.
  feeds      one document per feed URL: HTTP validators and Retry-After.

Only `_id` equality is pushed down to SQLite by FerretDB, and it has no
transactions or change streams, so the store uses none of those features.
"""

import hashlib
import threading
import time
from datetime import UTC, datetime

from pymongo import DESCENDING, MongoClient
from pymongo.errors import ConfigurationError, DuplicateKeyError

QUESTIONS = "questions"
FEEDS = "feeds"

# Fields that change when a question is edited or voted on: refreshed each time
# the question is seen again. Links change too, because they carry the title
# slug. Everything else is kept as first stored.
MUTABLE_FIELDS = ("title", "link", "tags", "rank", "updated", "summary_text")
FIXED_FIELDS = ("entry_id", "question_id", "author", "author_uri", "published")


def question_key(entry_id, link=None):
    """The _id of a question: sha224 of its stable Atom id, else of its link."""
    stable = entry_id or link
    if not stable:
        raise ValueError("a question needs an entry_id or a link to have an _id")
    return hashlib.sha224(stable.encode("utf-8")).hexdigest()


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

    def __init__(self, client, database, clock=_process_clock):
        self.client = client
        self.db = client[database]
        self.questions = self.db[QUESTIONS]
        self.feeds = self.db[FEEDS]
        self._clock = clock

    @classmethod
    def connect(cls, uri, database, timeout_ms=3000):
        """Open a client that gives up after timeout_ms instead of hanging.

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
                socketTimeoutMS=timeout_ms * 3,
            )
        except ValueError as error:
            raise ConfigurationError(f"{uri!r} is not a MongoDB URI: {error}") from error
        return cls(client, database)

    def close(self):
        self.client.close()

    def ping(self):
        """Raise a PyMongoError unless the server answers."""
        self.client.admin.command("ping")

    def ensure_indexes(self):
        """Create the index the web page's "newest first" query sorts on."""
        self.questions.create_index([("fetched", DESCENDING), ("_id", DESCENDING)])

    def save_question(self, fields):
        """Insert a question seen for the first time, or refresh a known one.

        Returns True when the question is new. A known question gets its
        mutable fields and `last_seen` refreshed; its `fetched` never changes.
        """
        key = question_key(fields.get("entry_id"), fields.get("link"))
        now = self._clock()
        refresh = {name: fields.get(name) for name in MUTABLE_FIELDS}
        refresh["last_seen"] = now
        first_sight = {name: fields.get(name) for name in FIXED_FIELDS}
        first_sight["fetched"] = now
        update = {"$set": refresh, "$setOnInsert": first_sight}
        try:
            result = self.questions.update_one({"_id": key}, update, upsert=True)
        except DuplicateKeyError:
            # Another writer inserted it between our lookup and our insert.
            self.questions.update_one({"_id": key}, {"$set": refresh})
            return False
        return result.upserted_id is not None

    def feed_state(self, url):
        """What we remember about a feed: etag, last_modified, not_before."""
        return self.feeds.find_one({"_id": url}) or {}

    def update_feed_state(self, url, changes):
        """Set (or, where a value is None, forget) fields of a feed's state."""
        kept = {name: value for name, value in changes.items() if value is not None}
        dropped = {name: "" for name, value in changes.items() if value is None}
        update = {}
        if kept:
            update["$set"] = kept
        if dropped:
            update["$unset"] = dropped
        if update:
            self.feeds.update_one({"_id": url}, update, upsert=True)
