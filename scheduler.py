"""Keep the sofeed mirror fresh: crawl the feeds every 30 seconds until stopped.

    python scheduler.py                    # crawl now, then every 30 s
    python scheduler.py --interval 10      # every 10 s
    python scheduler.py --once             # one crawl; exit status 1 if it failed

Run a second one, on another host, against the same MONGO_URI for a standby:
only the holder of the crawl lease crawls, and a standby takes over within
three intervals when the holder dies. SIGTERM or Ctrl-C stops it within 5 s.
"""

import argparse
import logging
import os
import signal
import sys
import threading

from pymongo.errors import ConfigurationError
from scrapy.utils.reactor import install_reactor

from sofeed.scheduling.retention import keep_days, start_retention
from sofeed.sources import split_urls

ASYNCIO_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# The process exits this long after SIGTERM even if a database call is stuck.
EXIT_WITHIN = 4.5

logger = logging.getLogger("sofeed.scheduler")


def positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0.1 and 86400")
    return value


def parse_options(argv=None, environ=os.environ):
    parser = argparse.ArgumentParser(
        prog="scheduler.py",
        description="Crawl the Stack Overflow feed into MongoDB every INTERVAL seconds, until stopped.",
        epilog="MONGO_URI (default mongodb://127.0.0.1:27017) and MONGO_DATABASE (default stack_questions) "
        "choose the database, as for `scrapy crawl sofeed`.",
    )
    parser.add_argument(
        "--interval",
        type=positive_seconds,
        default=environ.get("SOFEED_INTERVAL", "30"),
        help="seconds between crawls, fractions allowed (env SOFEED_INTERVAL; default 30)",
    )
    parser.add_argument(
        "--feed-url",
        action="append",
        dest="feed_urls",
        metavar="URL",
        help="a source to crawl, an Atom feed or a Stack Exchange API questions URL; repeat for several "
        "(env SOFEED_FEED_URLS, comma-separated). Default: Stack Overflow's feed, or the API while "
        "the feed is refused",
    )
    parser.add_argument(
        "--once", action="store_true", help="crawl once and exit: status 0 on success, 1 on failure"
    )
    options = parser.parse_args(argv)
    if isinstance(options.interval, str):  # the default, from the environment
        try:
            options.interval = positive_seconds(options.interval)
        except argparse.ArgumentTypeError as error:
            parser.error(f"SOFEED_INTERVAL: {error}")
    try:
        options.keep_days = keep_days(environ)
    except ValueError as error:
        parser.error(str(error))
    # Empty: the default source (sofeed/scheduling/default_source.py).
    options.feed_urls = split_urls(options.feed_urls or environ.get("SOFEED_FEED_URLS", ""))
    return options


class CrawlLineFilter(logging.Filter):
    """Drop what the spiders, pipelines and middlewares log: each crawl's one line says it."""

    LOGGERS = frozenset(
        {"sofeed", "stackexchange", "sofeed.pipelines", "sofeed.middlewares", "sofeed.outage"}
    )

    def filter(self, record):
        return record.name not in self.LOGGERS


def configure_logging():
    from scrapy.utils.log import configure_logging as configure_scrapy_logging

    # Scrapy sends Twisted's log to `logging`; the handler is ours.
    configure_scrapy_logging({"LOG_INSTALL_ROOT_HANDLER": False})
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(CrawlLineFilter())
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.INFO)
    # Scrapy's start-up listings and stats would print on every crawl.
    logging.getLogger("scrapy").setLevel(logging.WARNING)


def crawl_settings(interval):
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("sofeed.settings", priority="project")
    settings.set("TWISTED_REACTOR", ASYNCIO_REACTOR, priority="cmdline")
    # Per crawl, these would cost CPU for lines nobody reads.
    settings.set("STATS_DUMP", False, priority="cmdline")
    settings.set("LOGSTATS_INTERVAL", 0, priority="cmdline")
    settings.set("MEMUSAGE_ENABLED", False, priority="cmdline")
    # The scheduler's short intervals (tests use 0.5 s) need short waits.
    # API sources are never asked more often than the scheduler crawls.
    settings.set("SOFEED_INTERVAL", interval, priority="cmdline")
    settings.set("MONGO_TIMEOUT_MS", int(min(3000, max(1000, interval * 200))), priority="cmdline")
    return settings


def main(argv=None):
    options = parse_options(argv)
    configure_logging()
    install_reactor(ASYNCIO_REACTOR)
    from scrapy.crawler import CrawlerRunner
    from twisted.internet import reactor

    from sofeed.scheduling.default_source import DefaultSource
    from sofeed.scheduling.lease import CrawlLease
    from sofeed.scheduling.loop import LEASE_INTERVALS, CrawlLoop
    from sofeed.store import SHARED

    settings = crawl_settings(options.interval)
    uri, database = settings["MONGO_URI"], settings["MONGO_DATABASE"]
    try:
        # Held for the process's life: every crawl's StoreExtension borrows this client.
        store = SHARED.acquire(uri, database, settings.getint("MONGO_TIMEOUT_MS"))
    except ConfigurationError as error:
        logger.error("cannot use MONGO_URI: %s", error)
        return 2
    runner = CrawlerRunner(settings)
    lease = None if options.once else CrawlLease(store, ttl=LEASE_INTERVALS * options.interval)
    default = None
    if not options.feed_urls:
        default = DefaultSource(
            settings["SOFEED_DEFAULT_FEED_URL"],
            settings["SOFEED_DEFAULT_API_URL"],
            settings.getfloat("SOFEED_DEFAULT_FEED_RETRY_SECONDS"),
        )
    loop = CrawlLoop(
        runner, store, options.feed_urls, options.interval, reactor, lease=lease, default=default
    )
    if lease is not None and options.keep_days:  # retention: in a thread of its own, by the lease holder
        start_retention(store, lease, options.interval, options.keep_days)
    try:
        if options.once:
            return run_once(loop, reactor)
        return run_forever(loop, reactor, options)
    finally:
        SHARED.release(store)


def run_once(loop, reactor):
    from scrapy.utils.defer import deferred_from_coro

    outcomes = []

    def crawl():
        cycle = deferred_from_coro(loop.run_cycle(every_feed=True))
        cycle.addCallback(outcomes.extend)
        cycle.addErrback(lambda failure: logger.error("crawl failed: %s", failure.getErrorMessage()))
        cycle.addBoth(lambda _: loop.stop())
        cycle.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(crawl)
    reactor.run()
    return 0 if outcomes and all(outcome.ok for outcome in outcomes) else 1


def run_forever(loop, reactor, options):
    stopping = threading.Event()

    def stop(signum, frame):
        if stopping.is_set():
            return
        stopping.set()
        logger.info("%s: stopping", signal.Signals(signum).name)
        # However the stop goes, the process is gone within EXIT_WITHIN.
        watchdog = threading.Timer(EXIT_WITHIN, hard_exit)
        watchdog.daemon = True
        watchdog.start()
        reactor.callFromThread(lambda: loop.stop().addBoth(lambda _: reactor.stop()))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sources = options.feed_urls or [
        f"{loop.default.feed_url} (or, while it is refused, {loop.default.api_url})"
    ]
    logger.info("crawling %s every %g s into %s", ", ".join(sources), options.interval, loop.store.db.name)
    reactor.callWhenRunning(loop.start)
    reactor.run(installSignalHandlers=False)
    logger.info("stopped")
    return 0


def hard_exit():
    logger.warning("still busy %.1f s after the stop signal (a stuck database call?); exiting", EXIT_WITHIN)
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
