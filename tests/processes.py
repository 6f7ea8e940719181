"""The system as real processes, for the end-to-end tests.

Each part runs as it does in production: FerretDB (tools/localdb.py), the
feed simulator (tools/feedsim.py), the scheduler (scheduler.py) crawling it,
and the web app under gunicorn with webapp/gunicorn_conf.py.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sofeed.store import question_key
from tests.helpers import ROOT
from tools import localdb


def wait_until(condition, timeout=20.0, step=0.05, what="the condition"):
    """condition()'s first truthy value, polling every step seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(step)


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
    """Stop a process this module started: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class FeedSimulator:
    """tools/feedsim.py as a process: a Stack Overflow feed that grows by itself."""

    def __init__(self, every, seed=11):
        self.process = subprocess.Popen(
            [sys.executable, "tools/feedsim.py", "--port", "0", "--every", str(every), "--seed", str(seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.feed_url = self.process.stdout.readline().strip()
        self.process.stdout.close()
        if not self.feed_url.startswith("http://"):
            stop(self.process)
            raise RuntimeError("tools/feedsim.py did not print its feed URL")

    def publish(self, **fields):
        """Publish a question now; returns its _id in the store."""
        status, answer = http(self.feed_url.replace("/feeds", "/publish"), data=fields)
        assert status == 201, answer
        return question_key(answer["entry_id"])

    def stop(self):
        stop(self.process)


def start_scheduler(feed_url, mongo_uri, database, log):
    """scheduler.py crawling feed_url every second, as `make demo` runs it."""
    environment = dict(os.environ, MONGO_URI=mongo_uri, MONGO_DATABASE=database)
    return subprocess.Popen(
        [sys.executable, "scheduler.py", "--interval", "1", "--feed-url", feed_url],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


class WebApp:
    """The web app under gunicorn, with the production config, on a free port.

    gunicorn cannot bind port 0, so the test binds the socket and hands it
    over as fd://N: no other process can take the port in between.
    """

    def __init__(self, mongo_uri, database, log, poll_seconds=0.5, **settings):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.set_inheritable(True)
        host, port = listener.getsockname()
        self.url = f"http://{host}:{port}"
        environment = dict(
            os.environ, MONGO_URI=mongo_uri, MONGO_DATABASE=database, SOFEED_POLL_SECONDS=str(poll_seconds)
        )
        # Any other app setting, as the environment gives it: STREAMS_PER_PROCESS=0.
        environment.update((f"SOFEED_{name}", str(value)) for name, value in settings.items())
        command = [sys.executable, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py"]
        command += ["--bind", f"fd://{listener.fileno()}"]
        with listener:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()],
            )
        # The socket already listens: this waits for a worker to answer.
        status, _ = http(self.url + "/static/style.css", timeout=30)
        if status != 200:
            self.stop()
            raise RuntimeError(f"gunicorn answered {status} for /static/style.css")

    def stop(self):
        stop(self.process)


class Scheduler:
    """A running `python scheduler.py` and its log."""

    def __init__(self, process, log_path):
        self.process = process
        self.log_path = log_path

    def log(self):
        return self.log_path.read_text()

    def lines(self, text):
        return [line for line in self.log().splitlines() if text in line]

    def crawl_lines(self):
        return [line for line in self.log().splitlines() if " sofeed.scheduling.loop: feed " in line]

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
            self.process.terminate()
            self.process.wait()
            self.process.stdin.close()
            self.process = None
