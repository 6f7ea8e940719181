"""A simulated Stack Exchange API 2.3 `/2.3/questions`, for `make demo` and the tests.

    python tools/sim/stackexchange.py --port 8766 --every 5

serves http://127.0.0.1:8766/2.3/questions?site=stackoverflow (the first line on
standard output) as api.stackexchange.com does: the common wrapper (`items`,
`has_more`, `quota_max`, `quota_remaining`, and `backoff` when one is set), every
body gzip-compressed, `title` and `owner.display_name` HTML-encoded, question
objects with `filter=withbody` as the real API returns them, and the error
wrapper (`error_id`, `error_name`, `error_message`) for what it refuses.

With `--mirror FEED_URL` it also lists the questions of that Atom feed, as the
real API lists the questions of Stack Overflow's feed (`make demo`).

It honours site, sort (creation or activity), order, page, pagesize, fromdate,
todate, tagged, filter (default or withbody) and key, and counts each caller's
quota per UTC day: 300 requests without a key, 10,000 with one. A request made
before the `backoff` it was given has elapsed is refused with throttle_violation.

A test drives it in-process: publish() a question, error_next() an error
wrapper, backoff_next() a backoff, `fault` for a broken answer (FAULTS), and
`requests` records what each caller sent. Over HTTP, POST /publish takes the
fields of publish() as JSON and answers 201 with the question as the API lists it.
"""

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

QUESTIONS_PATH = "/2.3/questions"
FIRST_QUESTION_ID = 79_300_000

# Requests a day per caller, as the API grants them (api.stackexchange.com/docs/throttle).
QUOTA_WITHOUT_KEY = 300
QUOTA_WITH_KEY = 10_000
MAX_PAGESIZE = 100

# Each error the API documents, by name: its error_id.
ERROR_IDS = {
    "bad_parameter": 400,
    "access_token_required": 401,
    "invalid_access_token": 402,
    "access_denied": 403,
    "no_method": 404,
    "key_required": 405,
    "access_token_compromised": 406,
    "write_failed": 407,
    "duplicate_request": 409,
    "internal_error": 500,
    "throttle_violation": 502,
    "temporarily_unavailable": 503,
}

# What a test can break in the next answers (see `fault`): a gzip body that is
# not JSON, a wrapper with no items, and a body over the 4 MB a crawl accepts
# (small on the wire, 5 MB once decompressed).
FAULTS = ("not_json", "empty_items", "oversized")
OVERSIZED_BYTES = 5 * 1024 * 1024

SITES = {"stackoverflow": "stackoverflow.com", "superuser": "superuser.com", "serverfault": "serverfault.com"}

# A robots.txt that forbids everything, so a test sees that the API spider never asks for it.
ROBOTS_TXT = b"User-agent: *\nDisallow: /\n"

# A few questions to draw from: title, tags, the asker's first paragraph, a line of code.
_SAMPLES = [
    ("Why doesn't my regex match 'café' with \\w?", "python regex", "The pattern stops at the é", r"\w+"),
    ('What does "yield from" do in a generator?', "python generator", "I read the PEP twice", "yield from g"),
    ("std::map vs std::unordered_map for <100 keys", "c++ performance", "Which one is faster?", "m[k] = v;"),
    ("Git & submodules: how do I pull the latest?", "git git-submodules", "Nothing updates", "git pull"),
    ("React state isn't updated after setState", "reactjs", "The log shows the old value", "setN(n + 1)"),
    ("Docker container can't reach the host's port", "docker networking", "curl times out", "curl host:80"),
    ("SQL: count rows per day, days with none as 0", "sql postgresql", "Empty days are gone", "GROUP BY d"),
    ("Rust: cannot borrow `*self` as mutable twice", "rust borrow-checker", "Only one field", "self.f()"),
]
_AUTHORS = ["Jörg Müller", "Zoe O'Brien", 'Dana "dw" Wu', "Ana & Luis", "Chen Wei", "kernel_panic", "Émile"]


