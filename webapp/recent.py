"""The recent questions, kept in memory and handed out by `fetched`, so that
`/update` costs no database query however many pages poll it.

Each process keeps one RecentQuestions. Requests refresh it lazily, at most
once per REFRESH_SECONDS: the request that finds it due starts a refresh in
a thread (a greenlet under gevent) and waits for it, 1.5 s at most, while
the others go on serving the snapshot they have. A refresh reads the store's change
version (one `_id` lookup) and queries the questions only when it moved; the
total count and the crawl status are re-read when it moved or every few
seconds. So the database sees a handful of queries per second per process,
whether ten pages poll or ten thousand.

Stale-if-error: a refresh that fails, or is still running because the
process or the database is starved of CPU, does not stop the answers. The
last good snapshot is served while a refresh runs late, however long, as
long as the client still knows the server (a starved process reads slowly
but does read); and after a refresh failed, or while pymongo has lost the
server, until the database has not answered for STALE_SECONDS (the views say
how old the snapshot is); only then does the process answer 503. A stopped
server is lost at the first refused connection, long before a refresh's
retried calls fail; a refresh against a server that hangs fails by the
client's own timeouts. While a snapshot can be served, a failed refresh is
retried every REFRESH_SECONDS; after that, every retry_seconds, so an
unreachable database is not hammered.

Why a question is handed out only once it is VISIBILITY_LAG old:
a page asks for the questions fetched after the largest `fetched` it has
seen. Several writers (the scheduler, a manual `scrapy crawl`, a crawler on
another host) stamp `fetched` before they insert, so they can commit out of
order: a question stamped t1 may become visible after another one stamped
t2 > t1 has been handed out, and a page whose cursor is already at t2 would
never ask for it. The store promises that a new question, with its change
version bump, is visible at most VISIBILITY_LAG after its `fetched` (a writer
whose insert was slower re-stamps it). A refresh notes the time t before it
reads anything and sets its horizon to t - VISIBILITY_LAG: every question
stamped up to the horizon was committed and announced before the refresh
read the version, so it is in the snapshot, and nothing can later appear at
or below a cursor the snapshot gave out. Each snapshot is complete up to its
own horizon, so a page whose polls land on different gunicorn workers, each
with a snapshot of its own, misses nothing either. A re-stamped question can
reach a page twice, which is why the page also dedupes by id. The writers'
clocks and this server's must agree to well within VISIBILITY_LAG (NTP does).
"""

import bisect
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pymongo.errors import PyMongoError

from sofeed.store import VISIBILITY_LAG
from webapp.documents import public_question, short_reason

UPDATE_LIMIT = 200  # questions in one /update answer, the newest ones
KEEP = 1000  # questions kept in memory
# Each read of the questions after the first goes back this long before the
# previous read started: re-stamped questions, and writers whose clocks are
# a little behind, still land in the cache.
OVERLAP = timedelta(seconds=60)
# The questions are read again this often even when the version has not
# moved. FerretDB v1 loses concurrent $inc updates (measured: 2 threads x 500
# increments ended at 528), so two writers saving at the same moment can
# leave one version for two questions, and a refresh between them would
# never see the second; this bounds how late it shows up.
RESCAN_SECONDS = 10.0
# A failing refresh leaves the last good snapshot served until the database has
# not answered for this long, so an outage shows within 5 s; a refresh that is
# merely late (a starved process reading slowly) leaves it served until it ends.
STALE_SECONDS = 3.0
# A request that finds a refresh under way answers from the last snapshot at once,
# unless that is older than this: under load a snapshot is a few refreshes old at
# most, so only the first requests after an idle spell wait for the fresh one.
WAIT_WHEN_OLDER = 1.0


class StoreUnavailable(Exception):
    """The database could not be read; str() says why."""


@dataclass(frozen=True)
class Snapshot:
    """What one refresh read: questions newest first, and the status records."""

    taken: float  # epoch seconds when the refresh started (this server's clock)
    horizon: float  # hand out no question fetched after this
    version: int
    scanned: float  # when the questions were last read (the start of that refresh)
    questions: tuple = ()  # public_question() dicts, newest first
    count: int = 0
    crawls: tuple = ()  # store.crawl_statuses(), most recent first
    scheduler: dict | None = None  # store.lease("scheduler")
    status_taken: float = 0.0
    pruned_before: float = 0.0  # retention deleted what was fetched before this: not handed out
    _keys: list = field(default_factory=list, repr=False)  # -fetched, ascending, for bisect

    def questions_after(self, timestamp, limit=UPDATE_LIMIT):
        """Questions with timestamp < fetched <= horizon, newest first, at most limit."""
        start = bisect.bisect_left(self._keys, -self.horizon)
        end = bisect.bisect_left(self._keys, -timestamp)
        return list(self.questions[start : min(end, start + limit)])

    def handed_out(self):
        """Every question this snapshot hands out (fetched <= horizon), newest first."""
        return self.questions[bisect.bisect_left(self._keys, -self.horizon) :]


