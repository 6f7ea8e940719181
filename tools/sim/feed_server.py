"""A local HTTP server that plays Stack Overflow, for the tests, the benchmarks and `make demo`.

Each path answers with a Reply that a test sets: a feed, an error status, a
slow, trickled or cut-off body, robots.txt; or with a GrowingFeed, whose
newest 30 questions change as questions are published. Feeds honour
If-None-Match like a real server. Every request is recorded, so tests can
check what the crawler sent. As a command, for `make demo`:

    python tools/sim/feed_server.py --port 8765 --every 5

serves a growing feed at /feeds, prints its URL first on standard output,
and publishes a made-up question every --every seconds. POST /publish with a
JSON object (title, link, author, author_uri, tags, summary; all optional)
publishes one at once and answers 201 with its question_id, entry_id and link.
"""

import argparse
import hashlib
import json
import random
import select
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.sim.atom import Entry, realistic_entry, render_feed, slug


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/atom+xml; charset=utf-8"
    headers: dict = field(default_factory=dict)
    etag: str | None = None  # answer 304 to a matching If-None-Match
    delay: float = 0.0  # seconds to wait before answering
    trickle: float = 0.0  # seconds between chunks of the body, sent TRICKLE_CHUNK bytes at a time
    length: int | None = None  # the Content-Length to claim, if not the body's (a lying server)


# A trickled body goes out this many bytes at a time.
TRICKLE_CHUNK = 1024


FEED_SIZE = 30
PUBLISH_FIELDS = ("title", "link", "author", "author_uri", "tags", "summary")


