"""A local HTTP server that plays Stack Overflow for the tests.

Each path answers with a Reply that a test sets: a feed, an error status, a
slow, trickled or cut-off body, robots.txt. Feeds honour If-None-Match like a
real server. Every request is recorded, so tests can check what the crawler sent.
"""

import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
                    self._answer(reply)
                finally:
                    seen.ended = time.monotonic()

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
