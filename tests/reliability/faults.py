"""The feed faults of scenario 1: what each serves, and what the scheduler's line must say.

Every fault has a path of its own on one FeedServer (connection refused has a
port of its own) and five questions of its own, so that what was stored can
be checked feed by feed. A fault's reply replaces the healthy feed while it
is injected; healing serves the five questions as a plain, valid feed.
"""

import re
import socket
import zlib
from dataclasses import dataclass, field

from tools.sim.atom import render_feed, sample_entries, xml_escape
from tools.sim.feed_server import FeedServer, Reply

ENTRIES_PER_FEED = 5
# Ten levels of ten references to 30 characters: 300 GB if it were ever expanded.
BOMB_LEVELS = 10
# The gzip bomb: this much whitespace, compressed about a thousandfold.
GZIP_BOMB_BYTES = 64 * 1024 * 1024
# A secret on disk that an external entity points at; it must never be read.
SECRET = "TOP-SECRET-4d1e"
LATIN_1_ATOM = "application/atom+xml; charset=ISO-8859-1"
# Titles in more than Latin-1, to tell a right reading from mojibake.
UNICODE_TITLES = (
    "Café crème \u2013 naïve \u201csmart quotes\u201d in a régex",
    "Ünïcödé façade: Straße, æøå and ½ cup",
    "Japanese 日本語 and emoji 🚀 in a title",
    "Ελληνικά and кириллица side by side",
    "Zürich\u2019s \u201crésumé\u201d parser chokes on ©",
)


@dataclass
class Fault:
    order: str  # the row of docs/RELIABILITY.md: "1a", "1b", ...
    name: str  # also its path
    injected: str  # for the report
    names: str  # a regular expression that each crawl line of the faulty feed must match
    entries: list = field(default_factory=list)
    reply: Reply | None = None  # None: the connection is refused
    url: str = ""  # set by FaultyFeeds

    def healthy_feed(self):
        return render_feed(self.entries)

    def names_it(self, crawl):
        return re.search(self.names, crawl.text) is not None


def _entries(number, titles=()):
    """The five questions of fault number: distinct ids, and titles if given."""
    entries = sample_entries(ENTRIES_PER_FEED, first_id=79_500_000 + 1000 * number)
    for entry, title in zip(entries, titles, strict=False):
        entry.title = title
    return entries


def _truncated(document):
    """The document cut in the middle of its third entry."""
    starts = [match.start() for match in re.finditer(rb"<entry>", document)]
    return document[: starts[2] + 80]


def _with_dtd(entries, declarations, title_tail):
    """The feed with a DTD of declarations, and title_tail appended to its newest entry's title."""
    document = render_feed(entries, prolog=f"<!DOCTYPE feed [{declarations}]>\n")
    title = f'<title type="text">{xml_escape(entries[0].title)}'.encode()
    return document.replace(title, title + title_tail.encode(), 1)


def _bomb(entries):
    laughs = '<!ENTITY l0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, BOMB_LEVELS + 1)
    )
    return _with_dtd(entries, laughs, f" &l{BOMB_LEVELS};")


