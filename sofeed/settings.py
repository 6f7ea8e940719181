"""Scrapy settings for sofeed; each block says why it is set.

MONGO_URI, MONGO_DATABASE and SOFEED_FEED_URLS also come from the environment,
so that the crawl, the scheduler and the web app agree on one configuration.
`scrapy crawl sofeed -s NAME=VALUE` overrides any of them.
"""

import os

from sofeed import sources

BOT_NAME = "sofeed"

SPIDER_MODULES = ["sofeed.spiders"]
NEWSPIDER_MODULE = "sofeed.spiders"

ADDONS = {}

# Where questions are stored.
MONGO_URI = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017")
MONGO_DATABASE = os.environ.get("MONGO_DATABASE", "stack_questions")
# How long a MongoDB call may wait for the server before the crawl gives up.
MONGO_TIMEOUT_MS = 3000

# The sources to mirror, Atom feeds and API URLs mixed, comma-separated;
# `-a feed_url=...` takes precedence. Empty: the default source below.
SOFEED_FEED_URLS = os.environ.get("SOFEED_FEED_URLS", "")
# The default source: Stack Overflow's feed, and the API for the same questions,
# which the scheduler switches to while the feed is refused (docs/SOURCES.md).
# Settings, so that tests can point them at local servers.
SOFEED_DEFAULT_FEED_URL = os.environ.get("SOFEED_DEFAULT_FEED_URL", sources.DEFAULT_FEED_URL)
SOFEED_DEFAULT_API_URL = os.environ.get("SOFEED_DEFAULT_API_URL", sources.DEFAULT_API_URL)
# robots.txt can change: while mirroring through the API, the feed is tried again this often.
SOFEED_DEFAULT_FEED_RETRY_SECONDS = float(os.environ.get("SOFEED_DEFAULT_FEED_RETRY_SECONDS", "86400"))

# A Stack Exchange API key (free, registered on stackapps.com) raises an API
# source's quota from 300 to 10,000 requests a day. It is never logged.
SOFEED_STACKEXCHANGE_KEY = os.environ.get("SOFEED_STACKEXCHANGE_KEY", "")
# The fastest an API source is asked, in seconds; the scheduler sets its --interval.
SOFEED_INTERVAL = float(os.environ.get("SOFEED_INTERVAL", "30"))

# Say who we are, so the site can tell this mirror apart from other bots.
USER_AGENT = "sofeed/0.1 (Scrapy; a realtime mirror of the Stack Overflow question feed)"

# Obey robots.txt; the spider logs the override when it blocks a feed.
ROBOTSTXT_OBEY = True

# A crawl asks for a handful of feeds every 30 seconds: one request at a time
# per site is polite, and no added delay is needed at that rate.
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY = 0

# A feed is tens of kilobytes; anything past a few megabytes is not one.
DOWNLOAD_MAXSIZE = 4 * 1024 * 1024
DOWNLOAD_WARNSIZE = 1024 * 1024

# Crawls run every 30 seconds. With robots.txt, one feed is at most two
# downloads and two retries: 4 x 6 s stays under the interval.
DOWNLOAD_TIMEOUT = 6

# A feed needs a redirect or two (to https, to a moved path): a redirect loop
# is given up after five, not Scrapy's twenty, well within a crawl's deadline.
REDIRECT_MAX_TIMES = 5

# One retry for passing failures. 429 and 503 are not retried at once: they
# carry Retry-After, which SourceStateMiddleware honours on the next crawl.
# The spider reports a feed that still fails, so the give-up line is DEBUG.
RETRY_TIMES = 1
RETRY_HTTP_CODES = [500, 502, 504, 522, 524, 408]
RETRY_GIVE_UP_LOG_LEVEL = "DEBUG"

# Conditional GET and Retry-After per source. It runs before RobotsTxtMiddleware
# (100), so a feed that must wait costs not even a robots.txt request.
# CrawlDeadlineMiddleware runs after DownloadTimeoutMiddleware (350), to cap
# the timeout that one sets by the deadline the scheduler gives each crawl,
# and after RetryMiddleware (550), to cancel a retry that has no time left.
# SharedRobotsTxtMiddleware takes the stock one's place, to keep robots.txt
# across the scheduler's crawls.
DOWNLOADER_MIDDLEWARES = {
    "sofeed.middlewares.SourceStateMiddleware": 50,
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "sofeed.middlewares.SharedRobotsTxtMiddleware": 100,
    "sofeed.middlewares.CrawlDeadlineMiddleware": 555,
}

# How long the scheduler's process keeps a site's robots.txt.
SOFEED_ROBOTSTXT_KEEP_SECONDS = float(os.environ.get("SOFEED_ROBOTSTXT_KEEP_SECONDS", "3600"))

# The crawl's database handle and its report, which every component shares,
# and the log filters that keep each fault to one line and API keys out.
EXTENSIONS = {
    "sofeed.extensions.StoreExtension": 0,
    "sofeed.extensions.CrawlReporter": 0,
    "sofeed.logs.LogFilters": 0,
}

# A whole feed's questions are looked up in one query before they are stored.
SPIDER_MIDDLEWARES = {"sofeed.pipelines.QuestionLookAhead": 950}

# The scheduler sets a time.monotonic() by which each crawl must end; none for `scrapy crawl`.
SOFEED_CRAWL_DEADLINE = None

# Validate entries, then store them.
ITEM_PIPELINES = {
    "sofeed.pipelines.ValidationPipeline": 100,
    "sofeed.pipelines.MongoPipeline": 300,
}

# A crawl every 30 seconds: per-request DEBUG lines would drown what matters.
LOG_LEVEL = "INFO"

# No interactive console on a long-running, unattended mirror.
TELNETCONSOLE_ENABLED = False
# Scrapy's remote-control server runs code sent to it: not on an unattended mirror.
REMOTE_CONTROL_ENABLED = False

# `-O items.jsonl` writes readable UTF-8, not \u escapes.
FEED_EXPORT_ENCODING = "utf-8"
