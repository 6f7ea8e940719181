"""Two writers insert 500 questions while 20 pages poll /update: every page
ends with exactly the stored questions, none missing and none twice."""

import random
import re
import threading
import time

import pytest

from sofeed.store import VISIBILITY_LAG, Store, StrictClock
from tests.helpers import question_fields

# The full tier: a minute or more of 22 threads against the database.
pytestmark = pytest.mark.check

WRITERS, PER_WRITER, POLLERS = 2, 250, 20
POLL_SECONDS = 0.05
REFRESH_SECONDS = 0.02


class Page:
    """What the page's script does: cursor = largest fetched received, dedupe by id."""

    def __init__(self, client):
        self.client = client
        html = client.get("/").text
        self.cursor = float(re.search(r'data-cursor="([^"]+)"', html).group(1))
        self.shown = re.findall(r'<li class="question" data-id="([0-9a-f]+)"', html)
        self.seen = set(self.shown)
        self.received = {}  # id -> every fetched it came with
        self.errors = []

    def poll(self):
        response = self.client.get(f"/update?timestamp={self.cursor!r}")
        if response.status_code != 200:
            self.errors.append(response.status_code)
            return
        for question in response.json:
            self.received.setdefault(question["id"], []).append(question["fetched"])
            self.cursor = max(self.cursor, question["fetched"])
            if question["id"] not in self.seen:
                self.seen.add(question["id"])
                self.shown.append(question["id"])


def write(mongo_uri, database_name, writer, started):
    """Insert PER_WRITER questions through a Store of its own, as another process would."""
    connection = Store.connect(mongo_uri, database_name)
    store = Store(connection.client, database_name, clock=StrictClock())
    pause = random.Random(writer)
    started.wait()
    try:
        for n in range(PER_WRITER):
            entry_id = f"https://stackoverflow.com/q/{writer}{n:04d}"
            store.save_question(question_fields(entry_id=entry_id, title=f"Writer {writer}, question {n}"))
            time.sleep(pause.uniform(0, 0.004))
    finally:
        store.close()


def test_twenty_pollers_each_receive_every_question_of_two_concurrent_writers_exactly_once(
    app, mongo_uri, database_name, earlier_store
):
    for n in range(20):  # already there when the pages load
        earlier_store.save_question(question_fields(entry_id=f"https://stackoverflow.com/q/9{n:04d}"))
    app.config.update(REFRESH_SECONDS=REFRESH_SECONDS, STATUS_SECONDS=1.0)
    pages = [Page(app.test_client()) for _ in range(POLLERS)]
    assert all(len(page.shown) == 20 for page in pages)

    started, writing_done = threading.Event(), threading.Event()

    def keep_polling(page):
        started.wait()
        while not writing_done.is_set():
            page.poll()
            time.sleep(POLL_SECONDS)

    writers = [
        threading.Thread(target=write, args=(mongo_uri, database_name, writer, started))
        for writer in range(1, WRITERS + 1)
    ]
    pollers = [threading.Thread(target=keep_polling, args=(page,)) for page in pages]
    for thread in writers + pollers:
        thread.start()
    started.set()
    for thread in writers:
        thread.join()
    writing_done.set()
    for thread in pollers:
        thread.join()

    # The last question is handed out once VISIBILITY_LAG has passed and a refresh saw it.
    stored = {doc["_id"]: doc["fetched"].timestamp() for doc in earlier_store.questions.find({}, ["fetched"])}
    settled = max(stored.values()) + VISIBILITY_LAG.total_seconds() + REFRESH_SECONDS
    time.sleep(max(0.0, settled - time.time()) + 0.05)
    for page in pages:
        page.poll()

    assert len(stored) == 20 + WRITERS * PER_WRITER
    for page in pages:
        assert page.errors == []
        assert sorted(page.shown) == sorted(stored)
        # The server hands a question out twice only if a slow writer re-stamped it later.
        for fetched in page.received.values():
            assert fetched == sorted(set(fetched))
