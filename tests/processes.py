"""The system as real processes, for the end-to-end tests.

Each part runs as it does in production: FerretDB (tools/localdb.py), the
feed server (tools/sim/feed_server.py), the scheduler (scheduler.py) crawling it,
and the web app under gunicorn with webapp/gunicorn_conf.py.
"""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gunicorn.config import Config as GunicornConfig

from sofeed.store import question_key
from tools import launcher, localdb
from tools.launcher import wait_until  # the tests import it from here too


def http(url, data=None, timeout=10):
    """(status, parsed JSON or text) of a GET, or of a POST when data is given."""
    headers = {"Content-Type": "application/json"} if data is not None else {}
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text, kind = (
                response.status,
                response.read().decode(),
                response.headers.get_content_type(),
            )
    except urllib.error.HTTPError as error:
        with error:
            status, text, kind = error.code, error.read().decode(), error.headers.get_content_type()
    return status, json.loads(text) if kind == "application/json" else text


def stop(process, timeout=10):
    """Stop a process this module started, and its children."""
    launcher.Part("a test process", process).stop(timeout)


class FeedSimulator:
    """tools/sim/feed_server.py as a process: a Stack Overflow feed that grows by itself."""

    def __init__(self, every, seed=11):
        command = [sys.executable, "tools/sim/feed_server.py", "--port", "0", "--every", str(every)]
        self.part = launcher.start("the feed server", [*command, "--seed", str(seed)], first_line=True)
        self.process = self.part.process
        self.feed_url = self.part.first_line
        if not self.feed_url.startswith("http://"):
            self.part.stop()
            raise RuntimeError("tools/sim/feed_server.py did not print its feed URL")

    def publish(self, **fields):
        """Publish a question now; returns its _id in the store."""
        status, answer = http(self.feed_url.replace("/feeds", "/publish"), data=fields)
        assert status == 201, answer
        return question_key(answer["entry_id"])

    def stop(self):
        self.part.stop()


def product_environment():
    """os.environ without any sofeed or MongoDB setting: a part started in it runs on its defaults.

    The benchmarks start their parts in it, so that what the shell exported cannot change the figures.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SOFEED_", "MONGO_")) and name != "BENCH_QUICK"
    }


def start_logged(name, command, log, environment, **popen):
    """launcher.start with the part's output (standard output and errors) in the open file log."""
    return launcher.start(
        name,
        command,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        **popen,
    )


def start_scheduler(feed_url, mongo_uri, database, log, interval=1.0, more_feeds=(), **settings):
    """scheduler.py crawling feed_url (and more_feeds) every interval seconds, as `make demo` runs it.

    With feed_url None, no source is configured: the scheduler reads the default source.
    Any other setting as the environment gives it: KEEP_DAYS=30 is SOFEED_KEEP_DAYS=30.
    """
    command = [sys.executable, "scheduler.py", "--interval", str(interval)]
    for url in (feed_url, *more_feeds) if feed_url else ():
        command += ["--feed-url", url]
    # The test's environment otherwise: a test may set an API key there for the scheduler.
    environment = dict(os.environ, MONGO_URI=mongo_uri, MONGO_DATABASE=database)
    environment.pop("SOFEED_FEED_URLS", None)
    environment.update((f"SOFEED_{name}", str(value)) for name, value in settings.items())
    return start_logged("scheduler.py", command, log, environment).process


def launch_scheduler(feed_urls, mongo_uri, database, log_path, interval=1.0, **settings):
    """start_scheduler for several feeds, its output in a new file at log_path; returns a Scheduler."""
    first, *more = feed_urls or [None]  # none: the default source
    with open(log_path, "w") as log:
        process = start_scheduler(first, mongo_uri, database, log, interval, more, **settings)
    return Scheduler(process, log_path)


