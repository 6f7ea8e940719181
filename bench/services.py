"""The system's processes as the benchmarks run them: a private FerretDB, and
a web app under gunicorn with the production config; and what a process
costs, read from /proc.

tests/processes.py starts each part (scheduler, web app, feed server)
through tools/launcher.py, for the tests and the benchmarks alike; this
adds what only the benchmarks need. Each part is a context manager that
stops what it started, however the benchmark ends. Their logs go to the
benchmark's folder under var/bench/.
"""

import contextlib
import os
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pymongo import MongoClient

from tests.processes import WebApp, product_environment, stop, wait_until
from tools import localdb
from webapp.recent import UPDATE_LIMIT

TICKS = os.sysconf("SC_CLK_TCK")
# Monitoring and handshakes that every client sends whatever its load: not queries.
NOT_QUERIES = frozenset({"ismaster", "hello", "ping", "serverstatus", "endsessions", "buildinfo"})


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


def free_port():
    """A TCP port free on 127.0.0.1 now (another process could take it before it is used)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def web_app(log_path, mongo_uri=None, database=None, **options):
    """tests.processes.WebApp as the benchmarks run it: the product's defaults whatever the shell
    exported, on a port of its own (each worker listening with reuse_port, as in production),
    its log at log_path.

    It returns at once, so that several apps boot side by side: call
    wait_ready() before using one. options go to WebApp (app=, settings).
    """
    with open(log_path, "w") as log:
        return WebApp(
            mongo_uri,
            database,
            log,
            None,
            free_port(),
            ready_path=None,
            environ=product_environment(),
            **options,
        )


class Together:
    """Parts (web apps, anything with stop()) stopped together at the end, each in a thread of its own.

    A gunicorn takes a second or two to stop gracefully; one after the other, a few add up.
    """

    def __init__(self):
        self.parts = []

    def enter(self, part):
        self.parts.append(part)
        return part

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.parts:
            with ThreadPoolExecutor(len(self.parts)) as pool:
                list(pool.map(lambda part: part.stop(), self.parts))


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


class Workers:
    """A web app's gunicorn workers, seen from /proc: their CPU seconds and resident memory, summed."""

    def __init__(self, app):
        self.pids = app.workers()

    def cpu(self):
        return sum(_read(cpu_seconds, pid) for pid in self.pids)

    def rss_mib(self):
        return sum(_read(lambda pid: memory_mib(pid)[0], pid) for pid in self.pids)


def _read(reader, pid):
    """reader(pid), or 0 if the process is gone (a worker replaced)."""
    try:
        return reader(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
