"""GET /events: new questions pushed to the page as Server-Sent Events.

The page opens one EventSource and gets each question about as soon as the
process's RecentQuestions hands it out (see webapp/recent.py), instead of up
to a poll interval later. It is the same data as /update, by the same
cursor: `?timestamp=` on the first connection, then the `id:` of the last
event, which the browser sends back as Last-Event-ID when it reconnects.

Events:
    questions    data: the JSON list /update would answer, newest first
    unavailable  data: {"error": ...}  the database stopped answering
    available    data: {}             it answers again

A stream holds one of gunicorn's threads, so each process serves at most
STREAMS_PER_PROCESS of them and answers 503 beyond that; the page then polls
/update, which costs a thread only for a few milliseconds. A stream also ends
after STREAM_SECONDS (the browser reconnects at once and resumes from its
cursor), which spreads pages over the workers again, and as soon as the
worker is told to stop (stop_streams(app), from gunicorn's signal handlers).
"""

import json
import threading
import time

from flask import Blueprint, Response, current_app, request

from webapp.db import get_recent
from webapp.errors import error_response
from webapp.filters import FilterError, QuestionFilter
from webapp.questions import parse_timestamp
from webapp.recent import StoreUnavailable

bp = Blueprint("stream", __name__)

KEEPALIVE_SECONDS = 15.0  # a comment line this often: proxies keep the stream, dead clients are noticed
RECONNECT_MS = 1000  # how soon the browser reconnects after a stream ends
_SHORTEST_WAIT = 0.02


class Streams:
    """An app's live streams in this process: how many may run, and a switch that ends them."""

    def __init__(self, limit):
        self.slots = threading.BoundedSemaphore(limit)
        self.stopping = threading.Event()


def init_app(app):
    app.extensions["sofeed.streams"] = Streams(int(app.config["STREAMS_PER_PROCESS"]))
    app.register_blueprint(bp)


def stop_streams(app):
    """End the app's streams within a refresh interval: the worker is stopping."""
    streams = getattr(app, "extensions", {}).get("sofeed.streams")
    if streams is not None:
        streams.stopping.set()


def event(name, data, event_id=None):
    """One Server-Sent Event, as bytes."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {name}", "data: " + json.dumps(data, separators=(",", ":"))]
    return ("\n".join(lines) + "\n\n").encode()


@bp.get("/events")
def events():
    """Push the questions fetched after the cursor, and then each new one, until the stream ends."""
    values = request.args.getlist("timestamp")
    resumed = request.headers.get("Last-Event-ID")
    try:
        cursor = parse_timestamp([resumed] if resumed else values)
    except ValueError as error:
        return error_response(400, str(error))
    try:
        wanted = QuestionFilter.from_args(request.args)
    except FilterError as error:
        return error_response(400, str(error))
    streams = current_app.extensions["sofeed.streams"]
    if streams.stopping.is_set() or not streams.slots.acquire(blocking=False):
        return error_response(503, "too many live streams in this process: poll /update instead")
    stream = _questions_after(
        get_recent(),
        cursor,
        streams.stopping,
        wanted,
        lasting=float(current_app.config["STREAM_SECONDS"]),
        refresh_seconds=float(current_app.config["REFRESH_SECONDS"]),
    )
    response = Response(
        stream,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    # The server closes the response when the stream ends or the client goes,
    # even one that left before the first event.
    response.call_on_close(streams.slots.release)
    return response


def _questions_after(recent, cursor, stopping, wanted, lasting, refresh_seconds):
    """The event stream: what the cache hands out after cursor and wanted lets through, for lasting seconds.

    The cursor moves past the questions the filter drops too, so a resumed
    stream does not look at them again.
    """
    yield f"retry: {RECONNECT_MS}\n\n".encode()
    ends = time.monotonic() + lasting
    last_sent = time.monotonic()
    unavailable = False
    while not stopping.is_set() and time.monotonic() < ends:
        try:
            snapshot, failure = recent.snapshot(), None
        except StoreUnavailable as error:
            snapshot, failure = None, str(error)
        out = []
        if failure and not unavailable:
            out.append(event("unavailable", {"error": failure}))
        elif snapshot and unavailable:
            out.append(event("available", {}))
        unavailable = failure is not None
        questions = snapshot.questions_after(cursor) if snapshot else []
        if questions:
            cursor = questions[0]["fetched"]
            questions = [question for question in questions if wanted.matches(question)]
        if questions:
            out.append(event("questions", questions, event_id=repr(cursor)))
        if not out and time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            out.append(b": keepalive\n\n")
        if out:
            yield b"".join(out)
            last_sent = time.monotonic()
        # Wake when the cache is next due for a refresh: its horizon has moved by then.
        due = snapshot.taken + refresh_seconds - time.time() if snapshot else refresh_seconds
        stopping.wait(max(_SHORTEST_WAIT, min(refresh_seconds, due)))
