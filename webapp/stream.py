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

A stream waits on the process's Fanout (webapp/fanout.py), which wakes it
only when there is something new, and writes bytes built once for every
stream at its cursor. Under gunicorn's gevent worker a stream costs a
greenlet and a socket; under gthread it holds a thread. Either way each
process keeps at most STREAMS_PER_PROCESS (gunicorn_conf.py sets it for the
worker class) and answers 503 beyond that; the page then polls /update. A
stream ends after STREAM_SECONDS (the browser reconnects at once and resumes
from its cursor), which spreads pages over the workers again, and as soon as
the worker is told to stop (stop_streams(app), from webapp/worker.py).
"""

import random
import threading
import time

from flask import Blueprint, Response, current_app, request

from webapp.db import get_fanout
from webapp.errors import error_response
from webapp.fanout import AVAILABLE
from webapp.filters import FilterError, QuestionFilter
from webapp.questions import parse_timestamp

bp = Blueprint("stream", __name__)

EXTENSION = "sofeed.streams"
KEEPALIVE_SECONDS = 15.0  # a comment line this often: proxies keep the stream, dead clients are noticed
KEEPALIVE = b": keepalive\n\n"
RECONNECT_MS = 1000  # how soon the browser reconnects after a stream ends


class Streams:
    """An app's live streams in this process: how many more may open, and whether the process is stopping."""

    def __init__(self, limit):
        self.slots = threading.BoundedSemaphore(limit) if limit > 0 else None
        self.stopping = False
        self.fanout = None  # the Fanout of the process's cache, once a stream has opened


def init_app(app):
    app.extensions[EXTENSION] = Streams(int(app.config["STREAMS_PER_PROCESS"]))
    app.register_blueprint(bp)


def stop_streams(app):
    """End the app's streams now, and send new ones away to reconnect elsewhere: the worker is stopping."""
    streams = getattr(app, "extensions", {}).get(EXTENSION)
    if streams is not None:
        streams.stopping = True
        if streams.fanout is not None:
            streams.fanout.stop()


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
    streams = current_app.extensions[EXTENSION]
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if streams.stopping:
        # An empty stream: the browser reconnects in RECONNECT_MS, to a process that is not stopping.
        return Response([_RETRY], mimetype="text/event-stream", headers=headers)
    if streams.slots is None or not streams.slots.acquire(blocking=False):
        return error_response(503, "too many live streams in this process: poll /update instead")
    streams.fanout = fanout = get_fanout()
    if streams.stopping:  # told to stop before the fanout was known: stop it too
        fanout.stop()
    lasting = float(current_app.config["STREAM_SECONDS"])
    stream = events_after(fanout, cursor, wanted, lasting)
    response = Response(stream, mimetype="text/event-stream", headers=headers)
    # The server closes the response when the stream ends or the client goes,
    # even one that left before the first event.
    response.call_on_close(streams.slots.release)
    return response


_RETRY = f"retry: {RECONNECT_MS}\n\n".encode()


def events_after(fanout, cursor, wanted, lasting, phase=None, clock=time.monotonic):
    """The event stream: what the fanout's editions hand out after cursor and wanted lets through.

    It sleeps until the fanout publishes a new edition, a keepalive is due,
    or the stream has lasted `lasting` seconds. Its keepalives keep a phase
    of their own, `phase` (0 to 1, random by default) of KEEPALIVE_SECONDS
    after it opens and then every KEEPALIVE_SECONDS whatever else it sends:
    every stream is handed a new edition at the same moment, and keepalives
    counted from it would all fall due together, a second burst of writes
    to every stream where one was needed.
    """
    yield _RETRY
    opened = clock()
    ends = opened + lasting
    keepalive_due = opened + (random.random() if phase is None else phase) * KEEPALIVE_SECONDS
    edition = fanout.open()
    try:
        told_unavailable = False
        while not fanout.stopping:
            now = clock()
            if now >= ends:
                break
            if edition.snapshot is None and not told_unavailable:
                told_unavailable = True
                yield edition.unavailable_event()
            elif edition.snapshot is not None:
                if told_unavailable:
                    told_unavailable = False
                    yield AVAILABLE
                data, cursor = edition.questions_event(cursor, wanted)
                if data is not None:
                    yield data
            if now >= keepalive_due:
                yield KEEPALIVE
                while keepalive_due <= now:  # a worker that stalled skips the keepalives it missed
                    keepalive_due += KEEPALIVE_SECONDS
            edition.ended.wait(max(0.0, min(ends, keepalive_due) - now))
            edition = fanout.current()
    finally:
        fanout.close()
