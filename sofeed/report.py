"""What one crawl did, as its components saw it: filled in during the crawl, read by whoever ran it.

The spiders, the middlewares and the pipelines each write what they know
into the crawl's CrawlReport (sofeed/extensions.py hands it out); the
scheduler reads it when the crawl ends (sofeed/scheduling/outcome.py), and
`scrapy crawl` shows its counts among Scrapy's stats.
"""

from dataclasses import dataclass, field
from datetime import datetime

ROBOTS, CHALLENGE = "robots", "challenge"


@dataclass(frozen=True)
class Refusal:
    """The site refused to let us read a feed at all: by robots.txt, or with a Cloudflare challenge."""

    kind: str  # ROBOTS or CHALLENGE
    advice: str  # what the person running sofeed can do about it


@dataclass
class CrawlReport:
    """The facts of one crawl; fields stay at their defaults for what did not happen."""

    http_status: int | None = None
    new: int = 0
    duplicate: int = 0
    invalid: int = 0
    not_modified: bool = False
    # The first failure, as logged (a feed's lines start with "feed URL: ").
    error: str | None = None
    # Something odd about a source that was read anyway.
    warnings: list[str] = field(default_factory=list)
    # The source may not be asked again before then: Retry-After, the API's backoff, or its pace.
    not_before: datetime | None = None
    # The crawl's deadline passed before the source was even requested.
    not_requested: bool = False
    # Why MongoDB could not be used; the crawl was closed at once.
    store_error: str | None = None
    refusal: Refusal | None = None
    # An API source's quota, as its latest answer gave it.
    quota_remaining: int | None = None
    quota_max: int | None = None

    @property
    def failed(self):
        """Whether a source failed: it could not be fetched, or its answer could not be read."""
        return self.error is not None

    def fail(self, message):
        """Keep the first failure: a later one is usually a consequence."""
        if self.error is None:
            self.error = message

    def warn(self, message):
        self.warnings.append(message)

    def refuse(self, refusal, what):
        """The site refused the source: what happened, then the advice, is the failure."""
        self.refusal = refusal
        self.fail(f"{what}; {refusal.advice}")

    def lose_store(self, message):
        """MongoDB is unavailable: that is the crawl's failure, whatever else went wrong."""
        self.store_error = self.error = message

    def wait_until(self, moment):
        """Not before moment; a later wait wins."""
        if self.not_before is None or moment > self.not_before:
            self.not_before = moment

    def counts(self):
        """The counters, named as Scrapy's stats show them."""
        return {"sofeed/new": self.new, "sofeed/duplicate": self.duplicate, "sofeed/invalid": self.invalid}
