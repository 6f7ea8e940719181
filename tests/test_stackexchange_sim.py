import gzip
import json
import re
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from tools import launcher
from tools.sim.stackexchange import (
    OVERSIZED_BYTES,
    QUOTA_WITH_KEY,
    QUOTA_WITHOUT_KEY,
    StackExchangeSimulator,
    serve_in_thread,
)

NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()
NEWEST = "/2.3/questions?site=stackoverflow&sort=creation&order=desc&pagesize=100&filter=withbody"


class Clock:
    def __init__(self, now=NOON):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def simulator(clock):
    return StackExchangeSimulator(seed=3, clock=clock)


def wrapper(answer):
    return json.loads(gzip.decompress(answer.body))


def test_the_newest_questions_come_gzipped_in_the_common_wrapper(simulator):
    answer = simulator.answer(NEWEST)
    assert answer.status == 200
    assert answer.headers["Content-Encoding"] == "gzip"
    body = wrapper(answer)
    assert body["quota_max"] == QUOTA_WITHOUT_KEY
    assert body["quota_remaining"] == QUOTA_WITHOUT_KEY - 1
    assert body["has_more"] is False
    assert "backoff" not in body
    created = [item["creation_date"] for item in body["items"]]
    assert len(created) == 30
    assert created == sorted(created, reverse=True)
    item = body["items"][0]
    assert re.fullmatch(
        rf"https://stackoverflow\.com/questions/{item['question_id']}/[a-z0-9-]+", item["link"]
    )
    assert item["body"].startswith("<p>")
    assert {"display_name", "link", "user_id"} <= item["owner"].keys()


def test_title_and_display_name_are_html_encoded_as_the_api_sends_them(simulator):
    simulator.publish(title='Don\'t "quote" <me> & you', display_name="Jörg O'Neil")
    item = wrapper(simulator.answer(NEWEST))["items"][0]
    assert item["title"] == "Don&#39;t &quot;quote&quot; &lt;me&gt; &amp; you"
    assert item["owner"]["display_name"] == "J&#246;rg O&#39;Neil"


def test_fromdate_tagged_and_pagesize_narrow_the_answer(simulator, clock):
    simulator.publish(tags=["python", "asyncio"], creation_date=clock.now + 5)
    simulator.publish(tags=["rust"], creation_date=clock.now + 9)
    items = wrapper(simulator.answer(NEWEST + f"&fromdate={int(clock.now)}"))["items"]
    assert [item["tags"] for item in items] == [["rust"], ["python", "asyncio"]]
    items = wrapper(simulator.answer(NEWEST + "&tagged=python;asyncio"))["items"]
    assert [item["tags"] for item in items] == [["python", "asyncio"]]
    body = wrapper(simulator.answer(NEWEST.replace("pagesize=100", "pagesize=2")))
    assert len(body["items"]) == 2
    assert body["has_more"] is True


def test_without_body_filter_the_items_have_no_body(simulator):
    items = wrapper(simulator.answer("/2.3/questions?site=stackoverflow"))["items"]
    assert items
    assert all("body" not in item for item in items)


def test_quota_counts_per_caller_and_day_and_runs_out(clock):
    simulator = StackExchangeSimulator(seed=1, clock=clock, initial=1)
    for _ in range(QUOTA_WITHOUT_KEY):
        assert simulator.answer(NEWEST).status == 200
    refused = simulator.answer(NEWEST)
    assert refused.status == 400
    assert wrapper(refused)["error_name"] == "throttle_violation"
    assert "43200 seconds" in wrapper(refused)["error_message"]  # until 00:00 UTC
    keyed = wrapper(simulator.answer(NEWEST + "&key=abc"))
    assert (keyed["quota_max"], keyed["quota_remaining"]) == (QUOTA_WITH_KEY, QUOTA_WITH_KEY - 1)
    clock.now += 12 * 3600  # midnight UTC: a new day
    assert wrapper(simulator.answer(NEWEST))["quota_remaining"] == QUOTA_WITHOUT_KEY - 1


def test_a_request_before_the_backoff_ends_is_refused(simulator, clock):
    simulator.backoff_next(10)
    assert wrapper(simulator.answer(NEWEST))["backoff"] == 10
    clock.now += 9
    assert wrapper(simulator.answer(NEWEST))["error_name"] == "throttle_violation"
    clock.now += 1
    assert "backoff" not in wrapper(simulator.answer(NEWEST))
    assert [r.error_name for r in simulator.requests_for()] == [None, "throttle_violation", None]


@pytest.mark.parametrize(
    ("name", "error_id"), [("bad_parameter", 400), ("access_denied", 403), ("throttle_violation", 502)]
)
def test_an_error_wrapper_can_be_asked_for(simulator, name, error_id):
    simulator.error_next(name, "because the test said so")
    answer = simulator.answer(NEWEST)
    assert answer.status == 400
    assert wrapper(answer) == {
        "error_id": error_id,
        "error_message": "because the test said so",
        "error_name": name,
    }
    assert simulator.answer(NEWEST).status == 200


def test_an_unknown_error_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="use one of bad_parameter"):
        StackExchangeSimulator(initial=0).error_next("no_such_error")


def test_a_missing_site_or_an_unknown_key_is_a_bad_parameter(clock):
    simulator = StackExchangeSimulator(clock=clock, keys={"good"}, initial=1)
    assert wrapper(simulator.answer("/2.3/questions"))["error_name"] == "bad_parameter"
    assert wrapper(simulator.answer(NEWEST + "&key=bad"))["error_name"] == "bad_parameter"
    assert wrapper(simulator.answer(NEWEST + "&key=good"))["items"]


def test_the_faults_break_the_answer_as_named(simulator):
    simulator.fault = "not_json"
    with pytest.raises(json.JSONDecodeError):
        wrapper(simulator.answer(NEWEST))
    simulator.fault = "empty_items"
    assert wrapper(simulator.answer(NEWEST))["items"] == []
    simulator.fault = "oversized"
    answer = simulator.answer(NEWEST)
    assert len(answer.body) < 100_000 < OVERSIZED_BYTES < len(gzip.decompress(answer.body))


def test_the_server_records_what_each_request_sent(simulator):
    httpd, url = serve_in_thread(simulator)
    try:
        request = urllib.request.Request(url + "?site=stackoverflow&key=k1", headers={"User-Agent": "probe"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert json.loads(gzip.decompress(response.read()))["items"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert json.loads(gzip.decompress(refused.value.read()))["error_name"] == "bad_parameter"
        published = urllib.request.Request(
            url.replace("/2.3/questions", "/publish"), data=json.dumps({"title": "Posted"}).encode()
        )
        with urllib.request.urlopen(published, timeout=5) as response:
            assert response.status == 201
            assert json.loads(response.read())["title"] == "Posted"
    finally:
        httpd.shutdown()
        httpd.server_close()
    first = simulator.requests_for()[0]
    assert (first.key, first.params["site"], first.headers["User-Agent"]) == ("k1", "stackoverflow", "probe")


def test_the_command_prints_its_questions_url():
    command = [sys.executable, "tools/sim/stackexchange.py", "--port", "0", "--every", "0"]
    with launcher.start("the API simulator", command, first_line=True) as simulator:
        url = simulator.first_line
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/2.3/questions?site=stackoverflow")
        with urllib.request.urlopen(url, timeout=5) as response:
            assert len(json.loads(gzip.decompress(response.read()))["items"]) == 30
