"""A load client process, as bench/clients.py starts it: `python -m bench.loadclient KIND ...`.

Three kinds, each on one asyncio loop: `pages` listen on /events as the
page's script does and poll /update when refused; `pollers` ask for a URL on
the clock; `tricklers` send requests that never end. The process prints one
JSON line once its load is in place, one for each command read on its
standard input (`report`, `wait SECONDS ID...`), and a last one for `stop`
(or the end of its input), after which it exits. The lines are the
dataclasses of bench/clients.py.
"""

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clients import Opening, Polls, Receipts, Trickling
from bench.loadgen import allow_open_files
from tests.reliability.pollers import Connection, NoAnswer

# Opening streams this many at a time keeps the server's accept queue from overflowing.
OPENING_AT_ONCE = 500
RECONNECT_SECONDS = 1.0  # the stream's `retry:`, as the browser honours it
ERROR_SAMPLES = 5
_FAILURES = (OSError, TimeoutError, NoAnswer, asyncio.IncompleteReadError, ValueError)


def emit(value):
    print(json.dumps(value), flush=True)


async def commands():
    """The lines the parent sends; ends with "stop" when it closes the pipe."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode().strip()
    yield "stop"


class EventReader:
    """A chunked HTTP/1.1 body, as it arrives, split into Server-Sent Events."""

    def __init__(self):
        self._raw = b""
        self._text = b""
        self.ended = False

    def feed(self, data):
        """The events that data completes, as {field: value} dicts."""
        self._raw += data
        while not self.ended:
            line_end = self._raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self._raw[:line_end].split(b";")[0], 16)
            start = line_end + 2
            if len(self._raw) < start + size + 2:
                break
            self._text += self._raw[start : start + size]
            self._raw = self._raw[start + size + 2 :]
            self.ended = size == 0
        events = []
        while b"\n\n" in self._text:
            block, self._text = self._text.split(b"\n\n", 1)
            fields = {}
            for line in block.decode().splitlines():
                name, _, value = line.partition(":")
                if name:  # a line starting with ":" is a comment (keep-alive)
                    fields[name] = value.removeprefix(" ")
            if fields:
                events.append(fields)
        return events


class StreamAnswer(asyncio.Protocol):
    """One connection to /events: the answer's status, then the body's pieces, each with when it came.

    The pieces are only kept here, and read when a report is asked for, so
    that a burst of events costs the client as little as it can.
    """

    def __init__(self, request):
        self.request = request
        self.head = b""
        self.status = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.pieces = []  # (epoch seconds, bytes)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        at = time.time()
        if not self.status.done():
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            self.status.set_result(int(head.split(b" ", 2)[1]))
        if data:
            self.pieces.append((at, data))

    def connection_lost(self, exc):
        if not self.status.done():
            self.status.set_exception(NoAnswer("the connection closed before an answer"))
        self.closed.set_result(exc)


@dataclass
class Page:
    """One page: its cursor, and when it first had each question."""

    url: str
    cursor: float
    first: dict = field(default_factory=dict)  # question id -> epoch seconds
    by_polling: set = field(default_factory=set)
    state: str = "opening"  # then "streaming", "polling"
    stream: StreamAnswer | None = None
    events: EventReader = field(default_factory=EventReader)
    read_pieces: int = 0
    last_event_id: str | None = None
    reconnects: int = 0
    polls: int = 0
    poll_errors: int = 0
    errors: list = field(default_factory=list)

    def receive(self, questions, at, polled):
        for question in questions:
            if question["id"] not in self.first:
                self.first[question["id"]] = at
                if polled:
                    self.by_polling.add(question["id"])
            self.cursor = max(self.cursor, question["fetched"])

    def read_stream(self):
        """Take in the stream's pieces that came since the last read."""
        if self.stream is None:
            return
        pieces = self.stream.pieces
        for at, data in pieces[self.read_pieces :]:
            for event in self.events.feed(data):
                if "id" in event:
                    self.last_event_id = event["id"]
                if event.get("event") == "questions":
                    self.receive(json.loads(event["data"]), at, polled=False)
        self.read_pieces = len(pieces)

    def note(self, error):
        if len(self.errors) < ERROR_SAMPLES:
            self.errors.append(error)


