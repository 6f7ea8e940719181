"""The lease that lets one scheduler crawl while others against the same database stand by."""

import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

from pymongo.errors import PyMongoError

from sofeed.outage import short_reason

logger = logging.getLogger(__name__)

LEASE = "scheduler"


class CrawlLease:
    """Take, renew and give up the crawl lease; log every change of role.

    The holder renews the lease well before it expires. A standby takes it
    once it has expired, so a holder killed with SIGKILL is replaced within
    one lease time. The holder stops crawling when its own clock says the
    lease may have run out, even if it could not reach the database to hear
    so. Host clocks must agree to within a small part of the lease time (NTP).

    hold() and release() block on the database: call them off the reactor.
    """

    def __init__(self, store, ttl, clock=time.time, monotonic=time.monotonic):
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.monotonic = monotonic
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.holder = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.active = False
        self.valid_until = 0.0  # monotonic time when our lease may have expired
        self._other = None  # the holder we last saw, while on standby
        self._unreachable = False

    def hold(self):
        """Renew or take the lease if we can. Returns whether we may crawl now."""
        asked = self.monotonic()
        now = datetime.fromtimestamp(self.clock(), UTC)
        try:
            held, lease = self.store.hold_lease(
                LEASE, self.holder, timedelta(seconds=self.ttl), now, {"host": self.host, "pid": self.pid}
            )
        except PyMongoError as error:
            if not self._unreachable:
                logger.warning("cannot reach MongoDB for the crawl lease: %s", short_reason(error))
                self._unreachable = True
            if self.active and asked >= self.valid_until:
                self.active = False
                logger.warning("standby: the crawl lease may have expired while MongoDB was unreachable")
            return self.may_crawl()
        self._unreachable = False
        if held:
            self.valid_until = asked + self.ttl
            if not self.active:
                logger.info("active: this scheduler (%s) holds the crawl lease and crawls", self.holder)
            self.active, self._other = True, None
        else:
            if self.active or lease["holder"] != self._other:
                logger.info(
                    "standby: %s holds the crawl lease until %s UTC; taking over if it lapses",
                    lease["holder"],
                    f"{lease['expires']:%H:%M:%S}",
                )
            self.active, self._other = False, lease["holder"]
        return self.may_crawl()

    def may_crawl(self, seconds=0.0):
        """Whether we hold the lease for at least `seconds` more."""
        return self.active and self.monotonic() + seconds < self.valid_until

    def release(self):
        """Give the lease up, so that a standby takes over at once."""
        if self.active:
            self.active = False
            self.store.release_lease(LEASE, self.holder)
            logger.info("released the crawl lease")
