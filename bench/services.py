"""The system's processes as the benchmarks run them: a private FerretDB,
the scheduler, and a web app under gunicorn with the production config;
and what a process costs, read from /proc.

Each process is a context manager that stops what it started, however the
benchmark ends. Their logs go to the benchmark's folder under var/bench/.
"""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from gunicorn.config import Config as GunicornConfig
from pymongo import MongoClient

from bench.common import ROOT
from tests.processes import http, stop, wait_until
from tools import localdb
from webapp.recent import UPDATE_LIMIT

PRODUCTION_CONFIG = "webapp/gunicorn_conf.py"
TICKS = os.sysconf("SC_CLK_TCK")
# Monitoring and handshakes that every client sends whatever its load: not queries.
NOT_QUERIES = frozenset({"ismaster", "hello", "ping", "serverstatus", "endsessions", "buildinfo"})


def product_environment(**settings):
    """os.environ without any sofeed or MongoDB setting, plus settings: the defaults, unless given."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SOFEED_", "MONGO_")) and name != "BENCH_QUICK"
    }
    return {**kept, **{name: str(value) for name, value in settings.items()}}


@contextlib.contextmanager
def private_database(folder):
    """A FerretDB of our own on a free port, its log in folder, its data in a fresh folder there.

    Yields (URI, its Popen), so that a benchmark can also read its CPU time.
    The data folder is removed afterwards; it is new each time, so two runs
    of a benchmark at once do not share it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="ferretdb-", dir=folder) as data,
        open(folder / "ferretdb.log", "w") as log,
    ):
        process, uri = localdb.launch(Path(data), log=log, tied=True)
        try:
            yield uri, process
        finally:
            stop(process)
            process.stdin.close()


def database_commands(client):
    """How many queries and writes FerretDB has served since it started, from its serverStatus.

    Every command counts but the serverStatus calls themselves, and the
    handshakes and heartbeats that every client sends whatever its load.
    """
    commands = client.admin.command("serverStatus")["metrics"]["commands"]
    return sum(counts.get("total", 0) for name, counts in commands.items() if name.lower() not in NOT_QUERIES)


@contextlib.contextmanager
def scheduler(feed_url, mongo_uri, database, interval, log_path):
    """scheduler.py crawling feed_url every interval seconds; yields its Popen."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "scheduler.py", "--interval", str(interval), "--feed-url", feed_url],
            cwd=ROOT,
            env=product_environment(MONGO_URI=mongo_uri, MONGO_DATABASE=database),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        stop(process)


class Gunicorn:
    """A WSGI app under gunicorn, with webapp/gunicorn_conf.py (or another config), on a free port.

    gunicorn cannot bind port 0, so this binds the socket, listening with
    gunicorn's own default backlog, and hands it over as fd://N, as
    tests/processes.py does. app overrides the config's wsgi_app
    ("module:create_app()"). It starts at once; wait_ready() waits for an
    answer, so that several can boot side by side. Used as a context
    manager, it stops gunicorn at the end.
    """

    def __init__(self, log_path, app=None, config=PRODUCTION_CONFIG, **settings):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(GunicornConfig().backlog)
        listener.set_inheritable(True)
        host, port = listener.getsockname()
        self.url = f"http://{host}:{port}"
        command = [sys.executable, "-m", "gunicorn", "-c", config, "--bind", f"fd://{listener.fileno()}"]
        command += [app] if app else []
        with listener, open(log_path, "w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=product_environment(**settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()],
            )

    def wait_ready(self, path="/update"):
        """Wait until a worker answers path with 200; returns self."""
        wait_until(lambda: self._answers(path), timeout=30, what=f"gunicorn answering {path}")
        return self

    def _answers(self, path):
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {self.process.returncode}; see its log")
        try:
            status, _ = http(self.url + path, timeout=5)
        except OSError:
            return False
        return status == 200

    def get(self, path):
        """(status, JSON or text) of a GET."""
        return http(self.url + path)

    def stop(self):
        stop(self.process)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def newest_fetched(app, stored=UPDATE_LIMIT):
    """The newest question's `fetched`, once the web app hands out all it should.

    A question is handed out only once it is VISIBILITY_LAG old, so this
    waits until /update?timestamp=0 lists min(stored, UPDATE_LIMIT) of them.
    """

    def newest_first():
        status, questions = app.get("/update?timestamp=0")
        return status == 200 and len(questions) == min(stored, UPDATE_LIMIT) and questions

    return wait_until(newest_first, timeout=30, what="/update handing out the stored questions")[0]["fetched"]


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of proc(5)


def memory_mib(pid):
    """(VmRSS, VmHWM) of a process in MiB, from /proc/<pid>/status."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def connect(uri):
    """A plain client for the benchmark's own look-ups (counts, serverStatus)."""
    return MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000)
