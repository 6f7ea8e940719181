"""GET /metrics: the web app and the scheduler in Prometheus text format.

What the web processes count themselves (open streams, /update requests and
their latency, stale snapshots served, failed database refreshes) lives in
prometheus_client's multiprocess files when PROMETHEUS_MULTIPROC_DIR is set
(webapp/gunicorn_conf.py sets one per run), so whichever worker answers sums
all of them. What the scheduler owns (crawls, questions, the last good crawl,
an API quota, the last prune) is read from its records in the database at
scrape time, so it is right whichever host or process crawled.
"""

import os
import time

from flask import Blueprint, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pymongo.errors import PyMongoError

from webapp.db import get_store

bp = Blueprint("metrics", __name__)

OPEN_STREAMS = Gauge("sofeed_open_streams", "Live /events streams being served", multiprocess_mode="livesum")
UPDATE_REQUESTS = Counter("sofeed_update_requests", "/update requests answered, by status", ["status"])
UPDATE_SECONDS = Histogram(
    "sofeed_update_seconds",
    "Time to answer /update",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
STALE_SNAPSHOTS = Counter(
    "sofeed_stale_snapshots_served",
    "Answers given from a snapshot older than REFRESH_SECONDS (a refresh was under way, late or failing)",
)
REFRESH_FAILURES = Counter(
    "sofeed_database_refresh_failures", "Refreshes of the recent questions that failed"
)


class RecentObserver:
    """What webapp/recent.py reports as it serves: plain calls, counted here."""

    @staticmethod
    def stale_served():
        STALE_SNAPSHOTS.inc()

    @staticmethod
    def refresh_failed():
        REFRESH_FAILURES.inc()


OBSERVER = RecentObserver()


class StoreCollector:
    """The scheduler's figures, as read from the database for one scrape."""

    def __init__(self, totals, crawls, now, stored=None, last_prune=None):
        self.totals, self.crawls, self.now = totals, crawls, now
        self.stored, self.last_prune = stored, last_prune

    def collect(self):
        crawls = CounterMetricFamily(
            "sofeed_crawls", "Crawls by feed and outcome", labels=["source", "outcome"]
        )
        questions = CounterMetricFamily(
            "sofeed_questions", "Questions seen by crawls, by feed and kind", labels=["source", "kind"]
        )
        since = GaugeMetricFamily(
            "sofeed_seconds_since_last_good_crawl",
            "Seconds since a crawl of the feed went well",
            labels=["source"],
        )
        for doc in self.totals:
            for outcome, count in sorted((doc.get("outcomes") or {}).items()):
                crawls.add_metric([doc["_id"], outcome], count)
            for kind in ("new", "duplicate", "invalid"):
                questions.add_metric([doc["_id"], kind], doc.get(kind) or 0)
            if doc.get("last_good") is not None:
                since.add_metric([doc["_id"]], max(0.0, self.now - doc["last_good"].timestamp()))
        yield crawls
        yield questions
        yield since
        quota = GaugeMetricFamily(
            "sofeed_api_quota_remaining",
            "API requests left, as the latest crawl of the source read it",
            labels=["source"],
        )
        for doc in self.crawls:
            if doc.get("quota_remaining") is not None:
                quota.add_metric([doc["_id"]], doc["quota_remaining"])
        yield quota
        if self.stored is not None:
            yield GaugeMetricFamily("sofeed_questions_stored", "Questions in the database", self.stored)
        if self.last_prune is not None:
            yield GaugeMetricFamily(
                "sofeed_seconds_since_last_prune",
                "Seconds since retention (SOFEED_KEEP_DAYS) last pruned the questions",
                max(0.0, self.now - self.last_prune.timestamp()),
            )


def _process_registry():
    """The registry for this scrape: every worker's files in multiprocess mode, else this process's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def init_app(app):
    app.register_blueprint(bp)

    @app.before_request
    def start_timer():
        if request.endpoint == "questions.update":
            request.environ["sofeed.started"] = time.perf_counter()

    @app.after_request
    def count(response):
        if request.endpoint == "questions.update" and "sofeed.started" in request.environ:
            UPDATE_SECONDS.observe(time.perf_counter() - request.environ["sofeed.started"])
            UPDATE_REQUESTS.labels(str(response.status_code)).inc()
        elif request.endpoint == "stream.events" and response.status_code == 200:
            OPEN_STREAMS.inc()
            response.call_on_close(OPEN_STREAMS.dec)
        return response


@bp.get("/metrics")
def metrics():
    """Everything in one scrape; the database figures are left out while it does not answer."""
    text = generate_latest(_process_registry())
    store = get_store()
    try:
        with store.within(int(current_app.config["MONGO_TIMEOUT_MS"]) / 1000):
            collector = StoreCollector(
                store.crawl_totals_by_feed(),
                store.crawl_statuses(),
                time.time(),
                stored=store.count_questions(),
                last_prune=store.last_prune(),
            )
    except PyMongoError:
        collector = None
    if collector is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        text += generate_latest(registry)
    return Response(text, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
