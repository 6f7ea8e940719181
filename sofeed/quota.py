"""When an API source may ask again: the day's quota, the API's backoff, and who is watching.

The Stack Exchange API grants each caller a quota of requests per UTC day (300
without a key, 10,000 with one), resets it at 00:00 UTC, and may answer with
`backoff: N`, after which the same method must not be called for N seconds.
Pacing spreads what is left of the quota evenly until the reset, never faster
than the scheduler's interval, and slower while no page is open, so that the
requests saved then make the page livelier when someone looks. It keeps a few
requests in reserve, so the quota never runs out before the reset. The
README's "Sources" section gives the resulting pace with and without a key.

Everything here is pure: the time is passed in (epoch seconds), so tests
move through a day without waiting.
"""

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

QUOTA_WITHOUT_KEY = 300
QUOTA_WITH_KEY = 10_000
# Requests never spent by pacing: a manual crawl, a retry or a second process
# may still ask on the same quota without making the API refuse everyone.
RESERVE = 5
# While nobody watches, ask this many times less often than the even spread.
IDLE_FACTOR = 4
# A source paced slowly because nobody watches is looked at again this often,
# so that a page opened meanwhile speeds it up within a minute.
RECHECK_SECONDS = 60


def next_reset(now):
    """Epoch seconds of the first 00:00 UTC after now, when the quota is whole again."""
    day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Reading:
    """What one answer said about the quota; fields the answer lacked are None."""

    at: float
    quota_max: int | None = None
    quota_remaining: int | None = None
    backoff: int | None = None


@dataclass
class QuotaState:
    """One API source's quota as last read, and when it may ask again; kept between crawls."""

    quota_max: int | None = None
    quota_remaining: int | None = None
    read_at: float | None = None
    backoff_until: float | None = None
    last_request: float | None = None

    def observe(self, reading):
        """Take in what an answer said; a backoff only ever pushes the next request later."""
        self.last_request = max(self.last_request or reading.at, reading.at)
        if reading.quota_remaining is not None:
            self.quota_remaining = reading.quota_remaining
            self.read_at = reading.at
        if reading.quota_max is not None:
            self.quota_max = reading.quota_max
        if reading.backoff:
            self.backoff_until = max(self.backoff_until or 0, reading.at + reading.backoff)

    def remaining(self, now, keyed=False):
        """Requests left today: the last reading, or a whole quota once the day it was read has ended."""
        whole = self.quota_max or (QUOTA_WITH_KEY if keyed else QUOTA_WITHOUT_KEY)
        if self.quota_remaining is None or self.read_at is None or next_reset(self.read_at) <= now:
            return whole
        return self.quota_remaining

    def record(self):
        return asdict(self)

    @classmethod
    def from_record(cls, record):
        names = cls.__dataclass_fields__
        return cls(**{name: value for name, value in (record or {}).items() if name in names})


@dataclass(frozen=True)
class Pace:
    """The pace chosen for a source at one moment."""

    spacing: float  # seconds between requests
    next_at: float  # epoch seconds of the earliest next request
    remaining: int  # requests left today, as far as we know
    reason: str  # why next_at is what it is, for the log
    idle: bool = False  # slowed because no page is open: a page opening would bring next_at nearer

    def due(self, now):
        return now >= self.next_at

    def recheck_at(self, now):
        """When to look at the pace again: next_at, or sooner while it waits for want of watchers."""
        return min(self.next_at, now + RECHECK_SECONDS) if self.idle else self.next_at


def pace(state, now, interval, listeners=None, sources=1, keyed=False):
    """When the source may ask next.

    listeners is how many pages are open (None: unknown, paced as watched);
    sources is how many API sources share this quota (one key, or one address).
    """
    remaining = state.remaining(now, keyed)
    until_reset = next_reset(now) - now
    usable = remaining - RESERVE
    idle = False
    if usable <= 0:
        spacing, reason = until_reset, "the day's quota is spent down to its reserve; waiting for 00:00 UTC"
        next_at = next_reset(now)
    else:
        even = until_reset * sources / usable
        idle = listeners == 0
        spacing = max(interval, even * IDLE_FACTOR if idle else even)
        watching = {None: "pages unknown", 0: "no page open"}.get(listeners, "a page open")
        reason = f"{remaining} requests left until 00:00 UTC, {watching}"
        next_at = (state.last_request + spacing) if state.last_request is not None else now
    if state.backoff_until is not None and state.backoff_until > next_at:
        next_at, reason, idle = state.backoff_until, "the API asked for a backoff", False
    return Pace(spacing=spacing, next_at=next_at, remaining=remaining, reason=reason, idle=idle)