class WebApp:
    """The web app under gunicorn, with the production config, on a free port.

    gunicorn cannot bind port 0, so this binds the socket, with gunicorn's
    own backlog, and hands it over as fd://N: no other process can take the
    port in between. The workers then share that socket. With port, gunicorn
    binds 127.0.0.1:port itself instead, as in production, where each worker
    listens on a socket of its own (reuse_port).

    settings are app settings as the environment gives them
    (STREAMS_PER_PROCESS=0 is SOFEED_STREAMS_PER_PROCESS), over environ
    (this process's environment unless given); poll_seconds None leaves the
    page's default; app replaces the config's WSGI app. The constructor
    returns once a worker answers ready_path (None: at once, so that several
    can boot side by side; wait_ready() then).
    """

    def __init__(
        self,
        mongo_uri,
        database,
        log,
        poll_seconds=0.5,
        port=None,
        *,
        app=None,
        ready_path="/static/style.css",
        environ=None,
        **settings,
    ):
        settings = {
            "MONGO_URI": mongo_uri,
            "MONGO_DATABASE": database,
            "SOFEED_POLL_SECONDS": poll_seconds,
            **{f"SOFEED_{name}": value for name, value in settings.items()},
        }
        environment = dict(os.environ if environ is None else environ)
        environment.update((name, str(value)) for name, value in settings.items() if value is not None)
        command = [sys.executable, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py"]
        listener = contextlib.nullcontext()
        if port is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            listener.listen(GunicornConfig().backlog)
            listener.set_inheritable(True)
            port = listener.getsockname()[1]
            command += ["--bind", f"fd://{listener.fileno()}"]
        environment.update(SOFEED_HOST="127.0.0.1", SOFEED_PORT=str(port))
        self.url = f"http://127.0.0.1:{port}"
        command += [app] if app else []
        passed = [listener.fileno()] if isinstance(listener, socket.socket) else []
        with listener:
            self.part = start_logged("gunicorn", command, log, environment, pass_fds=passed)
        self.process = self.part.process
        if ready_path:
            self.wait_ready(ready_path)

    def wait_ready(self, path="/update"):
        """Wait until a worker answers path with 200; returns self."""
        wait_until(lambda: self._answers(path), timeout=30, what=f"gunicorn answering {path}")
        return self

    def _answers(self, path):
        if not self.part.running:
            raise RuntimeError(f"gunicorn exited with status {self.process.returncode}; see its log")
        try:
            status, _ = http(self.url + path, timeout=5)
        except OSError:
            return False
        return status == 200

    def get(self, path):
        """(status, JSON or text) of a GET."""
        return http(self.url + path)

    def workers(self):
        """The pids of gunicorn's workers, its master's children."""
        return children(self.process.pid)

    def stop(self):
        self.part.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def children(pid):
    """The pids of pid's child processes (Linux keeps them in /proc)."""
    with contextlib.suppress(FileNotFoundError):
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


# A crawl line: "2026-01-01 12:00:00,123 INFO sofeed.scheduling.loop: feed URL: what happened"
_CRAWL_LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<level>[A-Z]+) sofeed\.scheduling\.loop: "
    r"feed (?P<feed>\S+): (?P<text>.*)$"
)
# How long the crawl took: "failed after 0.12 s (" or ", 0 invalid, 0.21 s" at the end or before a warning.
_TOOK = re.compile(r"(?: after |, )(\d+\.\d\d) s(?: \(|;|$)")
_COUNT = re.compile(r"\b(\d+) (new|duplicate|invalid)\b")
# What else the scheduler logs when all goes as it should: starting, the lease, skipped ticks, stopping.
_LIFECYCLE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO (?:"
    r"sofeed\.scheduler: (?:crawling .+ every .+ into |SIGTERM: stopping|stopped$)"
    r"|sofeed\.scheduling\.lease: (?:active: |standby: |released the crawl lease$)"
    r"|sofeed\.scheduling\.loop: (?:tick skipped: |stopping: closing the running crawl$))"
)


def log_time(stamp):
    """Epoch seconds of a log line's "2026-01-01 12:00:00,123" (the scheduler logs local time)."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class CrawlLine:
    """One crawl of one feed, as the scheduler logged it."""

    feed: str
    level: str
    text: str  # after "feed URL: "
    ended: float  # epoch seconds
    took: float | None  # None for a crawl skipped because of Retry-After

    @classmethod
    def parse(cls, line):
        match = _CRAWL_LINE.match(line)
        if match is None:
            return None
        took = _TOOK.search(match["text"])
        return cls(
            match["feed"], match["level"], match["text"], log_time(match["at"]), took and float(took[1])
        )

    @property
    def started(self):
        return self.ended - (self.took or 0.0)

    def count(self, what):
        """The crawl's "N new", "N duplicate" or "N invalid"."""
        counts = {name: int(number) for number, name in _COUNT.findall(self.text)}
        return counts.get(what, 0)


class Scheduler:
    """A running `python scheduler.py` and its log."""

    def __init__(self, process, log_path):
        self.process = process
        self.log_path = log_path

    def stop(self):
        stop(self.process)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def log(self):
        return self.log_path.read_text()

    def lines(self, text):
        return [line for line in self.log().splitlines() if text in line]

    def crawl_lines(self):
        return [line for line in self.log().splitlines() if " sofeed.scheduling.loop: feed " in line]

    def crawls(self, feed=None):
        """The crawl lines, parsed; only those of one feed URL if given."""
        parsed = (CrawlLine.parse(line) for line in self.log().splitlines())
        return [crawl for crawl in parsed if crawl is not None and feed in (None, crawl.feed)]

    def crawls_storing(self, count, after, timeout=60):
        """The crawls logged after the first `after` that stored new questions, once count in all."""

        def stored():
            crawls = [crawl for crawl in self.crawls()[after:] if crawl.count("new")]
            return sum(crawl.count("new") for crawl in crawls) >= count and crawls

        return wait_until(stored, timeout, step=0.02, what=f"the scheduler storing {count} new questions")

    def unexpected_lines(self):
        """Lines other than crawl lines and the lifecycle's: a traceback, a library's warning."""
        return [
            line
            for line in self.log().splitlines()
            if CrawlLine.parse(line) is None and not _LIFECYCLE.match(line)
        ]

    def footprint(self):
        """What the process holds now: {"rss_mb", "peak_rss_mb", "threads", "fds", "children"}."""
        return footprint(self.process.pid) | {"children": len(self.children())}

    def children(self):
        """Processes whose parent is the scheduler."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                found.append(stat.parent.name)
        return found


def footprint(pid):
    """A process's resident memory now and at its peak (MB), its threads and its open file descriptors."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return {
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


class PrivateFerretDB:
    """A FerretDB of one test's own, which the test stops and starts again."""

    def __init__(self, folder):
        folder.mkdir()
        self.data = folder / "data"
        self.log = open(folder / "ferretdb.log", "w")  # noqa: SIM115 (closed by the fixture)
        self.process = None
        self.listen = "127.0.0.1:0"

    def start(self):
        self.process, uri = localdb.launch(self.data, listen=self.listen, log=self.log, tied=True)
        self.listen = uri.removeprefix("mongodb://").rstrip("/")  # the same port when started again
        return uri

    def stop(self):
        if self.process is not None:
            stop(self.process)
            self.process = None
