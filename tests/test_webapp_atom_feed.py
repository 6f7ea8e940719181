import threading
import uuid

import feedparser
import pytest
from lxml import etree
from werkzeug.serving import make_server

from sofeed.store import Store
from tests.helpers import save_numbered
from webapp import create_app, db

HOSTILE = {
    "title": '<img src=x onerror="alert(1)"> & </title>]]>',
    "summary_text": "<script>alert(2)</script> &amp; \ufffe end",
    "author": '"><b>me</b>',
    "tags": ["c++", "<tag>"],
}


def test_the_feed_is_atom_that_feedparser_reads_without_complaint(client, earlier_store):
    docs = [save_numbered(earlier_store, n) for n in range(3)]
    response = client.get("/feed.atom")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.data)
    assert parsed.version == "atom10"
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.id == "http://localhost/feed.atom"
    assert [link.href for link in parsed.feed.links if link.rel == "self"] == ["http://localhost/feed.atom"]
    assert parsed.feed.updated == "2023-12-10T16:45:02Z"
    newest = parsed.entries[0]
    assert [entry.id for entry in parsed.entries] == [doc["entry_id"] for doc in reversed(docs)]
    assert newest.title == "Question 2"
    assert newest.link == docs[2]["link"]
    assert (newest.author_detail.name, newest.author_detail.href) == (
        "Dana W.",
        "https://stackoverflow.com/users/2290917",
    )
    assert [tag.term for tag in newest.tags] == ["kubernetes", "kubernetes-ingress"]
    assert (newest.published, newest.updated) == ("2023-12-10T16:39:44Z", "2023-12-10T16:45:02Z")
    assert newest.summary == docs[2]["summary_text"]


def test_the_feed_holds_the_newest_50_matching_questions(client, earlier_store):
    docs = [save_numbered(earlier_store, n, tags=["go" if n % 3 else "rust"]) for n in range(160)]
    everything = feedparser.parse(client.get("/feed.atom").data)
    assert len(everything.entries) == 50
    rust = feedparser.parse(client.get("/feed.atom?tags=RUST&q=question").data)
    expected = [doc["entry_id"] for doc in reversed(docs) if doc["tags"] == ["rust"]][:50]
    assert [entry.id for entry in rust.entries] == expected
    assert rust.feed.id == "http://localhost/feed.atom?tags=rust&q=question"


def test_hostile_text_is_escaped_once_and_the_document_stays_well_formed(client, earlier_store):
    save_numbered(earlier_store, 1, link="javascript:alert(3)", **HOSTILE)
    body = client.get("/feed.atom").data
    root = etree.fromstring(body)  # raises if the document were not well-formed
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entry = root.find("a:entry", ns)
    assert entry.findtext("a:title", namespaces=ns) == HOSTILE["title"]
    assert entry.findtext("a:summary", namespaces=ns) == "<script>alert(2)</script> &amp;  end"
    assert entry.findtext("a:author/a:name", namespaces=ns) == HOSTILE["author"]
    assert [c.get("term") for c in entry.findall("a:category", ns)] == HOSTILE["tags"]
    assert entry.find("a:link", ns) is None  # a javascript: link is left out
    assert b"<script>" not in body
    assert b"&amp;amp;" in body
    assert b"&amp;amp;amp;" not in body
    assert not feedparser.parse(body).bozo


def test_a_reader_that_has_the_feed_gets_304_until_it_changes(client, earlier_store):
    save_numbered(earlier_store, 1)
    first = client.get("/feed.atom")
    etag = first.headers["ETag"]
    again = client.get("/feed.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert client.get("/feed.atom", headers={"If-None-Match": '"other", W/' + etag}).status_code == 304
    save_numbered(earlier_store, 2)
    changed = client.get("/feed.atom", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert client.get("/feed.atom?tags=nothing", headers={"If-None-Match": etag}).status_code == 200


@pytest.fixture
def served_app(mongo_uri, database_name):
    """The web app on this test's database, served over HTTP on 127.0.0.1 from a thread."""
    app = create_app({"MONGO_URI": mongo_uri, "MONGO_DATABASE": database_name, "REFRESH_SECONDS": 0})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    db.close(app)


def test_a_sofeed_crawling_another_s_feed_stores_the_same_questions_under_the_same_ids(
    served_app, earlier_store, crawl, mongo_uri
):
    docs = [save_numbered(earlier_store, n, tags=["python", f"t{n}"]) for n in range(12)]
    # XML cannot carry U+FFFE at all, so the mirror could not store it either.
    hostile = {**HOSTILE, "summary_text": HOSTILE["summary_text"].replace(" \ufffe", "")}
    docs.append(save_numbered(earlier_store, 99, link="https://superuser.com/questions/99/x", **hostile))
    mirror_name = f"sofeed_mirror_{uuid.uuid4().hex[:12]}"
    mirror = Store.connect(mongo_uri, mirror_name)
    try:
        result = crawl(served_app + "/feed.atom", MONGO_DATABASE=mirror_name)
        assert result.returncode == 0, result.log
        assert result.stat("sofeed/new") == len(docs), result.log
        fields = ("entry_id", "title", "link", "author", "author_uri", "tags", "rank", "published", "updated")
        fields += ("summary_text",)
        mirrored = {doc["_id"]: doc for doc in mirror.questions.find()}
        assert set(mirrored) == {doc["_id"] for doc in docs}
        for doc in docs:
            original = {name: doc.get(name) for name in fields}
            assert {name: mirrored[doc["_id"]].get(name) for name in fields} == original
    finally:
        mirror.client.drop_database(mirror_name)
        mirror.close()
