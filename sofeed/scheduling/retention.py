"""Retention: the scheduler deletes questions first fetched more than SOFEED_KEEP_DAYS ago, once a day.

Off unless SOFEED_KEEP_DAYS is set: deleting a mirror's history is for its
owner to choose (README, "Retention"). A prune scans `questions` on FerretDB
(minutes at 100,000 questions on a busy machine here, bench/prune.py), so it
runs in a thread of its own, never on the reactor nor inside a crawl, and
only in the scheduler that holds the crawl lease. When it last ran is kept in the database, so neither a
restart nor a standby taking over prunes again within the day. A prune
deletes at most PRUNE_BATCH questions; a mirror that turns retention on
with a long history behind it is pruned a batch at each look, every few
minutes, until it is done.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo.errors import PyMongoError

from sofeed.outage import short_reason
from sofeed.store import PRUNE_BATCH

logger = logging.getLogger(__name__)

SETTING = "SOFEED_KEEP_DAYS"
EVERY = timedelta(days=1)
# The thread looks whether a prune is due this many crawl intervals apart (5 min at 30 s).
CHECK_INTERVALS = 10
# A prune's database calls may take this long in all: on FerretDB each scans `questions`,
# and a prune took minutes at 100,000 questions on a busy machine here (bench/prune.py).
PRUNE_TIMEOUT = 3600.0


def keep_days(environ):
    """SOFEED_KEEP_DAYS as a number of days, or None when retention is off (unset, empty or 0)."""
    text = environ.get(SETTING, "").strip()
    try:
        days = float(text or 0)
    except ValueError:
        days = math.nan
    if not 0 <= days < math.inf:
        raise ValueError(
            f"{SETTING}={text!r} is not a number of days: set it to how many days of questions "
            "to keep (90, or 0.5), or to 0 to keep them all"
        )
    return days or None


@dataclass(frozen=True)
class Prune:
    """What one prune did."""

    before: datetime  # questions first fetched before this were deleted
    deleted: int
    seconds: float
    complete: bool  # False: it deleted a whole batch, and the next look goes on with the rest


class Retention:
    """Prune questions older than keep_days, at most once every `every`."""

    def __init__(self, store, days, every=EVERY, batch=PRUNE_BATCH, clock=time.time, timer=time.monotonic):
        self.store = store
        self.keep = timedelta(days=days)
        self.every = every
        self.batch = batch
        self.clock = clock
        self.timer = timer

    def due(self):
        last = self.store.last_prune()
        return last is None or self._now() - last >= self.every

    def prune(self):
        """Delete what is older than the retention period now; returns a Prune."""
        now = self._now()
        started = self.timer()
        with self.store.within(PRUNE_TIMEOUT):
            self.store.ensure_indexes()  # a database from before the count: counted before the delete
            deleted = self.store.prune_questions(now - self.keep, now, self.batch)
        return Prune(now - self.keep, deleted, self.timer() - started, deleted < self.batch)

    def prune_if_due(self, may_prune):
        """A Prune if one was due and may_prune() allowed it (the lease is ours), else None."""
        # Asked with the client's own timeouts, so an unreachable database fails in seconds here,
        # not after PRUNE_TIMEOUT (a pymongo.timeout() replaces the server selection timeout too).
        return self.prune() if may_prune() and self.due() else None

    def _now(self):
        return datetime.fromtimestamp(self.clock(), UTC)


class RetentionThread:
    """Retention.prune_if_due every check_seconds, in a daemon thread; failures are logged and retried."""

    def __init__(self, retention, may_prune, check_seconds):
        self.retention = retention
        self.may_prune = may_prune
        self.check_seconds = check_seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sofeed-retention", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()

    def _run(self):
        while not self.stopped.wait(self.check_seconds):
            self.check()

    def check(self):
        try:
            done = self.retention.prune_if_due(self.may_prune)
        except PyMongoError as error:
            logger.warning("retention: prune failed: %s; trying again later", short_reason(error))
            return None
        except Exception:
            logger.exception("retention: prune failed; trying again later")
            return None
        if done is not None:
            logger.info(
                "retention: deleted %d questions first fetched before %s UTC, in %.1f s%s",
                done.deleted,
                f"{done.before:%Y-%m-%d %H:%M}",
                done.seconds,
                "" if done.complete else f"; more in {self.check_seconds:g} s",
            )
        return done


def start_retention(store, lease, interval, days):
    """Prune in a daemon thread, checking every CHECK_INTERVALS crawl intervals; returns the thread."""
    logger.info("retention: keeping %g days of questions; the lease holder prunes once a day", days)
    return RetentionThread(Retention(store, days), lease.may_crawl, CHECK_INTERVALS * interval).start()
