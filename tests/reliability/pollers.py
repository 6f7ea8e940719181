"""Many pages polling /update at once, from one process, without threads.

An asyncio HTTP/1.1 client with keep-alive connections, light enough that
200 pages polling every second leave the cores to the server under test.
A Page does what webapp/static/app.js does when it polls: it loads `/`,
starts from the cursor and the questions the server rendered, asks for
`/update?timestamp=<cursor>`, moves the cursor to the largest `fetched` it
received and dedupes by id. Every request is timed and every error kept.
"""

import asyncio
import contextlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tools.launcher import wait_until

REQUEST_TIMEOUT = 10.0  # seconds: far beyond any healthy answer, short enough to end a run
_CURSOR = re.compile(r'data-cursor="([^"]*)"')
_ITEM = re.compile(r"<li\b[^>]*>")
_ID = re.compile(r'\bdata-id="([0-9a-f]+)"')
_FETCHED = re.compile(r'\bdata-fetched="([^"]+)"')


@dataclass
class Answer:
    status: int
    headers: dict  # lower-case names
    body: bytes
    seconds: float

    @property
    def content_type(self):
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def json(self):
        return json.loads(self.body)


class NoAnswer(Exception):
    """The server closed the connection before it sent a status line."""


async def read_answer(reader, started):
    """One HTTP/1.1 response from reader: status, headers, and a Content-Length or chunked body."""
    status_line = await reader.readline()
    if not status_line:
        raise NoAnswer("the connection closed before an answer")
    _version, status, *_ = status_line.decode("latin-1").split(" ", 2)
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        body = b"".join(chunks)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return Answer(int(status), headers, body, time.perf_counter() - started)


async def exchange(host, port, raw, timeout=REQUEST_TIMEOUT):
    """Send raw bytes on a new connection and read one answer (for malformed requests)."""
    started = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader, started), timeout)
    finally:
        await _close(writer)


async def _close(writer):
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class Connection:
    """One keep-alive connection to a server, reopened when the server closes it."""

    def __init__(self, base_url):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self._streams = None
        self.reconnects = 0  # requests retried on a new connection after the server closed an idle one

    async def get(self, target):
        """GET target (path and query); like a browser, retry once if a reused connection was closed."""
        reused = self._streams is not None
        try:
            return await self._get(target)
        except (NoAnswer, ConnectionResetError, BrokenPipeError):
            await self.close()
            if not reused:
                raise
            self.reconnects += 1
            return await self._get(target)

    async def _get(self, target):
        if self._streams is None:
            self._streams = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), REQUEST_TIMEOUT
            )
        reader, writer = self._streams
        started = time.perf_counter()
        request = f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: */*\r\n\r\n"
        writer.write(request.encode("latin-1"))
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader, started), REQUEST_TIMEOUT)
        if answer.headers.get("connection", "").lower() == "close":
            await self.close()
        return answer

    async def close(self):
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            await _close(writer)


@dataclass
class Page:
    """A page of the live site, as webapp/static/app.js keeps it when it polls /update."""

    base_url: str
    cursor: float = 0.0
    shown: list = field(default_factory=list)  # ids in the order they appeared, first paint first
    receipts: dict = field(default_factory=dict)  # id -> every `fetched` it came with, first paint first
    duplicates: int = 0  # questions an answer brought again, which the page did not show twice
    answers: list = field(default_factory=list)  # (time.monotonic() when asked, status, seconds) of each
    errors: list = field(default_factory=list)  # what went wrong, one line per failed request

    def __post_init__(self):
        self.connection = Connection(self.base_url)

    async def load(self):
        """GET / and start where the server-rendered page starts."""
        answer = await self.connection.get("/")
        if answer.status != 200:
            self.errors.append(f"GET / answered {answer.status}")
            return
        html = answer.body.decode()
        self.cursor = float(_CURSOR.search(html).group(1))
        for item in _ITEM.findall(html):
            question_id, fetched = _ID.search(item), _FETCHED.search(item)
            if question_id and fetched:
                self.receive([{"id": question_id.group(1), "fetched": float(fetched.group(1))}])

    async def poll(self):
        """GET /update?timestamp=<cursor> and take in what it brings."""
        asked = time.monotonic()
        try:
            answer = await self.connection.get(f"/update?timestamp={self.cursor!r}")
        except (OSError, TimeoutError, NoAnswer, asyncio.IncompleteReadError) as error:
            await self.connection.close()
            self.errors.append(f"{type(error).__name__}: {error}")
            return
        self.answers.append((asked, answer.status, answer.seconds))
        if answer.status != 200 or answer.content_type != "application/json":
            self.errors.append(f"/update answered {answer.status} {answer.content_type}")
            return
        try:
            questions = answer.json()
        except ValueError:
            self.errors.append("/update answered a body that is not JSON")
            return
        if not isinstance(questions, list):
            self.errors.append("/update did not answer a list")
            return
        self.receive(questions)

    def receive(self, questions):
        for question in questions:
            received = self.receipts.setdefault(question["id"], [])
            if received:
                self.duplicates += 1
            else:
                self.shown.append(question["id"])
            received.append(question["fetched"])
            self.cursor = max(self.cursor, question["fetched"])

    @property
    def latencies(self):
        """Seconds each answer of /update took, from asking to its last byte."""
        return [seconds for _, _, seconds in self.answers]

    async def keep_polling(self, interval, until, offset=0.0):
        """Poll every interval seconds (a late answer makes the next poll go at once) until `until`."""
        next_poll = time.monotonic() + offset
        while next_poll < until:
            await asyncio.sleep(max(0.0, next_poll - time.monotonic()))
            await self.poll()
            next_poll = max(next_poll + interval, time.monotonic())

    async def close(self):
        await self.connection.close()


class Crowd:
    """count Pages of one site, driven by one event loop: load them, then let them poll.

    Use it as a context manager; it closes the connections and the loop.
    """

    def __init__(self, base_url, count):
        self.pages = [Page(base_url) for _ in range(count)]
        self._runner = asyncio.Runner()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._runner.run(_together(page.close() for page in self.pages))
        self._runner.close()

    def load(self):
        """Every page loads `/` at once."""
        self._runner.run(_together(page.load() for page in self.pages))

    def poll_for(self, interval, seconds):
        """Each page polls every interval for seconds; their polls are spread evenly over an interval."""
        until = time.monotonic() + seconds
        spread = interval / len(self.pages)
        polling = (page.keep_polling(interval, until, spread * n) for n, page in enumerate(self.pages))
        self._runner.run(_together(polling))

    def poll_once(self):
        """One more poll from every page, at once."""
        self._runner.run(_together(page.poll() for page in self.pages))

    def poll_until_all_hold(self, ids, timeout=30, step=0.5):
        """Poll from every page until each shows exactly ids (a set); AssertionError after timeout."""

        def all_hold():
            self.poll_once()
            return all(set(page.shown) == ids for page in self.pages)

        wait_until(all_hold, timeout, step, what="every page holding exactly the stored questions")

    @property
    def latencies(self):
        return [seconds for page in self.pages for seconds in page.latencies]

    @property
    def errors(self):
        return [error for page in self.pages for error in page.errors]


async def _together(coroutines):
    await asyncio.gather(*coroutines)


def percentile(values, share):
    """The nearest-rank percentile of values (share 0.5 for the median, 0.99 for p99)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def milliseconds(seconds):
    return f"{seconds * 1000:.1f} ms"