class Crowd:
    """The pages of one client process, and how they are opened, kept and reported."""

    def __init__(self, url, count, cursor, poll_seconds, open_timeout):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.pages = [Page(url, cursor) for _ in range(count)]
        self.poll_seconds = poll_seconds
        self.open_timeout = open_timeout
        self.opening = asyncio.Semaphore(OPENING_AT_ONCE)
        self.answers = Counter()  # first answer of each page: status, or "failed"
        self.first_answers = asyncio.get_running_loop().create_future()
        self.running = True

    def request(self, page):
        query = f"/events?timestamp={page.cursor!r}"
        resume = f"Last-Event-ID: {page.last_event_id}\r\n" if page.last_event_id else ""
        return (
            f"GET {query} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Accept: text/event-stream\r\nCache-Control: no-cache\r\n{resume}\r\n"
        ).encode()

    def answered(self, status):
        self.answers[status] += 1
        if sum(self.answers.values()) == len(self.pages) and not self.first_answers.done():
            self.first_answers.set_result(None)

    async def listen(self, page):
        """The page's life: stream while the server allows, else poll."""
        first = True
        while self.running:
            status = await self.open_stream(page)
            if first:
                self.answered(status)
                first = False
            if status != 200:
                break
            page.state = "streaming"
            await page.stream.closed
            page.read_stream()
            if not self.running:
                return
            page.reconnects += 1
            await asyncio.sleep(RECONNECT_SECONDS)
        if self.running:
            page.state = "polling"
            await self.poll(page)

    async def open_stream(self, page):
        """The status of the answer to a new /events request, or "failed"."""
        loop = asyncio.get_running_loop()
        async with self.opening:
            try:
                _, page.stream = await loop.create_connection(
                    lambda: StreamAnswer(self.request(page)), self.host, self.port
                )
                page.read_pieces, page.events = 0, EventReader()
                status = await page.stream.status
            except _FAILURES as error:
                page.note(f"/events: {type(error).__name__}: {error}")
                return "failed"
        if status != 200:
            page.stream.transport.close()
            page.stream = None
        return status

    async def poll(self, page):
        """Poll /update as the page does once it has no stream; back off after failures."""
        connection = Connection(page.url)
        failures = 0
        longest = max(self.poll_seconds, min(30.0, self.poll_seconds * 8))
        await asyncio.sleep(self.poll_seconds)
        while self.running:
            page.polls += 1
            try:
                answer = await connection.get(f"/update?timestamp={page.cursor!r}")
                if answer.status != 200:
                    raise ValueError(f"/update answered {answer.status}")
                page.receive(answer.json(), time.time(), polled=True)
                failures, delay = 0, self.poll_seconds
            except _FAILURES as error:
                await connection.close()
                page.poll_errors += 1
                page.note(f"/update: {type(error).__name__}: {error}")
                failures += 1
                delay = min(self.poll_seconds * 2**failures, longest) * random.uniform(0.9, 1.1)
            await asyncio.sleep(delay)
        await connection.close()

    async def wait_opened(self, started):
        """How the opening went, once every page has answered or open_timeout has passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.first_answers), self.open_timeout)
        answers = dict(self.answers)
        accepted, failed = answers.pop(200, 0), answers.pop("failed", 0)
        return Opening(
            accepted=accepted,
            refused={str(status): count for status, count in answers.items()},
            failed=failed,
            unanswered=len(self.pages) - sum(self.answers.values()),
            seconds=time.monotonic() - started,
        )

    async def wait_for(self, question_ids, timeout):
        """Until every page has every one of question_ids, or timeout seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for page in self.pages:
                page.read_stream()
            if all(question_id in page.first for page in self.pages for question_id in question_ids):
                return
            await asyncio.sleep(0.2)

    def report(self):
        received, by_polling = {}, Counter()
        for page in self.pages:
            page.read_stream()
            for question_id, at in page.first.items():
                received.setdefault(question_id, []).append(at)
            by_polling.update(page.by_polling)
        return Receipts(
            pages=len(self.pages),
            streaming=sum(page.state == "streaming" for page in self.pages),
            polling=sum(page.state == "polling" for page in self.pages),
            received=received,
            by_polling=dict(by_polling),
            reconnects=sum(page.reconnects for page in self.pages),
            polls=sum(page.polls for page in self.pages),
            poll_errors=sum(page.poll_errors for page in self.pages),
            errors=[error for page in self.pages for error in page.errors][:ERROR_SAMPLES],
        )

    def close(self):
        self.running = False
        for page in self.pages:
            if page.stream is not None and page.stream.transport is not None:
                page.stream.transport.close()


async def run_pages(options):
    started = time.monotonic()
    crowd = Crowd(options.url, options.count, options.cursor, options.poll_seconds, options.open_timeout)
    tasks = [asyncio.create_task(crowd.listen(page)) for page in crowd.pages]
    emit(asdict(await crowd.wait_opened(started)))
    async for command in commands():
        name, *arguments = command.split()
        if name == "wait":
            await crowd.wait_for(arguments[1:], float(arguments[0]))
        emit(asdict(crowd.report()))
        if name == "stop":
            break
    crowd.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Poller:
    """One paced poller: a request when due, on an idle connection of its own or a new one."""

    def __init__(self, url, target, timeout, results):
        self.url, self.target, self.timeout = url, target, timeout
        self.results = results
        self.idle = []

    async def request(self, due):
        results = self.results
        results["late"].append(round(time.monotonic() - due, 5))
        if not self.idle:
            self.idle.append(Connection(self.url))
            results["connections"] += 1
        connection = self.idle.pop()
        results["requests"] += 1
        try:
            answer = await asyncio.wait_for(connection.get(self.target), self.timeout)
            if answer.status != 200:
                raise ValueError(f"{self.target} answered {answer.status}")
            answer.json()
        except _FAILURES as error:
            await connection.close()
            results["errors"] += 1
            if len(results["error_samples"]) < ERROR_SAMPLES:
                results["error_samples"].append(f"{type(error).__name__}: {error}")
            return
        results["latencies"].append(round(time.monotonic() - due, 5))
        self.idle.append(connection)