def _gzip_bomb(entries):
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # a gzip stream
    chunk = b" " * (1024 * 1024)
    parts = [compressor.compress(render_feed(entries)[:-7])]  # the document, its "</feed>" last
    parts += [compressor.compress(chunk) for _ in range(GZIP_BOMB_BYTES // len(chunk))]
    parts.append(compressor.compress(b"</feed>") + compressor.flush())
    return b"".join(parts)


def _mislabelled(entries):
    """UTF-8 bytes that both the XML declaration and Content-Type call ISO-8859-1."""
    return render_feed(entries).replace(b'encoding="utf-8"', b'encoding="ISO-8859-1"')


def catalogue(secret_path, probe_url):
    """Every fault, in report order. secret_path is a file an external entity names;
    probe_url a URL another names, which must never be requested."""
    faults = []

    def add(name, injected, names, reply_of=None, titles=()):
        fault = Fault(f"1{chr(ord('a') + len(faults))}", name, injected, names, _entries(len(faults), titles))
        fault.reply = reply_of(fault.entries) if reply_of else None
        faults.append(fault)

    add(
        "connection-refused",
        "the feed's port refuses connections",
        r"fetch failed: DownloadConnectionRefusedError: Connection was refused",
    )
    add(
        "hang-past-the-timeout",
        "the server accepts the request and answers nothing for 30 s, longer than the download timeout (6 s)",
        r"DownloadTimeoutError: Getting \S+ took longer than",
        lambda entries: Reply(body=render_feed(entries), delay=30),
    )
    add(
        "http-500",
        "HTTP 500 with a text body",
        r"\bHTTP 500\b",
        lambda entries: Reply(status=500, body=b"Internal Server Error", content_type="text/plain"),
    )
    add(
        "http-502-html",
        "HTTP 502 with an HTML error page",
        r"\bHTTP 502\b",
        lambda entries: Reply(
            status=502, body=b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
        ),
    )
    add(
        "http-429-retry-after",
        "HTTP 429 with `Retry-After: 2`",
        r"HTTP 429; not fetching it again before \d\d:\d\d:\d\d UTC",
        lambda entries: Reply(status=429, body=b"Too Many Requests", headers={"Retry-After": "2"}),
    )
    add(
        "login-page",
        "HTTP 200 with an HTML login page",
        r"not an Atom feed \(HTTP 200, Content-Type text/html.*root element <html>\)",
        lambda entries: Reply(
            body=b"<!DOCTYPE html><html><head><title>Log in</title></head>"
            b"<body><form action='/login'><input name='user'></form></body></html>",
            content_type="text/html; charset=utf-8",
        ),
    )
    add(
        "empty-body",
        "HTTP 200 with an empty body",
        r"not an Atom feed \(HTTP 200, .*an empty body\)",
        lambda entries: Reply(body=b""),
    )
    add(
        "truncated-xml",
        "the feed cut off in the middle of its third entry",
        r"the document is truncated; storing its 2 complete entries",
        lambda entries: Reply(body=_truncated(render_feed(entries))),
    )
    add(
        "xxe",
        "a DOCTYPE whose external entities name a secret file and a URL, used in a title",
        r"its DTD declares 2 entities, and entity references are never expanded",
        lambda entries: Reply(
            body=_with_dtd(
                entries,
                f'<!ENTITY xxe SYSTEM "file://{secret_path}"><!ENTITY probe SYSTEM "{probe_url}">',
                " &xxe;&probe;",
            )
        ),
    )
    add(
        "billion-laughs",
        f"a {BOMB_LEVELS}-level entity bomb (300 GB if expanded) in the newest title",
        rf"the document is malformed; .*its DTD declares {BOMB_LEVELS + 1} entities",
        lambda entries: Reply(body=_bomb(entries)),
    )
    add(
        "over-the-size-limit",
        "a 5 MiB body, over DOWNLOAD_MAXSIZE (4 MiB)",
        r"fetch failed: DownloadCancelledError: Expected to receive \d+ bytes which is larger than "
        r"download max size \(4194304\)",
        lambda entries: Reply(body=render_feed(entries) + b"<!--" + b"x" * (5 * 1024 * 1024) + b"-->"),
    )
    add(
        "wrong-charset",
        "a UTF-8 body whose XML declaration and Content-Type both say ISO-8859-1",
        r"the response says its encoding is cp1252, but the body is UTF-8; read as UTF-8",
        lambda entries: Reply(
            body=_mislabelled(entries), content_type="application/atom+xml; charset=ISO-8859-1"
        ),
        titles=UNICODE_TITLES,
    )
    add(
        "duplicate-ids",
        "a feed that lists two of its entries twice",
        r"HTTP 200, \d+ new, [1-9]\d* duplicate",
        lambda entries: Reply(body=render_feed([*entries, *entries[:2]])),
    )
    add(
        "304-without-validators",
        "HTTP 304 with no body, to a request that sent no validators",
        r"HTTP 304, 0 new, 0 duplicate",
        lambda entries: Reply(status=304),
    )
    add(
        "gzip-bomb",
        f"`Content-Encoding: gzip`, {GZIP_BOMB_BYTES // 2**20} MiB once decompressed",
        r"fetch failed: IgnoreRequest: .*exceeded DOWNLOAD_MAXSIZE \(4194304 B\) during decompression",
        lambda entries: Reply(body=_gzip_bomb(entries), headers={"Content-Encoding": "gzip"}),
    )
    add(
        "redirect-loop",
        "a 302 to itself",
        r"fetch failed: IgnoreRequest: max redirections reached",
        lambda entries: Reply(status=302, body=b"", headers={"Location": "/redirect-loop"}),
    )
    add(
        "trickle",
        "the feed sent 1 KiB every 0.4 s, slower than the crawl's deadline",
        r"DownloadTimeoutError: Getting \S+ took longer than",
        lambda entries: Reply(body=render_feed(entries), trickle=0.4),
    )
    add(
        "connection-closed-mid-body",
        "a Content-Length 1000 bytes longer than the body, then the connection closed",
        r"fetch failed: ResponseDataLossError",
        lambda entries: Reply(body=render_feed(entries), length=len(render_feed(entries)) + 1000),
    )
    return faults


class RefusingPort:
    """A feed server on a port of its own, that refuse() turns into a port that refuses
    connections (bound, not listening) until heal() serves on it again."""

    def __init__(self):
        self.server = FeedServer().start()
        self.port = int(self.server.url("").rsplit(":", 1)[1])
        self._socket = None

    def url(self, path):
        return self.server.url(path)

    def refuse(self):
        self.server.stop()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self.port))

    def heal(self):
        self._socket.close()
        self.server = FeedServer(port=self.port).start()

    def close(self):
        if self._socket is not None:
            self._socket.close()
        self.server.stop()


class FaultyFeeds:
    """Every fault's feed: healthy but empty, then faulty, then healed, one call each."""

    PROBE = "/xxe-probe"  # what an external entity points at: never to be requested

    def __init__(self, secret_path):
        self.server = FeedServer().start()
        self.refusing = RefusingPort()
        self.faults = catalogue(secret_path, self.server.url(self.PROBE))
        for fault in self.faults:
            fault.url = self._server(fault).serve_feed(f"/{fault.name}", render_feed([]))

    def _server(self, fault):
        return self.refusing.server if fault.reply is None else self.server

    def inject(self):
        for fault in self.faults:
            if fault.reply is None:
                self.refusing.refuse()
            else:
                self.server.serve(f"/{fault.name}", fault.reply)

    def heal(self):
        for fault in self.faults:
            if fault.reply is None:
                self.refusing.heal()
            self._server(fault).serve_feed(f"/{fault.name}", fault.healthy_feed())

    def requests(self, fault):
        """The requests for the fault's feed (for the connection-refused feed, those since it healed)."""
        return self._server(fault).requests_for(f"/{fault.name}")

    def close(self):
        self.server.stop()
        self.refusing.close()
