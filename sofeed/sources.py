"""Where questions come from: Atom feeds and Stack Exchange API sources, told apart by URL.

A source is a URL. One whose path ends in /2.3/questions is an API source,
on any host (so a local simulator is one too), read by the `stackexchange`
spider; any other URL is an Atom feed, read by the `sofeed` spider. Both
kinds may be mixed in SOFEED_FEED_URLS, --feed-url and -a feed_url.
"""

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

# What the design card mirrors when nothing is configured, and the sanctioned
# way to read the same questions when the feed is refused (docs/SOURCES.md).
DEFAULT_FEED_URL = "https://stackoverflow.com/feeds"
DEFAULT_API_URL = "https://api.stackexchange.com/2.3/questions?site=stackoverflow"

API_PATH = "/2.3/questions"
API_SPIDER, ATOM_SPIDER = "stackexchange", "sofeed"

# The network's domains: a feed on any other host has no API source.
_NETWORK_DOMAINS = (
    *("stackoverflow.com", "stackexchange.com", "superuser.com", "serverfault.com"),
    *("askubuntu.com", "mathoverflow.net", "stackapps.com"),
)


def split_urls(value):
    """Source URLs from a comma-separated string or a list; blanks dropped."""
    if isinstance(value, str):
        value = value.split(",")
    return [url.strip() for url in value or () if url and url.strip()]


def is_api_url(url):
    """Whether url is a Stack Exchange API questions URL (path ending in /2.3/questions), on any host."""
    try:
        return urlsplit(url).path.rstrip("/").endswith(API_PATH)
    except ValueError:
        return False


def spider_for(url):
    """The name of the spider that reads url."""
    return API_SPIDER if is_api_url(url) else ATOM_SPIDER


def api_url_for(feed_url, api_base=DEFAULT_API_URL):
    """The API source that reads the same site as an Atom feed URL, or None for a host off the network.

    The API names a site by its domain as well as by its short name, so the
    feed's host is the `site` parameter as it stands: stackoverflow.com,
    superuser.com, unix.stackexchange.com. A tag's feed (/feeds/tag/python)
    becomes `tagged=python`.
    """
    try:
        feed = urlsplit(feed_url)
        host = (feed.hostname or "").removeprefix("www.")
    except ValueError:
        return None
    if not any(host == domain or host.endswith("." + domain) for domain in _NETWORK_DOMAINS):
        return None
    parts = urlsplit(api_base)
    params = {**dict(parse_qsl(parts.query)), "site": host}
    tag = feed.path.rstrip("/").rpartition("/feeds/tag/")[2] if "/feeds/tag/" in feed.path else ""
    if tag:
        params["tagged"] = unquote(tag)
    return parts._replace(query=urlencode(params)).geturl()