@dataclass(frozen=True)
class Failure:
    at: float  # when the refresh gave up
    message: str


class RecentQuestions:
    """The newest questions of one store, refreshed lazily and shared by threads (or greenlets)."""

    def __init__(
        self,
        store,
        refresh_seconds=0.25,
        status_seconds=3.0,
        retry_seconds=1.0,
        clock=time.time,
        observer=None,
        stale_seconds=STALE_SECONDS,
    ):
        self.store = store
        # Told of stale snapshots served and failed refreshes (webapp/metrics.py counts them).
        self.observer = observer
        self.refresh_seconds = refresh_seconds
        self.status_seconds = status_seconds
        self.retry_seconds = max(retry_seconds, refresh_seconds)
        self.stale_seconds = stale_seconds
        # How long a request waits for the refresh it started, or for the one under way when
        # it has nothing to serve: it answers within 2 s, 503 if it must.
        self.first_wait = 1.5
        self._clock = clock
        self._guard = threading.Lock()  # for _refreshing and _refreshed
        self._refreshing = False  # whether a refresh is under way: one at a time
        self._good = None  # the latest Snapshot
        self._answered = None  # when the refresh that read it ended: the database's last answer
        self._failure = None  # why the refreshes since _good failed, the latest
        self._refreshed = threading.Event()  # set, and replaced, by each refresh as it ends

    def snapshot(self):
        """A Snapshot to answer from, refreshed first if due; raises StoreUnavailable.

        While a refresh is late or failing, the last good snapshot is served
        until the database has not answered for stale_seconds; only then does
        the process say it is unavailable.
        """
        snapshot = self.ready()
        if snapshot is None:
            snapshot = self.current()  # raises StoreUnavailable, unless a refresh just brought one
        if self.observer is not None and self.age(snapshot) >= self.refresh_seconds:
            self.observer.stale_served()
        return snapshot

    def ready(self):
        """Refresh if due; the snapshot to serve, or None.

        The caller that starts a refresh waits for it, first_wait at most. So
        does a caller while no refresh has failed and another is under way,
        if it has nothing to serve (the first refresh) or only a snapshot
        older than WAIT_WHEN_OLDER (a process idle for a while, whose first
        requests come together); once one has failed, the answer is at once.
        """
        if self.refresh_if_due():
            return self._usable()
        snapshot = self._usable()
        old = snapshot is None or self.age(snapshot) > WAIT_WHEN_OLDER
        if old and self._failure is None:
            with self._guard:
                refreshing, ended = self._refreshing, self._refreshed
            if refreshing:
                ended.wait(self.first_wait)
                snapshot = self._usable()
        return snapshot

    def current(self):
        """The snapshot to serve now, without refreshing it; raises StoreUnavailable."""
        snapshot = self._usable()
        if snapshot is not None:
            return snapshot
        failure, answered = self._failure, self._answered
        if failure is not None:
            raise StoreUnavailable(failure.message)
        if answered is None:
            raise StoreUnavailable("the database is unavailable: it has not answered yet")
        silent = self._clock() - answered
        raise StoreUnavailable(f"the database is unavailable: it has not answered for {silent:.0f} s")

    def due(self):
        """Whether a refresh is due: refresh_seconds after the last good one, or a while after a failure."""
        now, good, failure = self._clock(), self._good, self._failure
        if failure is not None:
            # Retried soon while the last good snapshot is still served, then every retry_seconds.
            wait = self.refresh_seconds if self._usable() is not None else self.retry_seconds
            since = now - failure.at
        elif good is not None:
            wait, since = self.refresh_seconds, now - good.taken
        else:
            return True
        return since >= wait or since < 0  # a clock stepped back: refresh rather than stall

    def refresh_if_due(self, wait=True):
        """Start a refresh if one is due and none is under way; whether it started one.

        It runs in a thread (a greenlet under gevent) of its own, so that a
        slow one holds no request: with wait, the caller waits for it
        first_wait at most.
        """
        if not self.due():
            return False
        with self._guard:
            if self._refreshing:
                return False
            self._refreshing, ended = True, self._refreshed
        try:
            threading.Thread(target=self._refresh, name="sofeed-refresh", daemon=True).start()
        except BaseException:
            with self._guard:
                self._refreshing = False  # or no refresh would ever start again
            raise
        if wait:
            ended.wait(self.first_wait)
        return True

    @property
    def next_refresh(self):
        """An Event that the next refresh to end sets (successful or not)."""
        return self._refreshed

    @property
    def refreshing(self):
        return self._refreshing

    def _usable(self):
        """The last good snapshot while it may be served, else None.

        That is while no refresh has failed since it was read and the client
        knows the server, or until the database has not answered for
        stale_seconds, counted from the end of the refresh that read it. A
        refresh under way that has not failed keeps it served however long it
        takes while the server is known: a process starved of CPU reads
        slowly but does read. A refresh's own failure (an error, or the
        client's timeouts against a server that hangs), or the client losing
        the server (a stopped database: its retried calls take seconds to
        fail), means the database does not answer. So a saturated process
        with a healthy database never answers 503.
        """
        good, answered = self._good, self._answered
        if good is None or answered is None:
            return None
        if self._failure is None and self.store.knows_a_server():
            return good
        return good if self._clock() - answered <= self.stale_seconds else None

    def age(self, snapshot):
        """Seconds since the snapshot's refresh started, on this cache's clock."""
        age = self._clock() - snapshot.taken
        return age if age >= 0 else 0.0  # a clock stepped back: as fresh as can be

    def _refresh(self):
        now = self._clock()
        try:
            # No overall deadline (Store.within): the client's timeouts bound each call, and
            # one would turn a refresh that a starved process reads slowly into a failure.
            if self.due():
                snapshot = self._read(now, self._good)
                self._good, self._answered, self._failure = snapshot, self._clock(), None
        except PyMongoError as error:
            if self.observer is not None:
                self.observer.refresh_failed()
            # Retried after it failed, not after it began: it can take several timeouts.
            self._failure = Failure(self._clock(), f"the database is unavailable: {short_reason(error)}")
        finally:
            with self._guard:
                self._refreshing = False
                ended, self._refreshed = self._refreshed, threading.Event()
            ended.set()

    def _read(self, now, previous):
        version = self.store.change_version()
        stale = previous is not None and not 0 <= now - previous.scanned < RESCAN_SECONDS
        moved = previous is None or version != previous.version or stale
        if not moved:
            questions, keys, scanned = previous.questions, previous._keys, previous.scanned
        else:
            scanned = now
            if previous is None or version < previous.version:  # first time, or the database was reset
                docs, known = self.store.recent_questions(None, limit=KEEP), ()
            else:
                since = datetime.fromtimestamp(previous.scanned, UTC) - OVERLAP
                docs, known = self.store.recent_questions(since), previous.questions
            questions = self._merge(known, docs)
            keys = [-question["fetched"] for question in questions]
        status = previous if previous is not None and not self._status_due(now, previous, moved) else None
        pruned_before = self._prune_cutoff() if status is None else status.pruned_before
        if questions and questions[-1]["fetched"] < pruned_before:
            # A prune deleted questions this process read before it: hand them out no more.
            questions = tuple(question for question in questions if question["fetched"] >= pruned_before)
            keys = [-question["fetched"] for question in questions]
        return Snapshot(
            taken=now,
            horizon=now - VISIBILITY_LAG.total_seconds(),
            version=version,
            scanned=scanned,
            questions=questions,
            count=self.store.count_questions() if status is None else status.count,
            crawls=tuple(self.store.crawl_statuses()) if status is None else status.crawls,
            scheduler=self.store.lease("scheduler") if status is None else status.scheduler,
            status_taken=now if status is None else status.status_taken,
            pruned_before=pruned_before,
            _keys=keys,
        )

    def _prune_cutoff(self):
        cutoff = self.store.prune_cutoff()
        return cutoff.timestamp() if cutoff is not None else 0.0

    def _status_due(self, now, previous, moved):
        """Whether to re-read count and crawl status: every status_seconds, sooner if questions came in."""
        age = now - previous.status_taken
        return age < 0 or age >= self.status_seconds or (moved and age >= min(1.0, self.status_seconds))

    @staticmethod
    def _merge(known, docs):
        """known questions plus docs, by id (a re-read one replaces it), newest KEEP first."""
        by_id = {question["id"]: question for question in known}
        by_id.update((doc["_id"], public_question(doc)) for doc in docs)
        newest = sorted(by_id.values(), key=lambda q: (q["fetched"], q["id"]), reverse=True)
        return tuple(newest[:KEEP])