async def run_pollers(options):
    results = {"requests": 0, "errors": 0, "error_samples": [], "latencies": [], "late": [], "connections": 0}
    pollers = [Poller(options.url, options.target, options.timeout, results) for _ in range(options.count)]
    started = time.monotonic()
    stopping = asyncio.Event()
    pending = set()

    async def pace(poller, offset):
        due = started + offset
        while not stopping.is_set():
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if stopping.is_set():
                break
            task = asyncio.create_task(poller.request(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            due += options.interval

    spread = options.interval / options.count
    pacing = [asyncio.create_task(pace(poller, n * spread)) for n, poller in enumerate(pollers)]
    emit({"started": True})
    async for command in commands():
        if command == "stop":
            break
    stopping.set()
    await asyncio.gather(*pacing)
    await asyncio.gather(*pending)
    for poller in pollers:
        for connection in poller.idle:
            await connection.close()
    emit(asdict(Polls(**results, seconds=time.monotonic() - started)))


async def trickle(host, port, every, results, stopping):
    """Keep one connection trickling an endless request; open another when the server drops it."""
    while not stopping.is_set():
        request, header = f"GET /update HTTP/1.1\r\nHost: {host}:{port}\r\n".encode(), 0
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            results["connect_errors"] += 1
            await asyncio.sleep(every)
            continue
        results["connections"] += 1
        opened = time.monotonic()
        answer = b""
        try:
            while not stopping.is_set():
                if not request:
                    header += 1
                    request = f"X-Trickle-{header}: {'x' * 8}\r\n".encode()
                writer.write(request[:1])
                request = request[1:]
                await writer.drain()
                # Waiting for an answer is the pause between two bytes.
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(reader.read(256), every)
                    break  # the server answered, or closed the connection (b"")
        except OSError:
            pass
        if not stopping.is_set():
            results["dropped"] += 1
            results["dropped_after"].append(round(time.monotonic() - opened, 3))
            if answer.startswith(b"HTTP/"):
                status = answer.split(b" ", 2)[1].decode()
                results["answers"][status] = results["answers"].get(status, 0) + 1
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def run_tricklers(options):
    parts = urlsplit(options.url)
    results = {"connections": 0, "connect_errors": 0, "dropped": 0, "dropped_after": [], "answers": {}}
    stopping = asyncio.Event()
    started = time.monotonic()
    tasks = [
        asyncio.create_task(trickle(parts.hostname, parts.port, options.every, results, stopping))
        for _ in range(options.count)
    ]
    while results["connections"] + results["connect_errors"] < options.count:
        await asyncio.sleep(0.05)
    emit({"connected": results["connections"]})
    async for command in commands():
        if command == "stop":
            break
    stopping.set()
    await asyncio.gather(*tasks)
    emit(asdict(Trickling(**results, seconds=time.monotonic() - started)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    pages = kinds.add_parser("pages", help="pages listening on /events, polling when refused")
    pages.add_argument("--cursor", type=float, required=True)
    pages.add_argument("--poll-seconds", type=float, default=5.0)
    pages.add_argument("--open-timeout", type=float, default=60.0)
    pollers = kinds.add_parser("pollers", help="pollers paced by the clock")
    pollers.add_argument("--target", required=True, help="path and query, like /update?timestamp=0")
    pollers.add_argument("--interval", type=float, required=True)
    pollers.add_argument("--timeout", type=float, default=5.0)
    tricklers = kinds.add_parser("tricklers", help="slow clients, a byte every --every seconds")
    tricklers.add_argument("--every", type=float, required=True)
    for kind in (pages, pollers, tricklers):
        kind.add_argument("--url", required=True, help="the site, like http://127.0.0.1:8000")
        kind.add_argument("--count", type=int, required=True)
    options = parser.parse_args(argv)
    # A page holds one connection, a polling one another while the first closes; pollers may need a few.
    allow_open_files(options.count * 3 + 256)
    runs = {"pages": run_pages, "pollers": run_pollers, "tricklers": run_tricklers}
    asyncio.run(runs[options.kind](options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
