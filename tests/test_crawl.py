"""End to end: `scrapy crawl sofeed` as a real process, against the local
feed server and the test database."""

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from sofeed.store import question_key
from tests.helpers import fixture_bytes
from tools.sim.atom import Entry, render_feed, sample_entries
from tools.sim.feed_server import Reply

THIRTY = sample_entries(30)
FEED_30 = render_feed(THIRTY)


def stored_ids(store):
    return Counter(doc["entry_id"] for doc in store.questions.find({}, {"entry_id": 1}))


def ids_of(entries):
    return Counter(entry.entry_id for entry in entries)


def test_a_crawl_stores_every_entry_of_a_30_entry_feed(crawl, feed_server, store):
    result = crawl(feed_server.serve_feed("/feeds", FEED_30))
    assert result.returncode == 0, result.log
    assert result.stat("sofeed/new") == 30
    assert stored_ids(store) == ids_of(THIRTY)
    document = store.questions.find_one({"_id": question_key(THIRTY[0].entry_id)})
    assert document["title"] == THIRTY[0].title
    assert document["tags"] == THIRTY[0].tags
    assert result.errors == []


def test_incomplete_entries_are_counted_and_never_stored_half_empty(crawl, feed_server, store):
    result = crawl(feed_server.serve_feed("/feeds", fixture_bytes("newest-questions.xml")))
    assert (result.stat("sofeed/new"), result.stat("sofeed/invalid")) == (4, 2)
    assert (result.stat("sofeed/invalid/no_title"), result.stat("sofeed/invalid/no_id_or_link")) == (1, 1)
    titles = {doc["title"] for doc in store.questions.find()}
    assert "<script>alert('title')</script> shows up in my Django template" in titles
    assert "Entry that has a link but lost its id" in titles
    assert None not in titles
    assert store.questions.count_documents({"entry_id": None}) == 1  # stored by its link


def test_a_second_crawl_of_the_same_feed_stores_nothing_new(crawl, feed_server, store):
    url = feed_server.serve_feed("/feeds", FEED_30)
    crawl(url)
    fetched_before = {doc["_id"]: doc["fetched"] for doc in store.questions.find()}
    result = crawl(url)
    assert (result.stat("sofeed/new"), result.stat("sofeed/duplicate")) == (0, 30)
    assert {doc["_id"]: doc["fetched"] for doc in store.questions.find()} == fetched_before


@pytest.mark.check  # the full tier: the scheduler's feed-change test covers it in the fast tier
def test_a_changed_feed_with_two_new_entries_stores_exactly_those_two(crawl, feed_server, store):
    url = feed_server.serve_feed("/feeds", FEED_30)
    crawl(url)
    newcomers = [Entry(question_id=77700001, title="New one"), Entry(question_id=77700002, title="New two")]
    feed_server.serve_feed("/feeds", render_feed(newcomers + THIRTY[:28]))
    result = crawl(url)
    assert (result.stat("sofeed/new"), result.stat("sofeed/duplicate")) == (2, 28)
    assert stored_ids(store) == ids_of(THIRTY + newcomers)


def test_new_entries_behind_a_reappearing_old_one_are_not_lost(crawl, feed_server, store):
    url = feed_server.serve_feed("/feeds", FEED_30)
    crawl(url)
    # An old question became active again and leads the feed; new ones follow it.
    newcomers = [Entry(question_id=77700000 + n, title=f"Newcomer {n}") for n in range(5)]
    feed_server.serve_feed("/feeds", render_feed([THIRTY[20], *newcomers, *THIRTY[:10]]))
    assert crawl(url).stat("sofeed/new") == 5
    assert stored_ids(store) == ids_of(THIRTY + newcomers)


def test_an_entry_listed_twice_in_one_feed_is_stored_once(crawl, feed_server, store):
    result = crawl(feed_server.serve_feed("/feeds", render_feed([*THIRTY[:5], THIRTY[2]])))
    assert (result.stat("sofeed/new"), result.stat("sofeed/duplicate")) == (5, 1)
    assert stored_ids(store) == ids_of(THIRTY[:5])


