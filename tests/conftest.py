"""Shared fixtures: a real MongoDB-compatible server, a fresh database per
test, the local feed server, and `scrapy crawl sofeed` as a subprocess.

The server is a private FerretDB (SQLite backend) started once per test run
on a free port, with its data in a temporary folder. Set MONGO_URI to run the
suite against another server, such as a real MongoDB, instead.
"""

import os
import subprocess
import sys
import uuid

import pytest
from pymongo import MongoClient

from sofeed.store import Store
from tests.helpers import ROOT, CrawlResult
from tests.processes import PrivateFerretDB, stop
from tools import localdb
from tools.sim.feed_server import FeedServer


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
        stop(process)


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
def private_ferretdb(tmp_path):
    """A FerretDB of the test's own, which it may stop and start again on the same port."""
    server = PrivateFerretDB(tmp_path / "ferretdb")
    yield server
    server.stop()
    server.log.close()


@pytest.fixture
def feed_server():
    server = FeedServer().start()
    yield server
    server.stop()


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


# The web app (webapp/): an app on the test's database, its test client, and
# a Store that stamps questions as if they were saved a while ago.


@pytest.fixture
def app(mongo_uri, database_name):
    """The web app on this test's database, re-reading it on every request."""
    from webapp import create_app, db

    app = create_app(
        {
            "TESTING": True,
            "MONGO_URI": mongo_uri,
            "MONGO_DATABASE": database_name,
            "REFRESH_SECONDS": 0,
            "STATUS_SECONDS": 0,
        }
    )
    yield app
    db.close(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def earlier_store(mongo_uri, database_name):
    """A Store whose questions are stamped 10 s in the past, well beyond VISIBILITY_LAG,
    so the web app hands them out at once."""
    import time

    from sofeed.store import StrictClock

    writer = Store.connect(mongo_uri, database_name)
    store = Store(writer.client, database_name, clock=StrictClock(now=lambda: time.time() - 10))
    yield store
    store.close()


# The long run (tests/reliability/test_long_run.py, marked long_run) crawls
# for five minutes in the background of the whole session; its test runs last,
# waits for the cycles to be done, and checks what was measured meanwhile.


def pytest_collection_modifyitems(items):
    """Run the long-run test last (a stable sort keeps every other test in place)."""
    items.sort(key=lambda item: item.get_closest_marker("long_run") is not None)


@pytest.fixture(scope="session", autouse=True)
def long_run(request, tmp_path_factory):
    """The long run, started with the session when its test was collected; None otherwise."""
    if not any(item.get_closest_marker("long_run") for item in request.session.items):
        yield None
        return
    from tests.reliability.long_run import LongRun

    run = LongRun(tmp_path_factory.mktemp("long_run"))
    yield run
    run.stop()