def html_encode(text, ascii_only=False):
    """Text as the API sends title and display_name: &, <, >, " and ' as entities; others as &#N; if asked."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace('"', "&quot;").replace("'", "&#39;")
    if ascii_only:
        text = "".join(c if ord(c) < 128 else f"&#{ord(c)};" for c in text)
    return text


def slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80] or "question"


def next_reset(now):
    """The epoch second of the next 00:00 UTC after now, when every quota is full again."""
    day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass
class Question:
    """One question in plain text; item() renders it as the API lists it."""

    question_id: int
    title: str
    tags: list
    display_name: str
    user_id: int | None  # None: the asker's account is gone, as for a deleted user
    body: str
    score: int
    creation_date: int
    last_activity_date: int
    last_edit_date: int | None = None
    site: str = "stackoverflow"

    @property
    def host(self):
        return SITES.get(self.site, f"{self.site}.stackexchange.com")

    @property
    def link(self):
        return f"https://{self.host}/questions/{self.question_id}/{slug(self.title)}"

    @property
    def entry_id(self):
        """The id Stack Overflow's Atom feed gives the same question."""
        return f"https://{self.host}/q/{self.question_id}"

    def item(self, with_body):
        if self.user_id is None:
            owner = {"user_type": "does_not_exist", "display_name": html_encode(self.display_name, True)}
        else:
            owner = {
                "account_id": self.user_id // 3 + 7,
                "reputation": 1 + self.user_id % 5000,
                "user_id": self.user_id,
                "user_type": "registered",
                "profile_image": "https://www.gravatar.com/avatar/"
                + hashlib.md5(str(self.user_id).encode()).hexdigest()
                + "?s=256&d=identicon&r=PG",
                "display_name": html_encode(self.display_name, True),
                "link": f"https://{self.host}/users/{self.user_id}/{slug(self.display_name)}",
            }
        item = {
            "tags": list(self.tags),
            "owner": owner,
            "is_answered": False,
            "view_count": 3 + self.question_id % 40,
            "answer_count": 0,
            "score": self.score,
            "last_activity_date": self.last_activity_date,
            "creation_date": self.creation_date,
            **({"last_edit_date": self.last_edit_date} if self.last_edit_date else {}),
            "question_id": self.question_id,
            "content_license": "CC BY-SA 4.0",
            "link": self.link,
            "title": html_encode(self.title),
        }
        if with_body:
            item["body"] = self.body
        return item


@dataclass
class ApiRequest:
    """One request the simulator answered: what a test checks the crawler sent."""

    path: str
    params: dict  # the query string, one value per name
    headers: dict
    at: float  # the simulator's clock (epoch seconds)
    status: int = 0
    error_name: str | None = None

    @property
    def key(self):
        return self.params.get("key")


@dataclass
class Answer:
    status: int
    body: bytes  # gzip-compressed
    content_type: str = "application/json; charset=utf-8"
    headers: dict = field(default_factory=dict)


class ApiError(Exception):
    """A refusal, answered with the error wrapper."""

    def __init__(self, name, message, http_status=400):
        super().__init__(message)
        self.name = name
        self.http_status = http_status


