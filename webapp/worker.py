"""gunicorn's gevent and gthread workers, with what sofeed needs of them.

- A request gunicorn refuses itself (414 for a request line over its limit,
  400 for bytes that are not HTTP, 431 for huge headers) is answered in JSON,
  as every error of the app is: gunicorn writes such answers in its
  handle_error, a worker method, so these workers override it.
- A worker told to stop (SIGTERM) ends its /events streams at once, so that
  stopping does not wait out graceful_timeout for streams that last minutes.
- The gevent worker reads a request for at most `keepalive` seconds (gunicorn
  bounds each read by timeout_ctx()), so a client that trickles its headers
  costs a greenlet and a socket for that long, never a thread. Once it is
  stopping, it reads only requests already sent, and closes its idle
  keep-alive connections instead of waiting out their keepalive.

webapp/gunicorn_conf.py chooses one of them with SOFEED_WORKER_CLASS.
"""

import contextlib
import sys
import threading

import gevent
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker


class _ErrorPage:
    """A client's socket that keeps what gunicorn writes to it instead of sending it."""

    def __init__(self, sock):
        self._sock = sock
        self.written = b""

    def sendall(self, data):
        self.written += data

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _JsonErrors:
    """handle_error answers in JSON: gunicorn logs and chooses the status, and its page is replaced."""

    def handle_error(self, req, client, addr, exc):
        from webapp.errors import raw_error_response

        page = _ErrorPage(client)
        super().handle_error(req, page, addr, exc)
        status_line = page.written.split(b"\r\n", 1)[0].decode("latin-1")
        _version, status, reason = [*status_line.split(" ", 2), "", ""][:3]
        if not status.isdigit():
            return  # gunicorn wrote nothing (it could not): neither do we
        # The client's own error is described; a 500 says no more than its reason.
        message = str(exc) if int(status) < 500 else ""
        try:
            util.write_nonblock(client, raw_error_response(int(status), reason, message))
        except Exception:
            self.log.debug("Failed to send error message.")


def _end_streams(worker):
    # Maybe in a signal handler (gthread's): a worker still loading the app has no stream
    # to end, and must not import anything there (the import under way holds its lock).
    stream = sys.modules.get("webapp.stream")
    if stream is not None and getattr(worker, "wsgi", None) is not None:
        stream.stop_streams(worker.wsgi)


class GeventWorker(_JsonErrors, _GeventWorker):
    """gunicorn's gevent worker: a connection costs a greenlet, and a stop does not wait on idle ones."""

    def init_process(self):
        self._reading = {}  # greenlet -> the Timeout bounding the request it reads
        super().init_process()

    @contextlib.contextmanager
    def timeout_ctx(self):
        """Bound reading one request: keepalive seconds; once stopping, only what was already sent."""
        timeout = gevent.Timeout(self.cfg.keepalive if self.alive else 0, False)
        reader = gevent.getcurrent()
        self._reading[reader] = timeout
        try:
            with timeout:
                yield
        finally:
            self._reading.pop(reader, None)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        # Out of the signal handler, as gunicorn's own handle_quit does.
        gevent.spawn(self._wind_down)

    def _wind_down(self):
        """End the streams, and time out the reads of idle connections now."""
        _end_streams(self)
        for reader, timeout in list(self._reading.items()):
            gevent.kill(reader, timeout)


class ThreadWorker(_JsonErrors, _ThreadWorker):
    """gunicorn's gthread worker, the benchmarks' anchor: each stream holds one of its threads."""

    def handle_exit(self, sig, frame):
        _end_streams_outside(self)
        super().handle_exit(sig, frame)

    def handle_quit(self, sig, frame):
        # SIGINT or SIGQUIT: the process exits at once, and joins its threads first.
        _end_streams_outside(self)
        super().handle_quit(sig, frame)


def _end_streams_outside(worker):
    """End the streams from a thread of its own, not in the signal handler.

    Ending them takes the fanout's lock, which the code the signal
    interrupted may hold (a second SIGTERM during the first did): the
    handler would wait on it for ever.
    """
    threading.Thread(target=_end_streams, args=(worker,), name="sofeed-stop", daemon=True).start()