def test_two_crawls_at_the_same_time_store_each_question_once(crawl, feed_server, store):
    # Held for a second, both answers arrive together and the inserts interleave.
    url = feed_server.serve_feed("/feeds", FEED_30, delay=1.0)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: crawl(url), range(2)))
    problems = [line for r in results for line in r.log.splitlines() if " ERROR: " in line]
    assert sum(r.stat("sofeed/new") for r in results) == 30, problems
    assert sum(r.stat("sofeed/new") + r.stat("sofeed/duplicate") for r in results) == 60, problems
    assert stored_ids(store) == ids_of(THIRTY)


@pytest.mark.check  # the full tier: the scheduler's 304 test covers it in the fast tier
def test_an_unchanged_feed_is_fetched_with_validators_and_its_304_parsed_as_nothing_new(
    crawl, feed_server, store
):
    url = feed_server.serve_feed(
        "/feeds", FEED_30, etag='"v1"', headers={"Last-Modified": "Sun, 10 Dec 2023 17:21:25 GMT"}
    )
    crawl(url)
    result = crawl(url)
    second = feed_server.requests_for("/feeds")[-1]
    assert second.headers["If-None-Match"] == '"v1"'
    assert second.headers["If-Modified-Since"] == "Sun, 10 Dec 2023 17:21:25 GMT"
    assert result.stat("sofeed/duplicate") == 0
    assert "304 Not Modified" in result.log
    assert sum(stored_ids(store).values()) == 30


@pytest.mark.check  # the full tier: the middleware tests cover the validators in the fast tier
def test_a_truncated_answer_does_not_make_the_next_crawl_conditional(crawl, feed_server, store):
    # The server's document did not change, but the first transfer was cut off.
    url = feed_server.serve_feed("/feeds", truncated(FEED_30), etag='"v1"')
    assert crawl(url).stat("sofeed/new") == 10
    feed_server.serve_feed("/feeds", FEED_30, etag='"v1"')
    healed = crawl(url)
    assert "If-None-Match" not in feed_server.requests_for("/feeds")[-1].headers
    assert healed.stat("sofeed/new") == 20
    assert stored_ids(store) == ids_of(THIRTY)


@pytest.mark.check  # the full tier: the scheduler's 429 test covers it in the fast tier
def test_a_429_with_retry_after_keeps_the_feed_from_being_requested_until_then(crawl, feed_server, store):
    url = feed_server.serve("/feeds", Reply(status=429, body=b"slow down", headers={"Retry-After": "3600"}))
    [error] = crawl(url).errors
    assert "HTTP 429" in error
    assert "not fetching it again before" in error
    wait = store.source_state(url)["not_before"] - datetime.now(UTC)
    assert timedelta(minutes=55) < wait <= timedelta(hours=1)
    feed_server.serve_feed("/feeds", FEED_30)
    assert crawl(url).returncode == 0
    assert len(feed_server.requests_for("/feeds")) == 1
    assert store.questions.count_documents({}) == 0
    # The hour is up, as far as the store knows: the next crawl fetches the feed again.
    store.update_source_state(url, {"not_before": datetime.now(UTC) - timedelta(seconds=1)})
    assert crawl(url).returncode == 0
    assert len(feed_server.requests_for("/feeds")) == 2
    assert stored_ids(store) == ids_of(THIRTY)


def test_a_feed_disallowed_by_robots_txt_is_not_fetched_and_the_override_is_named(crawl, feed_server, store):
    feed_server.serve(
        "/robots.txt", Reply(body=b"User-agent: *\nDisallow: /feeds\n", content_type="text/plain")
    )
    url = feed_server.serve_feed("/feeds", FEED_30)
    result = crawl(url)
    [error] = result.errors
    assert "robots.txt" in error
    assert "ROBOTSTXT_OBEY=False" in error
    assert feed_server.requests_for("/feeds") == []
    assert store.questions.count_documents({}) == 0


@pytest.mark.check  # the full tier: the pipeline's outage test covers it in the fast tier
def test_an_unreachable_database_fails_the_crawl_before_fetching_and_the_next_crawl_loses_nothing(
    crawl, feed_server, store
):
    url = feed_server.serve_feed("/feeds", FEED_30, etag='"v1"')
    down = crawl(url, MONGO_URI="mongodb://127.0.0.1:9")
    [error] = down.errors
    assert "MongoDB at mongodb://127.0.0.1:9 is unavailable" in error
    assert "'finish_reason': 'mongodb_unavailable'" in down.log
    assert feed_server.requests_for("/feeds") == []  # nothing fetched that could not be stored
    recovered = crawl(url)
    assert recovered.stat("sofeed/new") == 30
    assert stored_ids(store) == ids_of(THIRTY)


