"""One crawl's result, from its CrawlReport and how it ended: one log line and one status record."""

from dataclasses import dataclass
from datetime import datetime

from sofeed.report import Refusal

OK, NOT_MODIFIED, DEFERRED, FAILED, TIMED_OUT = "ok", "not_modified", "deferred", "failed", "timeout"
# Past its deadline through no fault of the feed: it answered and was read,
# or the deadline passed before it was even requested (a busy machine, a
# slow database). Not a failure of the feed, so no backoff: waiting longer
# would only let new questions scroll out of the feed unread.
SLOW = "slow"


@dataclass
class CrawlOutcome:
    feed: str
    started: datetime
    finished: datetime
    outcome: str
    http_status: int | None = None
    new: int = 0
    duplicate: int = 0
    invalid: int = 0
    error: str | None = None
    retry_at: datetime | None = None  # from Retry-After
    warning: str | None = None  # something odd about a feed that was read anyway
    quota_remaining: int | None = None  # an API source's requests left today
    quota_max: int | None = None
    refusal: Refusal | None = None  # the site refuses crawlers this feed (robots.txt, a challenge)
    via: str | None = None  # the default source is read through another: why, for the status line

    @property
    def ok(self):
        """Whether the crawl did its job; a Retry-After wait is not a failure."""
        return self.outcome in (OK, NOT_MODIFIED, DEFERRED)

    @property
    def feed_failed(self):
        """Whether the feed failed (it did not answer in time, or answered badly): it backs off."""
        return not self.ok and self.outcome != SLOW

    @property
    def seconds(self):
        return (self.finished - self.started).total_seconds()

    @classmethod
    def from_report(cls, feed, report, finish_reason, started, finished, deadline_passed=False):
        """Classify a crawl that ran to its end (or was cut off) by what its report says."""
        error = _without_feed_prefix(report.error, feed)
        answered = report.http_status in (200, 304) and not report.failed
        if report.store_error:
            outcome = FAILED
        elif report.not_requested:
            outcome, error = SLOW, "the crawl's deadline passed before the feed was requested"
        elif finish_reason == TIMED_OUT and answered:
            outcome, error = SLOW, "the feed answered, but the crawl ran past its deadline"
        elif finish_reason == TIMED_OUT or (deadline_passed and (error or finish_reason != "finished")):
            outcome = TIMED_OUT
            error = f"cut off at its deadline: {error or 'still running'}"
        elif report.failed:
            outcome = FAILED
        elif finish_reason != "finished":
            outcome, error = FAILED, f"the crawl ended early: {finish_reason}"
        elif report.not_before and report.http_status is None:
            outcome = DEFERRED
        elif report.not_modified:
            outcome = NOT_MODIFIED
        else:
            outcome = OK
        return cls(
            feed=feed,
            started=started,
            finished=finished,
            outcome=outcome,
            http_status=report.http_status,
            new=report.new,
            duplicate=report.duplicate,
            invalid=report.invalid,
            error=error,
            retry_at=report.not_before,
            warning="; ".join(report.warnings) or None,
            quota_remaining=report.quota_remaining,
            quota_max=report.quota_max,
            refusal=report.refusal,
        )

    @classmethod
    def crashed(cls, feed, error, started, finished):
        """A crawl that raised instead of finishing: a bug, or Scrapy failing to start."""
        return cls(feed, started, finished, FAILED, error=f"{type(error).__name__}: {error}")

    def line(self):
        """The crawl in one log line."""
        if self.outcome == DEFERRED:
            return f"feed {self.feed}: skipped, not asking before {self.retry_at:%H:%M:%S} UTC"
        status = f"HTTP {self.http_status}" if self.http_status else "no response"
        counts = f"{self.new} new, {self.duplicate} duplicate, {self.invalid} invalid"
        also = f"; {self.warning}" if self.warning else ""
        if self.quota_remaining is not None:
            counts += f", API quota {self.quota_remaining}/{self.quota_max or '?'} left"
        if self.ok:
            return f"feed {self.feed}: {status}, {counts}, {self.seconds:.2f} s{also}"
        took = f"{self.seconds:.2f} s"
        return f"feed {self.feed}: {self.outcome} after {took} ({status}, {counts}): {self.error}{also}"

    def record(self):
        """The fields the store keeps for the latest crawl of the feed."""
        return {
            "started": self.started,
            "finished": self.finished,
            "outcome": self.outcome,
            "ok": self.ok,
            "http_status": self.http_status,
            "new": self.new,
            "duplicate": self.duplicate,
            "invalid": self.invalid,
            "error": self.error,
            "quota_remaining": self.quota_remaining,
            "quota_max": self.quota_max,
            "refused": self.refusal.kind if self.refusal else None,
            "advice": self.refusal.advice if self.refusal else None,
            "via": self.via,
        }


def _without_feed_prefix(message, feed):
    """The spider's lines start with "feed URL: "; the log line says it once."""
    if message and message.startswith(f"feed {feed}: "):
        return message[len(f"feed {feed}: ") :]
    return message
