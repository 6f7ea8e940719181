import json
from datetime import UTC, datetime

import pytest
from lxml import etree

from sofeed.atom import read_entry
from sofeed.stackexchange import NotAWrapper, entry_id, epoch_datetime, read_question, read_wrapper
from sofeed.store import question_key
from tools.sim.atom import Entry, render_feed
from tools.sim.stackexchange import StackExchangeSimulator

CREATED = int(datetime(2026, 3, 4, 11, 58, 20, tzinfo=UTC).timestamp())
EDITED = CREATED + 95
BODY = (
    "<p>I tried the obvious approach but it doesn't work:</p>\n<pre><code>x = 1\n</code></pre>\n"
    "<p>Why does <code>x &lt; y</code> fail?</p>\n"
)


def api_question(**changes):
    """A question object as /2.3/questions?filter=withbody lists it (from the simulator's renderer)."""
    simulator = StackExchangeSimulator(initial=0)
    fields = {
        "question_id": 79112233,
        "title": "Why doesn't \"git stash pop\" restore files & folders in Jörg's repo?",
        "tags": ["git", "git-stash"],
        "display_name": "Jörg O'Neil",
        "user_id": 4410021,
        "body": BODY,
        "score": 2,
        "creation_date": CREATED,
        "last_edit_date": EDITED,
        **changes,
    }
    return simulator.publish(**fields).item(with_body=True)


def test_a_question_is_read_into_the_fields_of_the_atom_item_with_entities_decoded():
    assert read_question(api_question()) == {
        "entry_id": "https://stackoverflow.com/q/79112233",
        "question_id": 79112233,
        "title": "Why doesn't \"git stash pop\" restore files & folders in Jörg's repo?",
        "link": "https://stackoverflow.com/questions/79112233/why-doesn-t-git-stash-pop-restore-files-folders-in-j-rg-s-repo",
        "author": "Jörg O'Neil",
        "author_uri": "https://stackoverflow.com/users/4410021/j-rg-o-neil",
        "tags": ["git", "git-stash"],
        "rank": 2,
        "published": datetime(2026, 3, 4, 11, 58, 20, tzinfo=UTC),
        "updated": datetime(2026, 3, 4, 11, 59, 55, tzinfo=UTC),
        "summary_text": "I tried the obvious approach but it doesn't work: x = 1 Why does x < y fail?",
    }


def test_the_same_question_from_the_api_and_the_atom_feed_has_the_same_id_and_text():
    api = read_question(api_question())
    entry = Entry(
        question_id=79112233,
        title="Why doesn't \"git stash pop\" restore files & folders in Jörg's repo?",
        tags=["git", "git-stash"],
        author="Jörg O'Neil",
        published="2026-03-04T11:58:20Z",
        summary_html=BODY,
    )
    root = etree.fromstring(render_feed([entry]))
    atom = read_entry(root.find("{http://www.w3.org/2005/Atom}entry"), "https://stackoverflow.com/feeds")
    assert question_key(api["entry_id"]) == question_key(atom["entry_id"])
    for name in ("entry_id", "question_id", "title", "author", "tags", "published", "summary_text"):
        assert api[name] == atom[name], name


def test_the_id_takes_the_host_of_the_questions_link():
    assert read_question(api_question(site="superuser"))["entry_id"] == "https://superuser.com/q/79112233"
    assert entry_id("https://unix.stackexchange.com/questions/5/x", 5) == "https://unix.stackexchange.com/q/5"
    assert entry_id(None, 5) is None


def test_updated_is_the_last_activity_when_the_question_was_never_edited():
    question = api_question(last_edit_date=None)
    question["last_activity_date"] = CREATED + 30
    assert read_question(question)["updated"] == datetime(2026, 3, 4, 11, 58, 50, tzinfo=UTC)


def test_a_deleted_owner_has_a_name_but_no_uri():
    question = read_question(api_question(user_id=None, display_name="user123"))
    assert (question["author"], question["author_uri"]) == ("user123", None)


def test_markup_in_a_title_stays_literal_text_and_control_characters_go():
    question = read_question(api_question(title="<script>alert('x')</script>\x00 in\n my   template"))
    assert question["title"] == "<script>alert('x')</script> in my template"


def test_a_long_body_is_shortened_like_an_atom_summary():
    summary = read_question(api_question(body="<p>" + "word " * 400 + "</p>"))["summary_text"]
    assert 400 < len(summary) <= 501
    assert summary.endswith("…")


@pytest.mark.parametrize(
    "broken",
    [
        {"question_id": "79112233", "link": "https://stackoverflow.com/questions/79112233/x"},
        {"question_id": 79112233, "link": "javascript:alert(1)"},
        {"question_id": 79112233},
        {"question_id": True, "link": "https://stackoverflow.com/questions/1/x"},
    ],
)
def test_a_question_without_a_usable_number_or_link_has_no_id_for_the_pipeline_to_accept(broken):
    question = read_question({**broken, "title": "A title"})
    assert question["entry_id"] is None


def test_fields_of_the_wrong_type_are_read_as_absent():
    question = read_question(
        {"title": 5, "owner": "x", "tags": "python", "score": "3", "creation_date": "today", "body": None}
    )
    assert question == {
        "entry_id": None,
        "question_id": None,
        "title": None,
        "link": None,
        "author": None,
        "author_uri": None,
        "tags": [],
        "rank": None,
        "published": None,
        "updated": None,
        "summary_text": None,
    }
    assert read_question(["not", "a", "dict"])["entry_id"] is None


def test_epoch_seconds_out_of_range_are_no_date():
    assert epoch_datetime(10**20) is None
    assert epoch_datetime(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_the_common_wrapper_is_read_with_its_quota_and_backoff():
    body = json.dumps(
        {"items": [{}], "has_more": True, "quota_max": 300, "quota_remaining": 7, "backoff": 10}
    )
    wrapper = read_wrapper(body.encode())
    assert (wrapper.items, wrapper.has_more, wrapper.error) == ([{}], True, None)
    assert (wrapper.quota_max, wrapper.quota_remaining, wrapper.backoff) == (300, 7, 10)


def test_the_error_wrapper_is_read_as_an_error():
    body = {
        "error_id": 502,
        "error_message": "too many requests from this IP",
        "error_name": "throttle_violation",
    }
    wrapper = read_wrapper(json.dumps(body))
    assert wrapper.items == []
    assert (wrapper.error.error_id, wrapper.error.error_name) == (502, "throttle_violation")
    assert wrapper.error.error_message == "too many requests from this IP"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>An error occurred</body></html>", "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
        (b"[1, 2]", "a list instead"),
        (b'{"quota_max": 300}', "without the wrapper's `items`"),
    ],
)
def test_a_body_that_is_not_a_wrapper_says_what_it_is(body, reason):
    with pytest.raises(NotAWrapper, match=reason):
        read_wrapper(body)
