import json
import socket

import pytest

from tests.cache_helpers import Clock
from tests.helpers import save_numbered
from webapp import create_app, db
from webapp.filters import QuestionFilter
from webapp.stream import KEEPALIVE, events_after, stop_streams


def read_events(response, count):
    """The first count events of a streamed response, as (name, data, id); then it is closed."""
    events, buffer = [], b""
    chunks = iter(response.response)
    while len(events) < count:
        buffer += next(chunks)
        while b"\n\n" in buffer and len(events) < count:
            block, buffer = buffer.split(b"\n\n", 1)
            lines = [line for line in block.decode().splitlines() if not line.startswith(":")]
            fields = dict(line.split(": ", 1) for line in lines)
            if "event" in fields:
                events.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    response.close()
    return events


def stream(client, query="", **headers):
    return client.get("/events" + query, headers=headers, buffered=False)


def test_the_stream_pushes_what_update_answers_with_the_newest_fetched_as_its_id(client, earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(3)]
    response = stream(client, "?timestamp=0")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    [(name, questions, event_id)] = read_events(response, 1)
    assert name == "questions"
    assert questions == client.get("/update?timestamp=0").json
    assert [q["id"] for q in questions] == [doc["_id"] for doc in reversed(docs)]
    assert float(event_id) == questions[0]["fetched"]


def test_the_stream_pushes_a_question_saved_after_it_opened(client, earlier_store):
    first = save_numbered(earlier_store, 1)
    response = stream(client, f"?timestamp={first['fetched'].timestamp()}")
    later = save_numbered(earlier_store, 2)
    [(name, questions, _)] = read_events(response, 1)
    assert (name, [q["id"] for q in questions]) == ("questions", [later["_id"]])


def test_a_reconnecting_browser_resumes_from_last_event_id_not_from_the_url(client, earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(4)]
    resume_at = repr(round(docs[1]["fetched"].timestamp(), 3))
    response = stream(client, "?timestamp=0", **{"Last-Event-ID": resume_at})
    [(_, questions, _)] = read_events(response, 1)
    assert [q["id"] for q in questions] == [docs[3]["_id"], docs[2]["_id"]]


@pytest.mark.parametrize("query", ["?timestamp=abc", "?timestamp=-1", "?timestamp=1&timestamp=2"])
def test_a_bad_cursor_is_refused_with_400_json(client, query):
    response = stream(client, query)
    assert response.status_code == 400
    assert "error" in response.json


def test_streams_beyond_the_limit_get_503_and_a_closed_stream_frees_its_place(mongo_uri, database_name):
    app = create_app({"MONGO_URI": mongo_uri, "MONGO_DATABASE": database_name, "STREAMS_PER_PROCESS": 2})
    client = app.test_client()
    try:
        first, second = stream(client), stream(client)
        assert (first.status_code, second.status_code) == (200, 200)
        refused = stream(client)
        assert refused.status_code == 503
        assert "poll /update" in refused.json["error"]
        first.close()
        third = stream(client)
        assert third.status_code == 200
        second.close()
        third.close()
    finally:
        db.close(app)


def test_a_stream_ends_after_stream_seconds(mongo_uri, database_name):
    app = create_app({"MONGO_URI": mongo_uri, "MONGO_DATABASE": database_name, "STREAM_SECONDS": 0.3})
    try:
        body = b"".join(stream(app.test_client()).response)
        assert body.startswith(b"retry: ")
    finally:
        db.close(app)


def test_a_stopping_app_ends_its_streams_and_sends_new_ones_away_to_reconnect(app, earlier_store):
    client = app.test_client()
    save_numbered(earlier_store, 1)
    open_stream = stream(client)
    chunks = iter(open_stream.response)
    assert next(chunks).startswith(b"retry: ")
    assert b"event: questions" in next(chunks)
    stop_streams(app)
    assert list(chunks) == []
    open_stream.close()
    # A stream that opens now ends at once: the browser reconnects, to a process that is not stopping.
    late = stream(client)
    assert late.status_code == 200
    assert b"".join(late.response) == b"retry: 1000\n\n"


def test_the_stream_says_unavailable_when_the_database_does_not_answer(unused_port):
    app = create_app({"MONGO_URI": f"mongodb://127.0.0.1:{unused_port}", "MONGO_TIMEOUT_MS": 200})
    try:
        [(name, data, _)] = read_events(stream(app.test_client()), 1)
        assert name == "unavailable"
        assert "database" in data["error"]
    finally:
        db.close(app)


@pytest.fixture
def unused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_filtered_stream_pushes_only_the_questions_its_tags_let_through(client, earlier_store):
    first = save_numbered(earlier_store, 1, tags=["python"])
    response = stream(client, f"?timestamp={first['fetched'].timestamp()}&tags=Kubernetes")
    save_numbered(earlier_store, 2, tags=["python"])
    wanted = save_numbered(earlier_store, 3, tags=["kubernetes", "helm"])
    [(name, questions, event_id)] = read_events(response, 1)
    assert (name, [q["id"] for q in questions]) == ("questions", [wanted["_id"]])
    assert float(event_id) == pytest.approx(wanted["fetched"].timestamp(), abs=1e-3)


def test_a_stream_with_a_bad_filter_is_refused_with_the_reason(client):
    response = client.get("/events?timestamp=0&tags=" + ",".join(f"t{n}" for n in range(21)))
    assert response.status_code == 400
    assert "tags" in response.json["error"]


class StillEdition:
    """An edition with nothing new to tell, whose wait moves a fake clock on instead of sleeping."""

    def __init__(self, clock):
        self.snapshot, self.clock = object(), clock
        self.ended = self
        self.new_questions_at = set()

    def wait(self, timeout):
        """Until timeout, or until questions arrive (which ends an edition) if sooner."""
        until = self.clock.now + timeout
        self.clock.now = min([at for at in self.new_questions_at if self.clock.now < at <= until] or [until])

    def questions_event(self, cursor, wanted):
        if round(self.clock.now, 6) in self.new_questions_at:
            return b"event: questions\n\n", cursor
        return None, cursor


class OneEditionFanout:
    def __init__(self, edition):
        self.edition, self.stopping = edition, False

    def open(self):
        return self.edition

    def current(self):
        return self.edition

    def close(self):
        pass


def keepalive_times(phase, new_questions_at=()):
    """When a 50 s stream with this phase sends keepalives, given questions arriving at those times."""
    clock = Clock(1000.0)
    edition = StillEdition(clock)
    edition.new_questions_at = {1000.0 + at for at in new_questions_at}
    chunks = events_after(OneEditionFanout(edition), 0.0, QuestionFilter(), 50.0, phase=phase, clock=clock)
    return [round(clock.now - 1000.0, 6) for chunk in chunks if chunk == KEEPALIVE]


def test_a_streams_keepalives_keep_their_phase_and_period_whatever_else_it_sends():
    assert keepalive_times(0.25) == [3.75, 18.75, 33.75, 48.75]
    assert keepalive_times(0.25, new_questions_at=[3.75, 10.0]) == [3.75, 18.75, 33.75, 48.75]
    # So streams handed the same questions at the same moment do not all fall due together after.
    assert keepalive_times(0.5, new_questions_at=[10.0]) == [7.5, 22.5, 37.5]