class StackExchangeSimulator:
    """The questions of a few sites, answered as /2.3/questions would answer them.

    clock gives epoch seconds; a test passes its own to move through a day.
    keys, if given, are the only keys accepted; otherwise any key is.
    quotas is (without a key, with one): a test that crawls back to back grants more.
    """

    def __init__(self, seed=None, clock=time.time, keys=None, initial=30, quotas=None):
        self._random = random.Random(seed)
        self._clock = clock
        self._keys = set(keys) if keys is not None else None
        self._quotas = quotas or (QUOTA_WITHOUT_KEY, QUOTA_WITH_KEY)
        self._lock = threading.Lock()
        self._questions = []  # newest first
        self._next_id = FIRST_QUESTION_ID + self._random.randrange(0, 90_000, 100)
        self._used = {}  # (caller, UTC day) -> requests counted
        self._backoff_until = {}  # (caller, path) -> epoch second
        self._errors = []  # (name, message, http_status) for the next answers
        self._backoff_next = None
        self.fault = None  # one of FAULTS, for every answer until set back to None
        self.requests = []
        start = int(clock()) - 45 * 60
        for n in range(initial):
            self.publish(creation_date=start + 90 * n)

    # What a test does.

    def publish(self, question_id=None, title=None, tags=None, display_name=None, user_id=-1, body=None,
                score=None, creation_date=None, last_edit_date=None, site="stackoverflow"):  # fmt: skip
        """Add a question, newest unless creation_date says otherwise; unset fields are made up.

        user_id None makes an owner without a link, as the API shows a deleted user.
        """
        sample_title, sample_tags, tried, code = self._random.choice(_SAMPLES)
        created = int(self._clock()) if creation_date is None else int(creation_date)
        with self._lock:
            if question_id is None:
                question_id = self._next_id
                self._next_id += self._random.randint(1, 40)
            question = Question(
                question_id=int(question_id),
                title=sample_title if title is None else title,
                tags=sample_tags.split() if tags is None else list(tags),
                display_name=self._random.choice(_AUTHORS) if display_name is None else display_name,
                user_id=self._random.randint(1_000_000, 23_000_000) if user_id == -1 else user_id,
                body=body if body is not None else f"<p>{tried}:</p>\n<pre><code>{code}\n</code></pre>\n",
                score=self._random.choice([0, 0, 0, 1, 2, -1]) if score is None else score,
                creation_date=created,
                last_activity_date=max(created, last_edit_date or created),
                last_edit_date=last_edit_date,
                site=site,
            )
            self._questions.append(question)
            self._questions.sort(key=lambda q: (q.creation_date, q.question_id), reverse=True)
        return question

    def error_next(self, name, message=None, times=1, http_status=400):
        """Answer the next `times` requests with this error wrapper.

        The API sends its error wrappers with HTTP 400 whatever the error_id;
        http_status plays a server or proxy that mirrors it.
        """
        if name not in ERROR_IDS:
            raise ValueError(f"unknown error_name {name!r}; use one of {', '.join(ERROR_IDS)}")
        with self._lock:
            self._errors += [(name, message or f"simulated {name}", http_status)] * times

    def backoff_next(self, seconds):
        """Give the next answer a `backoff` of this many seconds, and hold the caller to it."""
        with self._lock:
            self._backoff_next = int(seconds)

    def quota_remaining(self, key=None, now=None):
        day = datetime.fromtimestamp(self._clock() if now is None else now, UTC).date()
        with self._lock:
            return self._quota_max(key) - self._used.get((key, day), 0)

    def has(self, question_id):
        with self._lock:
            return any(q.question_id == question_id for q in self._questions)

    def requests_for(self, path=QUESTIONS_PATH):
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # What the server does.

    def answer(self, target, headers=None):
        """The Answer to a GET of target (path and query string)."""
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        now = self._clock()
        seen = ApiRequest(parts.path, params, dict(headers or {}), now)
        with self._lock:
            self.requests.append(seen)
        if parts.path == "/robots.txt":
            seen.status = 200
            return Answer(200, gzip.compress(ROBOTS_TXT), "text/plain", {"Content-Encoding": "gzip"})
        try:
            wrapper = self._questions_wrapper(parts.path, params, now)
        except ApiError as error:
            seen.error_name = error.name
            wrapper = {"error_id": ERROR_IDS[error.name], "error_message": str(error)}
            wrapper["error_name"] = error.name
            seen.status = error.http_status
            return self._gzip_json(error.http_status, wrapper)
        seen.status = 200
        return self._faulty(wrapper) if self.fault else self._gzip_json(200, wrapper)

    def _questions_wrapper(self, path, params, now):
        if path != QUESTIONS_PATH:
            raise ApiError("no_method", f"no method found with this name: {path}")
        key = params.get("key") or None
        with self._lock:
            until = self._backoff_until.get((key, path))
            if until is not None and now < until:
                wait = until - now
                raise ApiError("throttle_violation", f"Violation of backoff parameter; wait {wait:.0f} s")
            day = datetime.fromtimestamp(now, UTC).date()
            used = self._used.get((key, day), 0)
            if used >= self._quota_max(key):
                wait = next_reset(now) - now
                message = f"too many requests from this IP, more requests available in {wait:.0f} seconds"
                raise ApiError("throttle_violation", message)
            self._used[(key, day)] = used + 1
            if self._errors:
                raise ApiError(*self._errors.pop(0))
        if key is not None and self._keys is not None and key not in self._keys:
            raise ApiError("bad_parameter", "key is not valid for this request")
        items, has_more = self._select(params)
        with self._lock:
            wrapper = {
                "items": items,
                "has_more": has_more,
                "quota_max": self._quota_max(key),
                "quota_remaining": self._quota_max(key) - self._used[(key, day)],
            }
            if self._backoff_next is not None:
                wrapper["backoff"] = self._backoff_next
                self._backoff_until[(key, path)] = now + self._backoff_next
                self._backoff_next = None
        return wrapper

    def _select(self, params):
        site = params.get("site")
        if not site:
            raise ApiError("bad_parameter", "site is required")
        sort = params.get("sort", "activity")
        if sort not in ("activity", "creation"):
            raise ApiError("bad_parameter", f"sort: the simulator knows activity and creation, not {sort!r}")
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError("bad_parameter", "order must be asc or desc")
        filter_name = params.get("filter", "default")
        if filter_name not in ("default", "withbody"):
            raise ApiError("bad_parameter", f"filter {filter_name!r} is not valid")
        page, pagesize = self._int(params, "page", 1), self._int(params, "pagesize", 30)
        if not 0 <= pagesize <= MAX_PAGESIZE or page < 1:
            raise ApiError("bad_parameter", f"pagesize must be 0 to {MAX_PAGESIZE}, and page 1 or more")
        fromdate, todate = self._int(params, "fromdate", None), self._int(params, "todate", None)
        tagged = [tag for tag in params.get("tagged", "").split(";") if tag]
        with self._lock:
            chosen = [
                q
                for q in self._questions
                if q.site == site
                and (fromdate is None or q.creation_date >= fromdate)
                and (todate is None or q.creation_date <= todate)
                and all(tag in q.tags for tag in tagged)
            ]
        field_name = "creation_date" if sort == "creation" else "last_activity_date"
        chosen.sort(key=lambda q: (getattr(q, field_name), q.question_id), reverse=order == "desc")
        start = (page - 1) * pagesize
        items = [q.item(filter_name == "withbody") for q in chosen[start : start + pagesize]]
        return items, len(chosen) > start + pagesize

    def _faulty(self, wrapper):
        if self.fault == "not_json":
            return Answer(200, gzip.compress(b"<html><body>An error occurred</body></html>"))
        if self.fault == "empty_items":
            return self._gzip_json(200, {**wrapper, "items": [], "has_more": False})
        if self.fault == "oversized":
            padding = [{"question_id": 1, "body": "x" * OVERSIZED_BYTES}]
            return self._gzip_json(200, {**wrapper, "items": padding})
        raise ValueError(f"unknown fault {self.fault!r}; use one of {', '.join(FAULTS)} or None")

    def _quota_max(self, key):
        return self._quotas[0] if key is None else self._quotas[1]

    @staticmethod
    def _int(params, name, default):
        if name not in params:
            return default
        try:
            return int(params[name])
        except ValueError:
            raise ApiError("bad_parameter", f"{name} must be an integer") from None

    @staticmethod
    def _gzip_json(status, wrapper):
        body = gzip.compress(json.dumps(wrapper, ensure_ascii=False).encode("utf-8"))
        return Answer(status, body, headers={"Content-Encoding": "gzip"})


