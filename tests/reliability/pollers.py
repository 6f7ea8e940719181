"""Many pages polling /update, or listening to /events, at once, from one process, without threads.

An asyncio HTTP/1.1 client with keep-alive connections, light enough that
200 pages polling every second leave the cores to the server under test.
A Page does what webapp/static/app.js does when it polls: it loads `/`,
starts from the cursor and the questions the server rendered, asks for
`/update?timestamp=<cursor>`, moves the cursor to the largest `fetched` it
received and dedupes by id. Every request is timed and every error kept.
A Listener does what app.js does first: it listens to `/events` as the
browser's EventSource does, and polls only if a stream is refused.
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


async def read_head(reader):
    """(status, headers with lower-case names) of one HTTP/1.1 response from reader."""
    status_line = await reader.readline()
    if not status_line:
        raise NoAnswer("the connection closed before an answer")
    _version, status, *_ = status_line.decode("latin-1").split(" ", 2)
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), headers


async def read_answer(reader, started):
    """One HTTP/1.1 response from reader: status, headers, and a Content-Length or chunked body."""
    status, headers = await read_head(reader)
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
    return Answer(status, headers, body, time.perf_counter() - started)


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
    arrived: dict = field(default_factory=dict)  # id -> time.monotonic() when it was first shown

    def __post_init__(self):
        self.connection = Connection(self.base_url)

    async def load(self):
        """GET / and start where the server-rendered page starts; returns the page (None on an error)."""
        answer = await self.connection.get("/")
        if answer.status != 200:
            self.errors.append(f"GET / answered {answer.status}")
            return None
        html = answer.body.decode()
        self.cursor = float(_CURSOR.search(html).group(1))
        for item in _ITEM.findall(html):
            question_id, fetched = _ID.search(item), _FETCHED.search(item)
            if question_id and fetched:
                self.receive([{"id": question_id.group(1), "fetched": float(fetched.group(1))}])
        return html

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
                self.arrived[question["id"]] = time.monotonic()
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


_POLL_SECONDS = re.compile(r'data-poll-seconds="([^"]*)"')
STREAM_SILENCE = 45.0  # seconds: three of the server's keepalives; a stream silent longer is dead


@dataclass
class Listener(Page):
    """A page as webapp/static/app.js runs it: an EventSource on /events, polling /update if refused.

    Like the browser's EventSource, it keeps the URL it opened first and,
    when a stream ends or its connection fails, opens it again after the
    server's `retry:` delay, sending the last event's id as Last-Event-ID.
    Any answer but a 200 event stream is a refusal: from then on it polls
    /update every poll_seconds (the page's data-poll-seconds), backing off
    after failures as app.js does.
    """

    poll_seconds: float = 5.0
    streams: int = 0  # streams opened (the first one, then each reconnection)
    stream_errors: list = field(default_factory=list)  # how each stream that did not end cleanly ended
    refused: str | None = None  # why the stream was refused, once it was: the page polls since

    async def load(self):
        html = await super().load()
        if html is not None and (match := _POLL_SECONDS.search(html)):
            self.poll_seconds = float(match.group(1))  # the page's own, as the server rendered it
        return html

    async def listen(self):
        """Listen until cancelled: the stream, reopened as often as it ends, then polls if refused."""
        target = f"/events?timestamp={self.cursor!r}"
        state = {"last_id": None, "retry": 1.0}
        while self.refused is None:
            try:
                await self._stream(target, state)
            except (OSError, TimeoutError, NoAnswer, asyncio.IncompleteReadError, ValueError) as error:
                self.stream_errors.append(f"{type(error).__name__}: {error}")
            if self.refused is None:
                await asyncio.sleep(state["retry"])
        longest = max(self.poll_seconds, min(30.0, self.poll_seconds * 8))  # app.js's maxBackoffMs
        failures = 0
        while True:
            await asyncio.sleep(min(self.poll_seconds * 2**failures, longest))
            errors = len(self.errors)
            await self.poll()
            failures = failures + 1 if len(self.errors) > errors else 0

    async def _stream(self, target, state):
        """One stream, read until it ends; sets self.refused if the server refused it."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.connection.host, self.connection.port), REQUEST_TIMEOUT
        )
        try:
            headers = [f"GET {target} HTTP/1.1", f"Host: {self.connection.host}:{self.connection.port}"]
            headers += ["Accept: text/event-stream", "Cache-Control: no-cache"]
            if state["last_id"] is not None:
                headers.append(f"Last-Event-ID: {state['last_id']}")
            writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            status, head = await asyncio.wait_for(read_head(reader), REQUEST_TIMEOUT)
            kind = head.get("content-type", "").split(";", 1)[0].strip().lower()
            if status != 200 or kind != "text/event-stream":
                self.refused = f"{status} {kind}"
                return
            self.streams += 1
            chunked = head.get("transfer-encoding", "").lower() == "chunked"
            await self._read_events(_body(reader, chunked), state)
        finally:
            await _close(writer)

    async def _read_events(self, chunks, state):
        """Dispatch the events of a stream's body as EventSource does; returns when the body ends."""
        buffered, event, data = b"", "message", []
        async for chunk in chunks:
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for raw in lines:
                line = raw.decode().rstrip("\r")
                if not line:
                    if data and event == "questions":
                        self.receive(json.loads("\n".join(data)))
                    event, data = "message", []
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name == "event":
                    event = value
                elif name == "id":
                    state["last_id"] = value
                elif name == "retry" and value.isdigit():
                    state["retry"] = int(value) / 1000


async def _body(reader, chunked):
    """The pieces of a response body as they arrive: chunked, or until the connection closes.

    A body that stops in the middle of a chunk raises IncompleteReadError:
    the server (or the proxy before it) went away.
    """
    while True:
        if chunked:
            size_line = await asyncio.wait_for(reader.readline(), STREAM_SILENCE)
            if not size_line:
                raise asyncio.IncompleteReadError(b"", None)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return
            chunk = await reader.readexactly(size)
            await reader.readexactly(2)
        else:
            chunk = await asyncio.wait_for(reader.read(65536), STREAM_SILENCE)
            if not chunk:
                return
        yield chunk


class Crowd:
    """count Pages (or Listeners) of one site, driven by one event loop: load them, then let them poll.

    Use it as a context manager; it closes the connections and the loop.
    """

    def __init__(self, base_url, count, kind=Page):
        self.pages = [kind(base_url) for _ in range(count)]
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

    def listen_while(self, scenario):
        """Every Listener listens while the coroutine scenario runs; returns what scenario returns."""

        async def listening():
            tasks = [asyncio.create_task(page.listen()) for page in self.pages]
            try:
                return await scenario
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        return self._runner.run(listening())

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
