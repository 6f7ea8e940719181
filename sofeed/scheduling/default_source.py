"""What the scheduler reads when no source is configured: Stack Overflow's feed, else the API.

The design card's source is the Atom feed, so it is tried first. When the
site refuses it (robots.txt, a Cloudflare challenge), the same questions are
read through the Stack Exchange API instead, and the feed is tried again
about once a day, since robots.txt can change. A source the user configured
is never switched. See docs/SOURCES.md.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from sofeed.report import ROBOTS

_REFUSED_BY = {ROBOTS: "robots.txt"}


@dataclass
class DefaultSource:
    """Which of the two default URLs to crawl, and why; times are epoch seconds."""

    feed_url: str
    api_url: str
    retry_feed_seconds: float = 86400.0
    refused: str | None = None  # the refusal's kind while reading through the API
    retry_feed_at: float = 0.0

    def current(self, now):
        """The URL to crawl now: the feed, unless it was refused and is not due for another try."""
        if self.refused is not None and now < self.retry_feed_at:
            return self.api_url
        return self.feed_url

    def observe(self, outcome, now):
        """Take in a crawl's outcome; returns the line to log when the source switches, else None."""
        if outcome.feed != self.feed_url:
            return None
        if outcome.refusal is not None:
            switching = self.refused is None
            self.refused, self.retry_feed_at = outcome.refusal.kind, now + self.retry_feed_seconds
            if not switching:
                return None
            again = datetime.fromtimestamp(self.retry_feed_at, UTC)
            return (
                f"the default feed {self.feed_url} is refused ({self.refused_by}); mirroring "
                f"Stack Overflow through the Stack Exchange API ({self.api_url}) instead, "
                f"and trying the feed again at {again:%Y-%m-%d %H:%M} UTC"
            )
        if outcome.ok and self.refused is not None:
            self.refused = None
            return f"the default feed {self.feed_url} can be read again; mirroring it instead of the API"
        return None

    @property
    def refused_by(self):
        return _REFUSED_BY.get(self.refused, "a Cloudflare challenge")

    def via(self, url):
        """For the status line: why url is crawled instead of the feed, or None."""
        if url != self.api_url or self.refused is None:
            return None
        return f"through the Stack Exchange API: the feed {self.feed_url} is refused ({self.refused_by})"
