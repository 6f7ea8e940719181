"""When a feed may be crawled next: exponential backoff after failures, and Retry-After."""

from dataclasses import dataclass

# A feed that keeps failing is still tried every ten minutes.
MAX_DELAY = 600.0
# A feed due "at" a tick may come due a hair after it; without this slack, the
# backoff would slip by one whole interval each time.
SLACK = 0.1


@dataclass
class FeedBackoff:
    """The crawl schedule of one feed. Times are epoch seconds.

    After n consecutive failures the feed waits interval * 2**n, at most
    MAX_DELAY. A Retry-After time is never undercut, however long it is (the
    feed-state middleware caps it at 6 h). The first success resets both.
    """

    interval: float
    failures: int = 0
    next_at: float = 0.0
    retry_at: float = 0.0

    def due(self, now):
        return now >= self.retry_at and now >= self.next_at - SLACK * self.interval

    def succeeded(self):
        self.failures = 0
        self.next_at = self.retry_at = 0.0

    def failed(self, now, retry_at=None):
        """Count a failure; returns the delay before the next try, in seconds."""
        self.failures += 1
        delay = min(self.interval * 2 ** min(self.failures, 20), MAX_DELAY)
        self.next_at = now + delay
        if retry_at is not None:
            self.defer(retry_at)
        return max(self.next_at, self.retry_at) - now

    def defer(self, retry_at):
        """Not before retry_at (the feed asked us to wait); not a failure."""
        self.retry_at = max(self.retry_at, retry_at)

    def next_run(self, now, next_tick):
        """When the feed will next be crawled, given the time of the next tick."""
        wait_until = max(self.next_at, self.retry_at)
        if wait_until <= next_tick:
            return next_tick
        ticks = -(-(wait_until - next_tick - SLACK * self.interval) // self.interval)
        return next_tick + max(ticks, 0) * self.interval
