"""The page and its feed: GET / renders the newest questions, GET /update the newer ones.

Both read the process's RecentQuestions, never the database, so they cost
no query however many pages poll. See webapp/recent.py for why a question
is handed out only once it is VISIBILITY_LAG old.
"""

import math
import re
import time
from datetime import datetime
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, render_template, request, url_for

from webapp.db import get_recent
from webapp.errors import error_response
from webapp.filters import FilterError, QuestionFilter
from webapp.health import ago, status_of
from webapp.recent import UPDATE_LIMIT, StoreUnavailable

bp = Blueprint("questions", __name__)

PAGE_SIZE = 50  # questions rendered on the server
TIMESTAMP_MAX_LENGTH = 32
# Epoch seconds as a browser prints a number: 1700000000, 1700000000.123, 1.7e9.
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_WEB_SCHEMES = ("http://", "https://")


def parse_timestamp(values):
    """The cursor from the ?timestamp= values: epoch seconds, 0 when missing or empty.

    Raises ValueError, with a message that says what to send instead.
    """
    if len(values) > 1:
        raise ValueError("give timestamp once: it is a single number of epoch seconds, not a list")
    text = values[0] if values else ""
    if text == "":
        return 0.0
    if len(text) > TIMESTAMP_MAX_LENGTH:
        raise ValueError(f"timestamp is longer than {TIMESTAMP_MAX_LENGTH} characters: send epoch seconds")
    if not _NUMBER.fullmatch(text):
        raise ValueError("timestamp must be epoch seconds, like 1700000000.123: the largest fetched you have")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("timestamp is too large to be epoch seconds")
    if value < 0:
        raise ValueError("timestamp must not be negative: send 0 (or nothing) for the newest questions")
    return value


@bp.get("/update")
def update():
    """Hand out the questions fetched after ?timestamp= that pass the filter, newest first."""
    try:
        timestamp = parse_timestamp(request.args.getlist("timestamp"))
        wanted = QuestionFilter.from_args(request.args)
    except ValueError as error:  # FilterError is one
        return error_response(400, str(error))
    recent = get_recent()
    try:
        snapshot = recent.snapshot()
    except StoreUnavailable as error:
        return error_response(503, str(error))
    response = jsonify(wanted.questions_after(snapshot, timestamp, UPDATE_LIMIT))
    response.headers["Cache-Control"] = "no-store"
    # Whole seconds since the snapshot was read: above 0 while a refresh is late or failing.
    response.headers["Age"] = str(int(recent.age(snapshot)))
    return response


@bp.get("/")
def index():
    """Render the newest matching questions; the page's script then listens for newer ones."""
    try:
        wanted, bad_filter = QuestionFilter.from_args(request.args), None
    except FilterError as error:
        wanted, bad_filter = QuestionFilter(), str(error)
    try:
        snapshot, unavailable = get_recent().snapshot(), None
    except StoreUnavailable as error:
        snapshot, unavailable = None, str(error)
    questions = wanted.questions_after(snapshot, 0, PAGE_SIZE) if snapshot and not bad_filter else []
    now = time.time()
    html = render_template(
        "index.html",
        questions=questions,
        filter=wanted,
        bad_filter=bad_filter,
        sites=sites_of(snapshot),
        # The page's first cursor: the newest question it shows (0 for none: the first poll gets them all).
        cursor=questions[0]["fetched"] if questions else 0,
        poll_seconds=float(current_app.config["POLL_SECONDS"]),
        now=round(now, 3),
        status=status_of(snapshot, now, get_recent().age(snapshot)) if snapshot else None,
        unavailable=unavailable,
    )
    status = 400 if bad_filter else 503 if unavailable else 200
    return html, status, {"Cache-Control": "no-store"}


def sites_of(snapshot):
    """The sites (host names) the snapshot's questions come from: a page names them only if several."""
    return {site_of(question) for question in snapshot.questions} - {""} if snapshot else set()


@bp.app_template_filter("site")
def site_of(question):
    """The host a question's link points to, like stackoverflow.com; "" if it has none."""
    link = web_link(question.get("link"))
    return urlsplit(link).hostname or "" if link else ""


@bp.app_template_filter("filter_url")
def filter_url(wanted):
    """The page's own URL for a filter."""
    query = wanted.query_string()
    return url_for("questions.index") + ("?" + query if query else "")


@bp.app_template_filter("web_link")
def web_link(url):
    """url if it is an http(s) link, else None: a javascript: link must never be clickable."""
    return url if isinstance(url, str) and url.lower().startswith(_WEB_SCHEMES) else None


@bp.app_template_filter("ago")
def ago_filter(moment, now):
    return ago(moment, now)


@bp.app_template_filter("asked")
def asked(question, now):
    """How long ago a question was asked (published), else first seen."""
    published = question.get("published")
    return ago(datetime.fromisoformat(published).timestamp() if published else question["fetched"], now)
