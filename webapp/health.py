"""How the mirror is doing: GET /status for the page, GET /healthz for monitoring.

The page's status line (question count, last crawl, next crawl) comes from
/status, polled alongside /update rather than folded into it, so /update
stays the plain JSON array of its contract. /status is served from the
process's RecentQuestions snapshot, like /update, and costs no query but,
every 30 s per process, a note that a page is open (for API pacing).
/healthz is for a monitor: it pings the database and reads the crawl status
and the scheduler's lease on every call, and answers 503 when the database
is unreachable.
"""

import time

from flask import Blueprint, current_app, jsonify
from pymongo.errors import PyMongoError

from webapp.db import get_recent, get_store
from webapp.documents import plain, short_reason
from webapp.errors import error_response
from webapp.recent import StoreUnavailable

bp = Blueprint("health", __name__)

# What the scheduler records about a crawl, and about itself in its lease.
CRAWL_FIELDS = (
    *("started", "finished", "outcome", "ok", "http_status", "new", "duplicate", "invalid", "error"),
    *("next_run", "host", "pid", "quota_remaining", "quota_max"),
)
LEASE_FIELDS = ("holder", "expires", "renewed", "host", "pid")
# Every open page polls /status, so a process notes "a page is open" at most this
# often: API sources ask more often while someone watches (sofeed/quota.py).
WATCHED_NOTE_SECONDS = 30


def crawl_summary(doc, now):
    """The latest crawl of a feed, with its age in seconds (None if it has no time)."""
    crawl = {"feed": doc.get("_id"), **{name: plain(doc.get(name)) for name in CRAWL_FIELDS}}
    when = crawl["finished"] if isinstance(crawl["finished"], int | float) else crawl["started"]
    crawl["age_seconds"] = round(now - when, 3) if isinstance(when, int | float) else None
    return crawl


def api_quotas(crawls):
    """Each API source's requests left today, as its latest crawl read them."""
    return [
        {"feed": doc.get("_id"), "quota_remaining": doc["quota_remaining"], "quota_max": doc.get("quota_max")}
        for doc in crawls
        if isinstance(doc.get("quota_remaining"), int)
    ]


def scheduler_summary(doc, now):
    """The scheduler's lease; active while it has not expired."""
    if not doc:
        return None
    lease = {name: plain(doc.get(name)) for name in LEASE_FIELDS}
    lease["active"] = isinstance(lease["expires"], int | float) and lease["expires"] > now
    return lease


def status_of(snapshot, now, age):
    """The /status document for a snapshot that is age seconds old."""
    # The latest crawl says when the next one is due: older records may be of
    # feeds no longer crawled, with a next_run long past.
    last = crawl_summary(snapshot.crawls[0], now) if snapshot.crawls else None
    return {
        "now": round(now, 3),
        "as_of": round(snapshot.status_taken, 3),
        # Above REFRESH_SECONDS while a refresh is late or failing (webapp/recent.py, STALE_SECONDS).
        "snapshot_age_seconds": round(age, 3),
        "questions": snapshot.count,
        "last_crawl": last,
        "next_crawl": last["next_run"] if last else None,
        "scheduler": scheduler_summary(snapshot.scheduler, now),
        "api_quota": api_quotas(snapshot.crawls),
    }


def ago(moment, now):
    """A past epoch time as "12 s ago", "3 min ago": what the page's script writes too."""
    if not isinstance(moment, int | float):
        return ""
    seconds = max(0, now - moment)
    if seconds < 10:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


@bp.get("/status")
def status():
    """Report the question count, the last and next crawl, and the scheduler, from memory."""
    recent = get_recent()
    try:
        snapshot = recent.snapshot()
    except StoreUnavailable as error:
        return error_response(503, str(error))
    now = time.time()
    note_watched(now)
    response = jsonify(status_of(snapshot, now, recent.age(snapshot)))
    response.headers["Cache-Control"] = "no-store"
    return response


def note_watched(now):
    """Tell the store a page is open, once per WATCHED_NOTE_SECONDS per process; never fail for it."""
    noted = current_app.extensions.setdefault("sofeed_watched", {"at": float("-inf")})
    if now - noted["at"] < WATCHED_NOTE_SECONDS:
        return
    noted["at"] = now
    store = get_store()
    try:
        with store.within(int(current_app.config["MONGO_TIMEOUT_MS"]) / 1000):
            store.note_page_open(now)
    except PyMongoError:
        pass  # the page's own status does not depend on it


@bp.get("/healthz")
def healthz():
    """Ping the database and report the age of the last crawl and the scheduler's state."""
    started = time.monotonic()
    try:
        store = get_store()
        with store.within(int(current_app.config["MONGO_TIMEOUT_MS"]) / 1000):
            store.ping()
            ping_ms = round((time.monotonic() - started) * 1000, 1)
            crawls, lease = store.crawl_statuses(), store.lease("scheduler")
    except PyMongoError as error:
        reason = short_reason(error)
        return error_response(503, f"the database is unavailable: {reason}", database={"ok": False})
    now = time.time()
    body = {
        "database": {"ok": True, "ping_ms": ping_ms},
        "last_crawl": crawl_summary(crawls[0], now) if crawls else None,
        "scheduler": scheduler_summary(lease, now),
        "api_quota": api_quotas(crawls),
        "now": round(now, 3),
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response