def test_items_can_still_be_exported_with_the_usual_scrapy_output_option(crawl, feed_server, tmp_path):
    output = tmp_path / "items.jsonl"
    crawl(feed_server.serve_feed("/feeds", FEED_30), FEEDS=json.dumps({str(output): {"format": "jsonlines"}}))
    exported = [json.loads(line) for line in output.read_text().splitlines()]
    assert [item["entry_id"] for item in exported] == [entry.entry_id for entry in reversed(THIRTY)]
    assert exported[-1]["published"].startswith("2023-12-10")


def truncated(document):
    """The document cut in the middle of its 11th entry."""
    entry_starts = [n for n in range(len(document)) if document.startswith(b"<entry>", n)]
    return document[: entry_starts[10] + 60]


BAD_FEEDS = {
    "http_500": (Reply(status=500, body=b"oops", content_type="text/plain"), "HTTP 500", 0),
    "http_502_with_html": (
        Reply(status=502, body=b"<html><h1>Bad Gateway</h1></html>", content_type="text/html"),
        "HTTP 502",
        0,
    ),
    "html_login_page": (
        Reply(body=b"<html><body><form>Log in</form></body></html>", content_type="text/html"),
        "not an Atom feed",
        0,
    ),
    "empty_body": (Reply(body=b""), "an empty body", 0),
    "truncated_xml": (Reply(body=truncated(FEED_30)), "truncated", 10),
    "over_the_size_limit": (
        Reply(body=FEED_30 + b"<!--" + b"x" * (5 * 1024 * 1024) + b"-->"),
        "larger than download max size",
        0,
    ),
    "slower_than_the_timeout": (Reply(body=FEED_30, delay=2.5), "fetch failed", 0),
    "redirect_loop": (Reply(status=302, headers={"Location": "/feeds"}), "max redirections reached", 0),
}


# A failed answer and a partial one in the fast tier; every other kind in the full tier (`make check`).
FAST_TIER_FAULTS = {"http_500", "truncated_xml"}


@pytest.mark.parametrize(
    "fault",
    [
        fault if fault in FAST_TIER_FAULTS else pytest.param(fault, marks=pytest.mark.check)
        for fault in BAD_FEEDS
    ],
)
def test_a_bad_feed_is_reported_once_leaves_the_database_consistent_and_heals(
    fault, crawl, feed_server, store
):
    reply, message, stored_count = BAD_FEEDS[fault]
    url = feed_server.serve("/feeds", reply)
    result = crawl(url, DOWNLOAD_TIMEOUT=1)
    [error] = result.errors
    assert message in error
    assert stored_ids(store) == ids_of(THIRTY[:stored_count])
    feed_server.serve_feed("/feeds", FEED_30)
    assert crawl(url).stat("sofeed/new") == 30 - stored_count
    assert stored_ids(store) == ids_of(THIRTY)


def test_an_unreachable_feed_host_is_reported_once(crawl, store):
    result = crawl("http://127.0.0.1:9/feeds")
    [error] = result.errors
    assert "fetch failed" in error
    assert "Connection" in error
    assert store.questions.count_documents({}) == 0


def test_hostile_xml_is_stored_without_resolving_entities(crawl, feed_server, store, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    prolog = (
        f'<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file://{secret}">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
    )
    hostile = Entry(question_id=1, title="placeholder", link="https://stackoverflow.com/questions/1/hostile")
    document = render_feed([hostile, *THIRTY[:5]], prolog=prolog).replace(
        b"placeholder", b"XXE &xxe; and &b;"
    )
    crawl(feed_server.serve_feed("/feeds", document))
    documents = list(store.questions.find())
    assert len(documents) == 6
    assert "TOP-SECRET-VALUE" not in repr(documents)
    assert "aaaaaaaaaa" not in repr(documents)
    assert store.questions.find_one({"question_id": 1})["title"] == "XXE and"
