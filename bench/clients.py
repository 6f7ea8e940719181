"""Load clients for bench/push.py and the push reliability scenarios: pages
holding /events streams, pollers paced by a clock, and slow clients that
trickle a request.

Each runs as a process of its own (bench/loadclient.py, started through
tools/launcher.py) on one asyncio loop, so that ten thousand connections
cost the measuring process nothing and its clock stays honest. These
classes drive them, and their results come back as the dataclasses below.
"""

import json
import select
import subprocess
import sys
from dataclasses import dataclass

from tools import launcher

# How long the parent waits for a line before it calls the client stuck.
ANSWER_TIMEOUT = 120.0


@dataclass
class Opening:
    """How a crowd of pages fared asking for their streams."""

    accepted: int  # 200: streaming
    refused: dict  # status -> pages that got it instead (they poll)
    failed: int  # no answer: connection refused, reset or closed (they poll)
    unanswered: int  # still waiting for an answer when the opening ended
    seconds: float


@dataclass
class Receipts:
    """What the pages of a crowd received: for each question id, when each page first had it."""

    pages: int
    streaming: int  # pages holding a stream now
    polling: int  # pages that fell back to polling /update
    received: dict  # question id -> [epoch seconds of each page's first receipt]
    by_polling: dict  # question id -> how many of those receipts came from a poll
    reconnects: int  # streams the server ended, reopened as the browser would
    polls: int
    poll_errors: int
    errors: list  # a few samples

    def delivered(self, question_id):
        """How many pages have the question."""
        return len(self.received.get(question_id, ()))

    def delays(self, question_ids, since):
        """Seconds from since (epoch) to each page's first receipt of each question received."""
        return [at - since for question_id in question_ids for at in self.received.get(question_id, ())]


@dataclass
class Polls:
    """What paced pollers measured: every request's latency from the moment it was due."""

    requests: int
    errors: int
    error_samples: list
    latencies: list  # seconds, of the requests answered well
    late: list  # seconds from when each request was due to when the client sent it: its own lag
    connections: int  # opened in all: more than the pollers when answers came later than the next poll
    seconds: float


@dataclass
class Trickling:
    """What slow clients met: how many connections the server dropped, after how long, with what answer."""

    connections: int  # opened in all, reopened ones included
    connect_errors: int
    dropped: int  # closed by the server (with or without an answer)
    dropped_after: list  # seconds from opening to the server's close
    answers: dict  # status -> count, of the drops that came with an answer
    seconds: float


class _Client:
    """One `python -m bench.loadclient` process; its errors go to log_path."""

    def __init__(self, kind, options, log_path):
        command = [sys.executable, "-m", "bench.loadclient", kind, *map(str, options)]
        self.log_path = log_path
        with open(log_path, "a") as log:
            self.part = launcher.start(
                f"bench.loadclient {kind}",
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def read(self, timeout=ANSWER_TIMEOUT):
        """The client's next JSON line."""
        stdout = self.part.process.stdout
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if not line:
            state = "is stuck" if ready == [] else f"exited (status {self.part.process.poll()})"
            raise RuntimeError(f"{self.part.name} {state}; see {self.log_path}")
        return json.loads(line)

    def ask(self, command, timeout=ANSWER_TIMEOUT):
        try:
            self.part.process.stdin.write(command + "\n")
            self.part.process.stdin.flush()
        except BrokenPipeError:
            status = self.part.process.wait()
            raise RuntimeError(f"{self.part.name} exited (status {status}); see {self.log_path}") from None
        return self.read(timeout)

    def finish(self):
        """Stop the load; the client's last report."""
        try:
            return self.ask("stop")
        finally:
            self.part.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.part.stop()


class Pages(_Client):
    """count pages of the live site, each listening on /events as webapp/static/app.js does.

    Each asks for `/events?timestamp=<cursor>`; a page refused a stream (or
    given none) polls `/update` every poll_seconds instead, backing off on
    failures like the page. A stream the server ends is reopened with
    Last-Event-ID after the stream's retry delay.
    """

    def __init__(self, url, count, cursor, log_path, poll_seconds=5.0, open_timeout=60.0):
        options = ["--url", url, "--count", count, "--cursor", repr(cursor)]
        options += ["--poll-seconds", poll_seconds, "--open-timeout", open_timeout]
        super().__init__("pages", options, log_path)
        self.opening = None

    def opened(self):
        """Once every page has its first answer (or open_timeout passed): how the opening went."""
        if self.opening is None:
            self.opening = Opening(**self.read())
        return self.opening

    def receipts(self):
        return Receipts(**self.ask("report"))

    def wait_for(self, question_ids, timeout):
        """The receipts once every page has every one of question_ids, or after timeout seconds."""
        return Receipts(**self.ask(f"wait {timeout} {' '.join(question_ids)}", timeout + ANSWER_TIMEOUT))

    def finish(self):
        return Receipts(**super().finish())


class PacedPollers(_Client):
    """count pollers, each asking for target every interval seconds on the clock: an open loop.

    A request is sent when it is due whether or not the previous one was
    answered (then on a new connection), and its latency runs from the
    moment it was due, so that a slow server cannot hide its queue.
    """

    def __init__(self, url, target, count, interval, log_path, timeout=5.0):
        options = ["--url", url, "--target", target, "--count", count, "--interval", interval]
        super().__init__("pollers", [*options, "--timeout", timeout], log_path)
        self.read()  # polling has begun

    def finish(self):
        return Polls(**super().finish())


class Tricklers(_Client):
    """count connections, each sending a request that never ends, a byte every `every` seconds.

    A connection the server drops is opened again, so that count of them
    trickle all the time.
    """

    def __init__(self, url, count, every, log_path):
        super().__init__("tricklers", ["--url", url, "--count", count, "--every", every], log_path)
        self.connected = self.read()["connected"]

    def finish(self):
        return Trickling(**super().finish())
