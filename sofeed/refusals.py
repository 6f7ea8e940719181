"""A site that will not let a crawler read its feed, recognised, and what to do about it.

Since December 2024 Stack Exchange answers crawlers that Cloudflare has not
verified with a robots.txt of `Disallow: /`, and Cloudflare challenges some
feed requests (docs/SOURCES.md). Either way the feed cannot be read by an
obedient crawler, and the fix is the same: the Stack Exchange API.
"""

import re

from sofeed.report import CHALLENGE, ROBOTS, Refusal
from sofeed.sources import api_url_for

# Cloudflare marks a challenge page with this header; older ones are known by their title.
CHALLENGE_HEADER = b"cf-mitigated"
_CHALLENGE_TITLE = re.compile(rb"<title>\s*Just a moment\.\.\.\s*</title>", re.IGNORECASE)


def is_challenge(status, headers, body):
    """Whether an answer is Cloudflare's browser challenge rather than the feed.

    headers is Scrapy's Headers (case-insensitive, bytes values).
    """
    if (headers.get(CHALLENGE_HEADER) or b"").strip().lower() == b"challenge":
        return True
    return status in (403, 429, 503, 200) and bool(_CHALLENGE_TITLE.search(body[:4096]))


def _through_the_api(feed_url):
    api_url = api_url_for(feed_url)
    if api_url is None:
        return None
    return f"read the same questions through the Stack Exchange API: --feed-url '{api_url}'"


def robots_refusal(feed_url):
    """The refusal of a feed by its site's robots.txt, with both ways out."""
    options = [
        _through_the_api(feed_url),
        "if the site allows you, set ROBOTSTXT_OBEY=False (scrapy crawl sofeed -s ROBOTSTXT_OBEY=False)",
    ]
    return Refusal(ROBOTS, "; or, ".join(option for option in options if option))


def challenge_refusal(feed_url):
    """The refusal of a feed by a Cloudflare challenge, which a crawler cannot pass."""
    advice = (
        _through_the_api(feed_url) or "ask the site's owner for access: a crawler cannot pass a challenge"
    )
    return Refusal(CHALLENGE, advice)