# The fields POST /publish accepts, as publish() names them.
PUBLISH_FIELDS = (
    *("question_id", "title", "tags", "display_name", "body", "score"),
    *("creation_date", "last_edit_date", "site"),
)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def make_server(simulator, host="127.0.0.1", port=0):
    """A threaded HTTP server for the simulator (not started yet)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "stackexchange-sim/1"

        def do_GET(self):
            self._send(simulator.answer(self.path, self.headers))

        def do_POST(self):
            if self.path != "/publish":
                self._send(simulator.answer(self.path, self.headers))
                return
            try:
                fields = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                given = {name: fields[name] for name in PUBLISH_FIELDS if name in fields}
                question = simulator.publish(**given)
            except (ValueError, TypeError, AttributeError) as error:
                self._send(Answer(400, json.dumps({"error": str(error)}).encode(), headers={}))
                return
            self._send(Answer(201, json.dumps(question.item(True)).encode(), headers={}))

        def _send(self, answer):
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the crawler gave up on this request

        def log_message(self, format, *args):
            pass

    return _HTTPServer((host, port), Handler)


def serve_in_thread(simulator, host="127.0.0.1", port=0):
    """Start a server for simulator in a daemon thread; returns (httpd, questions URL without a site)."""
    httpd = make_server(simulator, host, port)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    address, bound = httpd.server_address[:2]
    return httpd, f"http://{address}:{bound}{QUESTIONS_PATH}"


ATOM = "{http://www.w3.org/2005/Atom}"


def mirror_feed(simulator, feed_url, seconds, stop):
    """Every `seconds`, publish the questions of an Atom feed the simulator lacks, so both list the same.

    This is how `make demo` shows one question read from both sources as one document.
    """
    from lxml import etree

    while True:
        try:
            with urllib.request.urlopen(feed_url, timeout=5) as response:
                root = etree.fromstring(response.read(), etree.XMLParser(resolve_entities=False))
        except (OSError, etree.XMLSyntaxError):
            root = None
        for entry in [] if root is None else root.iter(ATOM + "entry"):
            number = int(entry.findtext(ATOM + "id").rsplit("/", 1)[1])
            if simulator.has(number):
                continue
            published = datetime.fromisoformat(entry.findtext(ATOM + "published"))
            simulator.publish(
                question_id=number,
                title=entry.findtext(ATOM + "title"),
                tags=[category.get("term") for category in entry.iter(ATOM + "category")],
                display_name=entry.findtext(f"{ATOM}author/{ATOM}name"),
                body=entry.findtext(ATOM + "summary").strip(),
                creation_date=published.timestamp(),
            )
        if stop.wait(seconds):
            return


def publish_every(simulator, seconds, stop):
    """Publish a made-up question every `seconds` until stop is set."""
    while not stop.wait(seconds):
        simulator.publish()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port (default %(default)s)")
    parser.add_argument(
        "--every", type=float, default=5.0, help="seconds between new questions, 0 for never (default 5)"
    )
    parser.add_argument("--seed", type=int, default=None, help="make the questions reproducible")
    parser.add_argument("--mirror", metavar="FEED_URL", help="also list the questions of this Atom feed")
    args = parser.parse_args(argv)
    simulator = StackExchangeSimulator(seed=args.seed)
    httpd = make_server(simulator, args.host, args.port)
    host, port = httpd.server_address[:2]
    print(f"http://{host}:{port}{QUESTIONS_PATH}?site=stackoverflow", flush=True)
    stop = threading.Event()
    if args.every > 0:
        threading.Thread(target=publish_every, args=(simulator, args.every, stop), daemon=True).start()
    if args.mirror:
        threading.Thread(target=mirror_feed, args=(simulator, args.mirror, 2, stop), daemon=True).start()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
