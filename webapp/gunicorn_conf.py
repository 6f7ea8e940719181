"""gunicorn settings for the live page in production.

    gunicorn -c webapp/gunicorn_conf.py 'webapp:create_app()'

Listens on ${SOFEED_HOST:-127.0.0.1}:${SOFEED_PORT:-8000}. Each request is
cheap (/update is answered from memory), and most of a page's time is spent
idle between polls, so threads rather than processes carry the load: 200
pages polling every 5 s are 40 requests a second, a few milliseconds each.
Two processes use both cores of a small machine; each keeps its own cache
of recent questions, so the database sees two readers, however many pages.
"""

import os
import shutil
import signal
import tempfile

from gunicorn import util

wsgi_app = "webapp:create_app()"
bind = [f"{os.environ.get('SOFEED_HOST', '127.0.0.1')}:{os.environ.get('SOFEED_PORT', '8000')}"]

# Threads in each worker: keep-alive connections idle between polls wait in
# the worker's poller, not in a thread, so 16 threads serve hundreds of pages.
worker_class = "gthread"
workers = int(os.environ.get("SOFEED_WORKERS", "2"))
threads = int(os.environ.get("SOFEED_THREADS", "16"))
worker_connections = 1000

# A request never takes long: /update answers 503 within 2 s when the
# database is down. A worker silent for 30 s is stuck, and is replaced.
# (The /events streams are long, but they end when the worker stops: below.)
timeout = 30
graceful_timeout = 10
# Longer than the page's poll interval, so a polling page keeps its connection.
keepalive = 10

# Access logs off by default (a line per poll per page); errors to stderr.
accesslog = os.environ.get("SOFEED_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("SOFEED_LOG_LEVEL", "info")

# No runtime control socket: a second instance on this machine (the tests,
# another checkout) would fight over its default path in $HOME.
control_socket_disable = True


def post_worker_init(worker):
    """End the worker's /events streams when it is told to stop.

    gthread waits for running requests before it exits, and a stream runs
    for minutes: without this, stopping gunicorn would wait out
    graceful_timeout and then kill the worker.
    """
    from webapp.stream import stop_streams

    stop_worker = worker.handle_exit

    def handle_exit(signum, frame):
        stop_streams(worker.wsgi)
        stop_worker(signum, frame)

    signal.signal(signal.SIGTERM, handle_exit)


def worker_int(worker):
    """SIGINT or SIGQUIT (Ctrl-C): the worker exits at once, so its streams end too."""
    from webapp.stream import stop_streams

    stop_streams(worker.wsgi)


def _write_json_error(sock, status, reason, message):
    from webapp.errors import raw_error_response

    util.write_nonblock(sock, raw_error_response(status, reason, message))


# gunicorn answers a request it refuses itself (414 for a request line over
# limit_request_line, 400 for bytes that are not HTTP, 431 for huge headers)
# with an HTML page; the app promises JSON for every error, so these are too.
# gunicorn has no setting for this page: its one writer is replaced.
util.write_error = _write_json_error


# /metrics sums every worker's counters from files in one directory per run
# (prometheus_client's multiprocess mode): set in the master as it starts,
# before any worker loads the app, and not at import, so that reading this file
# changes nothing. A systemd unit gives a fresh one instead.
_own_metrics_dir = []


def on_starting(server):
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sofeed-metrics-")
        _own_metrics_dir.append(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker):
    """A dead worker's open streams no longer count; its counters are kept."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for folder in _own_metrics_dir:
        shutil.rmtree(folder, ignore_errors=True)


# Only the local proxy (deploy/nginx/sofeed.conf) may say which scheme the client used.
forwarded_allow_ips = os.environ.get("SOFEED_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# The client's address as the proxy passed it, first in each access log line.
access_log_format = '%({x-forwarded-for}i)s %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(L)s'