class GrowingFeed:
    """The newest FEED_SIZE questions, as Stack Overflow's /feeds would list them, growing on publish()."""

    def __init__(self, seed=None, now=lambda: datetime.now(UTC)):
        self._random = random.Random(seed)
        self._now = now
        self._lock = threading.Lock()
        self._entries = deque(maxlen=FEED_SIZE)  # newest first
        self._next_id = 79_100_000 + self._random.randrange(0, 90_000, 100)
        self._body, self._etag = b"", ""
        start = self._now() - timedelta(minutes=45)
        for n in range(FEED_SIZE):
            self._add({}, start + timedelta(seconds=90 * n))

    def publish(self, title=None, link=None, author=None, author_uri=None, tags=None, summary=None):
        """Put a new question at the top of the feed; unset fields are made up. Returns its Entry."""
        for name, value in (("title", title), ("link", link), ("author", author), ("summary", summary)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, not {type(value).__name__}")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise TypeError("tags must be a list of strings")
        given = {"title": title, "link": link, "author": author, "tags": tags, "summary_html": summary}
        fields = {name: value for name, value in given.items() if value is not None}
        if author_uri is not None or author is not None:
            fields["author_uri"] = author_uri
        return self._add(fields, self._now())

    def feed(self):
        """(body, etag) of the current feed."""
        with self._lock:
            return self._body, self._etag

    def _add(self, fields, published):
        with self._lock:
            question_id = self._next_id
            self._next_id += self._random.randint(1, 40)
            made = realistic_entry(self._random, question_id, published, paragraphs=1)
            link = fields.pop("link", None) or f"https://stackoverflow.com/questions/{question_id}/"
            if link.endswith("/"):
                link += slug(fields.get("title", made.title)) or "question"
            entry = Entry(
                question_id=question_id,
                **{
                    "title": made.title,
                    "tags": made.tags,
                    "author": made.author,
                    "author_uri": made.author_uri,
                    "rank": made.rank,
                    "published": made.published,
                    "updated": made.updated,
                    "summary_html": made.summary_html,
                    **fields,
                    "link": link,
                },
            )
            self._entries.appendleft(entry)
            self._body = render_feed(self._entries, updated=entry.published)
            self._etag = '"' + hashlib.sha1(self._body).hexdigest()[:16] + '"'
        return entry


@dataclass
class SeenRequest:
    path: str
    headers: dict
    at: float  # time.monotonic()
    ended: float | None = None  # when it was answered, or the client hung up
    wall: float = field(default_factory=time.time)  # time.time(), to compare with other processes' logs


def client_hung_up(connection, timeout):
    """Wait up to timeout for the client to close its end; True if it did."""
    readable, _, _ = select.select([connection], [], [], timeout)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops the connections of a
    # scheduler crawling many feeds at once, and a dropped SYN is sent again
    # only a second later: longer than a crawl's deadline in the tests.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a crawler that hung up is no error
            super().handle_error(request, client_address)


class FeedServer:
    def __init__(self, port=0):
        self.replies = {}
        self.requests = []
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path):
        host, port = self._httpd.server_address
        return f"http://{host}:{port}{path}"

    def serve(self, path, reply):
        """Answer requests for path with reply from now on."""
        with self._lock:
            self.replies[path] = reply
        return self.url(path)

    def serve_growing(self, path, growing):
        """Answer path with growing's current feed, and POST /publish with a new question in it."""
        with self._lock:
            self.replies[path] = growing
            self.replies["/publish"] = growing
        return self.url(path)

    def serve_feed(self, path, body, **reply_fields):
        return self.serve(path, Reply(body=body, **reply_fields))

    def requests_for(self, path):
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def most_at_once(self, path):
        """The largest number of requests for path that were open at the same time."""
        events = []
        for request in self.requests_for(path):
            events += [(request.at, 1), (request.ended or float("inf"), -1)]
        open_now = most = 0
        for _, change in sorted(events, key=lambda event: (event[0], event[1])):
            open_now += change
            most = max(most, open_now)
        return most

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                seen = SeenRequest(self.path, dict(self.headers), time.monotonic())
                with server._lock:
                    server.requests.append(seen)
                    reply = server.replies.get(
                        self.path, Reply(status=404, body=b"not found", content_type="text/plain")
                    )
                try:
                    if isinstance(reply, GrowingFeed):
                        body, etag = reply.feed()
                        reply = Reply(body=body, etag=etag)
                    self._answer(reply)
                finally:
                    seen.ended = time.monotonic()

            def do_POST(self):
                with server._lock:
                    growing = server.replies.get(self.path)
                if self.path != "/publish" or not isinstance(growing, GrowingFeed):
                    self._answer(Reply(status=404, body=b"not found", content_type="text/plain"))
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    fields = json.loads(self.rfile.read(length) or b"{}")
                    entry = growing.publish(**{name: fields.get(name) for name in PUBLISH_FIELDS})
                except (ValueError, TypeError, AttributeError) as error:
                    answer, status = {"error": str(error)}, 400
                else:
                    answer = {
                        "question_id": entry.question_id,
                        "entry_id": entry.entry_id,
                        "link": entry.link,
                    }
                    status = 201
                self._answer(
                    Reply(status=status, body=json.dumps(answer).encode(), content_type="application/json")
                )

            def _answer(self, reply):
                if reply.delay and client_hung_up(self.connection, reply.delay):
                    return
                status, body = reply.status, reply.body
                if reply.etag and self.headers.get("If-None-Match") == reply.etag:
                    status, body = 304, b""
                try:
                    self.send_response(status)
                    if status != 304:
                        self.send_header("Content-Type", reply.content_type)
                    if reply.etag:
                        self.send_header("ETag", reply.etag)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    length = len(body) if reply.length is None or status == 304 else reply.length
                    self.send_header("Content-Length", str(length))
                    self.end_headers()
                    if reply.trickle and status != 304:
                        self._trickle(body, reply.trickle)
                    else:
                        self.wfile.write(body)
                    if length != len(body):
                        self.close_connection = True  # the rest never comes
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as a timing-out crawler does

            def _trickle(self, body, pause):
                for start in range(0, len(body), TRICKLE_CHUNK):
                    self.wfile.write(body[start : start + TRICKLE_CHUNK])
                    self.wfile.flush()
                    if client_hung_up(self.connection, pause):
                        return

            def log_message(self, format, *args):
                pass

        return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description="A simulated Stack Overflow question feed on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (default %(default)s)")
    parser.add_argument(
        "--every", type=float, default=5.0, help="seconds between new questions, 0 for never (default 5)"
    )
    parser.add_argument("--seed", type=int, default=None, help="make the questions reproducible")
    args = parser.parse_args(argv)
    growing = GrowingFeed(seed=args.seed)
    server = FeedServer(args.port)
    server.serve("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
    print(server.serve_growing("/feeds", growing), flush=True)
    server.start()
    stop = threading.Event()
    try:
        while not stop.wait(args.every if args.every > 0 else 3600):
            if args.every > 0:
                growing.publish()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
