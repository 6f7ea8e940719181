"""Shared fixtures: a real MongoDB-compatible server, a fresh database per
test, the local feed server, and helpers to run the spider.

The server is a private FerretDB (SQLite backend) started once per test run
on a free port, with its data in a temporary folder. Set MONGO_URI to run the
suite against another server, such as a real MongoDB, instead.
"""

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymongo import MongoClient
from scrapy import Request
from scrapy.http import XmlResponse
from scrapy.utils.test import get_crawler

from sofeed import settings as project_settings
from sofeed.middlewares import FEED_META
from sofeed.spiders.sofeed import SofeedSpider
from sofeed.store import Store
from tests.feed_server import FeedServer
from tools import localdb

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    """The server for this test run: MONGO_URI if set, else a private FerretDB."""
    if os.environ.get("MONGO_URI"):
        yield os.environ["MONGO_URI"]
        return
    folder = tmp_path_factory.mktemp("ferretdb")
    with open(folder / "ferretdb.log", "w") as log:
        process, uri = localdb.launch(folder / "data", log=log, tied=True)
        yield uri
        process.terminate()
        process.wait(timeout=10)
        process.stdin.close()


@pytest.fixture
def database_name(mongo_uri):
    """A database of its own for each test, dropped afterwards."""
    name = f"sofeed_test_{uuid.uuid4().hex[:12]}"
    yield name
    client = MongoClient(mongo_uri)
    client.drop_database(name)
    client.close()


@pytest.fixture
def store(mongo_uri, database_name):
    store = Store.connect(mongo_uri, database_name)
    yield store
    store.close()


@pytest.fixture
def feed_server():
    server = FeedServer().start()
    yield server
    server.stop()


def fixture_bytes(name):
    return (FIXTURES / name).read_bytes()


def question_fields(**changes):
    """A question as the spider yields it, with some fields changed."""
    fields = {
        "entry_id": "https://stackoverflow.com/q/77635559",
        "question_id": 77635559,
        "title": "Kubernetes ingress returns 404 behind a cloud load balancer",
        "link": "https://stackoverflow.com/questions/77635559/kubernetes-ingress-returns-404",
        "author": "Dana W.",
        "author_uri": "https://stackoverflow.com/users/2290917",
        "tags": ["kubernetes", "kubernetes-ingress"],
        "rank": 1,
        "published": datetime(2023, 12, 10, 16, 39, 44, tzinfo=UTC),
        "updated": datetime(2023, 12, 10, 16, 45, 2, tzinfo=UTC),
        "summary_text": "My ingress answers 404 for every path once the load balancer is in front.",
    }
    return {**fields, **changes}


def make_spider(**settings):
    """A sofeed spider on a crawler with the project's settings, plus overrides."""
    values = {name: getattr(project_settings, name) for name in dir(project_settings) if name.isupper()}
    crawler = get_crawler(SofeedSpider, settings_dict={**values, **settings})
    spider = SofeedSpider.from_crawler(crawler)
    crawler.spider = spider
    return spider


def feed_response(body, url="https://stackoverflow.com/feeds", status=200, headers=None, cls=XmlResponse):
    """The response Scrapy would hand the spider for a feed request."""
    request = Request(url, meta={FEED_META: url})
    return cls(url, body=body, status=status, headers=headers or {}, request=request)


def parse(spider, response):
    """Run the callback Scrapy calls for a feed response (XMLFeedSpider._parse)."""
    return list(spider._parse(response))


@dataclass
class CrawlResult:
    returncode: int
    log: str

    def stat(self, name):
        """A counter from the stats Scrapy dumps at the end, 0 if absent."""
        match = re.search(rf"'{re.escape(name)}': (\d+)", self.log)
        return int(match.group(1)) if match else 0

    @property
    def errors(self):
        return [line for line in self.log.splitlines() if "] ERROR: " in line]


@pytest.fixture
def crawl(mongo_uri, database_name):
    """Run `scrapy crawl sofeed` as a real subprocess from the repo root."""

    def run(*feed_urls, timeout=60, **settings):
        command = [sys.executable, "-m", "scrapy", "crawl", "sofeed", "-a", "feed_url=" + ",".join(feed_urls)]
        settings = {"MONGO_URI": mongo_uri, "MONGO_DATABASE": database_name, **settings}
        for name, value in settings.items():
            command += ["-s", f"{name}={value}"]
        finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        return CrawlResult(finished.returncode, finished.stderr)

    return run
