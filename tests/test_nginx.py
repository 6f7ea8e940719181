"""deploy/nginx/sofeed.conf in Debian's nginx, in front of the real gunicorn, the scheduler and FerretDB."""

import gzip
import json
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from sofeed.store import Store
from tests.browser import launch_chromium, push_a_question
from tests.nginx import STATIC, Nginx
from tests.processes import FeedSimulator, WebApp, http, start_scheduler, stop, wait_until

pytestmark = pytest.mark.check

SLOW_CLIENTS = 200


class Site:
    def __init__(self, mongo_uri, folder):
        self.database = f"sofeed_nginx_{uuid.uuid4().hex[:12]}"
        self.store = Store.connect(mongo_uri, self.database)
        self.feed = FeedSimulator(every=1.5)
        self.access_log = folder / "gunicorn-access.log"
        self.scheduler_log = open(folder / "scheduler.log", "w")  # noqa: SIM115 (closed in close)
        self.web_log = open(folder / "gunicorn.log", "w")  # noqa: SIM115
        self.scheduler = start_scheduler(self.feed.feed_url, mongo_uri, self.database, self.scheduler_log)
        self.web = self.nginx = None
        try:
            self.web = WebApp(mongo_uri, self.database, self.web_log, ACCESS_LOG=self.access_log)
            self.nginx = Nginx([urlsplit(self.web.url).netloc])
            self.url = self.nginx.url
            wait_until(lambda: len(http(self.url + "/update")[1]) >= 30, timeout=60, what="the first crawl")
        except BaseException:
            self.close()
            raise

    def gunicorn_saw(self, text):
        return [line for line in self.access_log.read_text().splitlines() if text in line]

    def close(self):
        for part in (self.nginx, self.web):
            if part is not None:
                part.stop()
        stop(self.scheduler)
        self.feed.stop()
        self.store.client.drop_database(self.database)
        self.store.close()
        self.scheduler_log.close()
        self.web_log.close()


@pytest.fixture(scope="module")
def site(mongo_uri, tmp_path_factory):
    site = Site(mongo_uri, tmp_path_factory.mktemp("nginx"))
    yield site
    site.close()


def raw_get(url, path, headers=(), source="127.0.0.1"):
    """(status line, headers dict, body bytes) of one GET on a fresh connection from source."""
    parts = urlsplit(url)
    with socket.create_connection(
        (parts.hostname, parts.port), timeout=10, source_address=(source, 0)
    ) as sock:
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close", *headers]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    found = {name.strip().lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)}
    if found.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, found, body


def dechunk(body):
    out = b""
    while True:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, body = out + rest[:size], rest[size + 2 :]


def test_nginx_serves_the_page_with_versioned_static_links(site):
    status, page = http(site.url + "/")
    assert status == 200
    assert 'href="/static/style.css?v=' in page
    assert 'src="/static/app.js?v=' in page


def test_nginx_gzips_the_json_of_update(site):
    status, headers, body = raw_get(site.url, "/update?timestamp=0", ["Accept-Encoding: gzip"])
    assert " 200 " in status
    assert headers["content-encoding"] == "gzip"
    questions = json.loads(gzip.decompress(body))
    assert len(questions) >= 30
    assert {"id", "title", "fetched"} <= set(questions[0])


def test_static_files_come_from_nginx_with_a_long_cache_lifetime_and_never_reach_gunicorn(site):
    status, page = http(site.url + "/")
    script = page.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/static/app.js?v=")
    status, headers, body = raw_get(site.url, script)
    assert " 200 " in status
    assert "immutable" in headers["cache-control"]
    assert "max-age=31536000" in headers["cache-control"]
    assert body == (STATIC / "app.js").read_bytes()
    assert site.gunicorn_saw("GET /")
    assert not site.gunicorn_saw("/static/app.js")


def test_gunicorn_sees_the_client_address_nginx_saw_not_one_the_client_made_up(site):
    raw_get(
        site.url, "/update?timestamp=9e9&from=other", ["X-Forwarded-For: 203.0.113.9"], source="127.0.0.2"
    )
    [line] = wait_until(lambda: site.gunicorn_saw("from=other"), what="gunicorn logging the request")
    assert line.startswith("127.0.0.2 ")
    assert "203.0.113.9" not in line


def test_metrics_are_not_served_through_nginx_but_are_on_gunicorn(site):
    status, _ = http(site.url + "/metrics")
    assert status == 404
    status, text = http(site.web.url + "/metrics")
    assert status == 200
    assert "sofeed_crawls_total" in text


def test_a_question_is_pushed_through_nginx_to_chromium_without_a_reload(site):
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            requests = push_a_question(
                page, site.url + "/", lambda title: site.feed.publish(title=title), 20_000
            )
            assert "/events" in requests
            assert "/update" not in requests
        finally:
            browser.close()


def test_two_hundred_slow_clients_do_not_disturb_an_ordinary_one(site):
    address = (urlsplit(site.url).hostname, urlsplit(site.url).port)
    slow = []
    try:
        # Half send their headers a byte at a time and never finish; half ask and never read.
        for number in range(SLOW_CLIENTS):
            sock = socket.create_connection(address, timeout=10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            if number % 2:
                sock.sendall(b"GET /update?timestamp=0&slow=reader HTTP/1.1\r\nHost: x\r\n\r\n")
            else:
                sock.sendall(b"GET /?slow=writer HTTP/1.1\r\nHost: x\r\nX-")
            slow.append(sock)
        answers = []
        for _ in range(20):
            status, questions = http(site.url + "/update?timestamp=0")
            answers.append((status, len(questions) >= 30))
            for sock in slow[::2]:
                sock.send(b"a")  # still writing its headers
            time.sleep(0.05)
        status, page = http(site.url + "/")
    finally:
        for sock in slow:
            sock.close()
    assert answers == [(200, True)] * 20
    assert status == 200
    assert "questions" in page
    # nginx holds the slow writers itself: gunicorn never sees their requests.
    assert site.gunicorn_saw("slow=writer") == []
