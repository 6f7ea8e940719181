"""gunicorn settings for the live page in production.

    gunicorn -c webapp/gunicorn_conf.py 'webapp:create_app()'

Listens on ${SOFEED_HOST:-127.0.0.1}:${SOFEED_PORT:-8000}. Each request is
cheap (/update is answered from memory), and a page spends most of its life
holding an /events stream open or idle between polls. So the default worker
is gevent's: a connection, a stream included, costs a greenlet and a socket,
not a thread, and a client that trickles its request costs only that much
for `keepalive` seconds (webapp/worker.py). SOFEED_WORKER_CLASS=gthread runs
the threaded worker instead, the benchmarks' anchor: each stream holds a
thread there, so it keeps few. Two processes use both cores of a small
machine; each keeps its own cache of recent questions, so the database sees
two readers, however many pages. The README's web section has the figures.
"""

import gc
import os
import resource
import shutil
import tempfile

wsgi_app = "webapp:create_app()"
bind = [f"{os.environ.get('SOFEED_HOST', '127.0.0.1')}:{os.environ.get('SOFEED_PORT', '8000')}"]
# Each worker listens on a socket of its own (SO_REUSEPORT), and the kernel
# spreads new connections over them evenly. (Not for a socket handed over as
# fd://N, as the tests do: the workers then share it.)
reuse_port = True

WORKER_CLASSES = {"gevent": "webapp.worker.GeventWorker", "gthread": "webapp.worker.ThreadWorker"}
_worker = os.environ.get("SOFEED_WORKER_CLASS", "gevent")
if _worker not in WORKER_CLASSES:
    raise ValueError(f"SOFEED_WORKER_CLASS is {_worker!r}: set it to gevent (the default) or gthread")
worker_class = WORKER_CLASSES[_worker]
workers = int(os.environ.get("SOFEED_WORKERS", "2"))
if _worker == "gevent":
    # An open stream costs about 20 KB of a worker's memory (README): 10,000 are ~200 MB per worker.
    worker_connections = int(os.environ.get("SOFEED_WORKER_CONNECTIONS", "10000"))
    # Streams may take all but 1,000 connections of a worker: those stay for polls and page loads.
    _streams = max(0, worker_connections - 1000)
else:
    # Keep-alive connections idle between polls wait in the worker's poller, not
    # in a thread, so 16 threads serve hundreds of polling pages; half of them may stream.
    threads = int(os.environ.get("SOFEED_THREADS", "16"))
    worker_connections = int(os.environ.get("SOFEED_WORKER_CONNECTIONS", "1000"))
    _streams = threads // 2
# The app's per-process stream limit follows the worker class, unless set.
raw_env = [f"SOFEED_STREAMS_PER_PROCESS={os.environ.get('SOFEED_STREAMS_PER_PROCESS', _streams)}"]

# A request never takes long: /update answers 503 within 2 s when the
# database is down. A worker silent for 30 s is stuck, and is replaced.
# (The /events streams are long, but they end when the worker stops: webapp/worker.py.)
timeout = 30
graceful_timeout = 10
# Longer than the page's poll interval, so a polling page keeps its connection.
# Under gevent it also bounds how long reading one request may take.
keepalive = 10

# Access logs off by default (a line per poll per page); errors to stderr.
accesslog = os.environ.get("SOFEED_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("SOFEED_LOG_LEVEL", "info")

# No runtime control socket: a second instance on this machine (the tests,
# another checkout) would fight over its default path in $HOME.
control_socket_disable = True


# /metrics sums every worker's counters from files in one directory per run
# (prometheus_client's multiprocess mode): set in the master as it starts,
# before any worker loads the app, and not at import, so that reading this file
# changes nothing. A systemd unit gives a fresh one instead.
_own_metrics_dir = []


def on_starting(server):
    _raise_open_files_limit(server, worker_connections + 100)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sofeed-metrics-")
        _own_metrics_dir.append(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def post_worker_init(worker):
    """A new worker reads the recent questions before its first request asks for them, then tunes gc."""
    from webapp.db import warm_up

    warm_up(worker.wsgi)
    _collect_garbage_in_small_pauses()


def _collect_garbage_in_small_pauses():
    """Keep Python's full collections, which stop the whole worker, rare and short.

    A full collection visits every tracked object: with 5,000 streams open a
    worker holds about 400,000, and each one paused it for 250 to 370 ms,
    every few seconds under load, which was the paced pollers' p99. What the
    worker has loaded lives as long as it does, so it is frozen out of every
    collection; and young objects are collected every 50,000 allocations
    instead of 700, so fewer of a request's objects live long enough to be
    promoted and bring the next full collection closer (bench/push.py).
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def worker_exit(server, worker):
    """Give the frozen objects back to gc as the worker exits, so they go while the modules they use stand."""
    gc.unfreeze()


def _raise_open_files_limit(server, wanted):
    """Each connection is a file descriptor: raise the soft limit (systemd's is 1024) up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if limit < wanted:
        server.log.warning(
            "open files limit %d is below worker_connections: raise LimitNOFILE (systemd) or ulimit -n", hard
        )


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
