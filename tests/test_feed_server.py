import json
import re
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import feed_response, make_spider, parse
from tools import launcher
from tools.sim.feed_server import FEED_SIZE, FeedServer, GrowingFeed, Reply

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def simulator():
    return GrowingFeed(seed=1)


@pytest.fixture
def served(simulator):
    server = FeedServer().start()
    server.serve_growing("/feeds", simulator)
    server.serve("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
    yield server.url("")
    server.stop()


def fetch(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_the_feed_reads_like_stack_overflows_for_the_spider(simulator):
    body, _ = simulator.feed()
    items = parse(make_spider(), feed_response(body, url="http://127.0.0.1:8765/feeds"))
    assert len(items) == FEED_SIZE
    assert len({item["entry_id"] for item in items}) == FEED_SIZE
    for item in items:
        assert item["entry_id"].startswith("https://stackoverflow.com/q/")
        assert item["question_id"] == int(item["entry_id"].rsplit("/", 1)[1])
        assert item["link"].startswith(f"https://stackoverflow.com/questions/{item['question_id']}/")
        assert item["title"]
        assert item["author"]
        assert item["tags"]
        assert item["rank"] is not None
        assert item["published"] <= item["updated"]
        assert not re.search(r"</?(p|pre|code)>", item["summary_text"])  # the markup is gone, the code kept
    published = [item["published"] for item in items]
    assert published == sorted(published)  # the spider yields the oldest first


def test_the_feed_uses_the_default_atom_namespace_entities_and_an_html_summary(simulator):
    body, _ = simulator.feed()
    text = body.decode("utf-8")
    assert '<feed xmlns="http://www.w3.org/2005/Atom"' in text
    assert 'xmlns:re="http://purl.org/atompub/rank/1.0"' in text
    assert '<summary type="html">' in text
    assert "&lt;p&gt;" in text
    assert "&#xA;" in text


def test_a_published_question_tops_the_feed_with_its_text_as_given(simulator):
    question = simulator.publish(
        title='<img src=x onerror="window.__xss=1">',
        link="javascript:window.__xss=2",
        author="<script>window.__xss=3</script>",
        tags=["xss"],
        summary="<p>fine</p>",
    )
    body, _ = simulator.feed()
    [*rest, first] = parse(make_spider(), feed_response(body))  # the spider yields the newest last
    assert len(rest) == FEED_SIZE - 1
    assert first["entry_id"] == question.entry_id
    assert first["title"] == '<img src=x onerror="window.__xss=1">'
    assert first["link"] == "javascript:window.__xss=2"
    assert first["author"] == "<script>window.__xss=3</script>"
    assert first["author_uri"] is None
    assert first["tags"] == ["xss"]
    assert first["summary_text"] == "fine"


def test_publishing_refuses_fields_of_the_wrong_type(simulator):
    with pytest.raises(TypeError, match="tags must be a list of strings"):
        simulator.publish(tags="python")
    with pytest.raises(TypeError, match="title must be a string"):
        simulator.publish(title=5)


def test_the_server_answers_a_matching_etag_with_304(served):
    status, headers, body = fetch(served + "/feeds")
    assert status == 200
    assert headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    status, _, body = fetch(served + "/feeds", headers={"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")


def test_post_publish_adds_a_question_and_changes_the_etag(served):
    _, before, _ = fetch(served + "/feeds")
    fields = {"title": "Freshly published", "tags": ["python", "testing"]}
    status, _, body = fetch(served + "/publish", data=json.dumps(fields).encode())
    assert status == 201
    answer = json.loads(body)
    assert answer["entry_id"] == f"https://stackoverflow.com/q/{answer['question_id']}"
    status, after, feed = fetch(served + "/feeds", headers={"If-None-Match": before["ETag"]})
    assert status == 200
    assert after["ETag"] != before["ETag"]
    assert b'<title type="text">Freshly published</title>' in feed


def test_post_publish_with_bad_fields_is_a_400(served):
    status, _, body = fetch(served + "/publish", data=b'{"tags": "python"}')
    assert status == 400
    assert "tags" in json.loads(body)["error"]


def test_robots_txt_allows_everything_and_other_paths_are_404(served):
    assert fetch(served + "/robots.txt")[::2] == (200, b"User-agent: *\nAllow: /\n")
    assert fetch(served + "/nothing")[0] == 404


def test_the_command_prints_its_feed_url_first_and_publishes_on_its_own():
    command = [sys.executable, "tools/sim/feed_server.py", "--port", "0", "--every", "0.2"]
    with launcher.start("the feed server", command, first_line=True) as server:
        url = server.first_line
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/feeds", url)
        _, headers, _ = fetch(url)
        deadline = time.monotonic() + 10
        while fetch(url, headers={"If-None-Match": headers["ETag"]})[0] == 304:
            assert time.monotonic() < deadline, "no new question within 10 s"
            time.sleep(0.05)
