import logging

from scrapy.http import HtmlResponse, Response
from scrapy.spiders import XMLFeedSpider

from sofeed.items import QuestionItem
from sofeed.spiders.sofeed import DEFAULT_FEED_URL
from tests.atomfeed import Entry, render_feed, sample_entries
from tests.helpers import feed_response, fixture_bytes, make_spider, parse


def sofeed_errors(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "sofeed" and r.levelno >= logging.ERROR]


def test_spider_yields_one_question_item_per_entry_of_a_default_namespace_feed():
    items = parse(make_spider(), feed_response(render_feed(sample_entries(30))))
    assert len(items) == 30
    assert all(isinstance(item, QuestionItem) for item in items)
    # Oldest first, so that the newest question is stored last and gets the latest `fetched`.
    assert items[0]["entry_id"] == "https://stackoverflow.com/q/77600001"
    assert items[-1]["entry_id"] == "https://stackoverflow.com/q/77600030"


def test_the_default_iternodes_iterator_would_find_no_entry_in_the_same_feed():
    class IterNodesSpider(XMLFeedSpider):
        name = "iternodes"
        itertag = "entry"

        def parse_node(self, response, selector):
            return {"node": selector}

    assert list(IterNodesSpider()._parse(feed_response(render_feed(sample_entries(30))))) == []


def test_spider_yields_the_fixture_entries_including_the_ones_the_pipeline_will_drop():
    items = parse(make_spider(), feed_response(fixture_bytes("newest-questions.xml")))
    assert [item["title"] for item in reversed(items)][:3] == [
        'Why doesn\'t "git stash pop" restore untracked files & folders?',
        "<script>alert('title')</script> shows up in my Django template",
        "Segfault in a C program after realloc",
    ]
    assert len(items) == 6


def test_feed_urls_come_from_the_argument_first():
    spider = make_spider(SOFEED_FEED_URLS="http://a.test/feed")
    spider.feed_url_argument = "http://b.test/one, http://b.test/two"
    assert spider.feed_urls == ["http://b.test/one", "http://b.test/two"]


def test_feed_urls_come_from_the_setting_when_no_argument_is_given():
    assert make_spider(SOFEED_FEED_URLS="http://a.test/1,http://a.test/2").feed_urls == [
        "http://a.test/1",
        "http://a.test/2",
    ]


def test_feed_urls_default_to_the_stack_overflow_feed():
    assert (
        make_spider(SOFEED_FEED_URLS="").feed_urls
        == [DEFAULT_FEED_URL]
        == ["https://stackoverflow.com/feeds"]
    )


def test_a_truncated_feed_yields_only_its_complete_entries_and_logs_one_error(caplog):
    document = render_feed(sample_entries(10))
    cut = document.index(b"<summary", document.index(b"77600004"))
    items = parse(make_spider(), feed_response(document[:cut]))
    assert [item["question_id"] for item in items] == [
        77600005,
        77600006,
        77600007,
        77600008,
        77600009,
        77600010,
    ]
    [error] = sofeed_errors(caplog)
    assert "truncated" in error
    assert "6 complete entries, skipping 1 partial" in error


def test_an_html_login_page_yields_nothing_and_is_reported_as_not_a_feed(caplog):
    page = b"<!DOCTYPE html><html><head><title>Log in</title></head><body><form></form></body></html>"
    response = feed_response(page, headers={"Content-Type": "text/html"}, cls=HtmlResponse)
    assert parse(make_spider(), response) == []
    [error] = sofeed_errors(caplog)
    assert "not an Atom feed" in error
    assert "text/html" in error


def test_an_empty_body_yields_nothing_and_is_reported(caplog):
    assert parse(make_spider(), feed_response(b"", cls=Response)) == []
    [error] = sofeed_errors(caplog)
    assert "an empty body" in error


def test_a_feed_without_entries_is_not_an_error(caplog):
    empty_feed = render_feed([])
    assert parse(make_spider(), feed_response(empty_feed)) == []
    assert sofeed_errors(caplog) == []


def test_a_304_yields_nothing_and_counts_as_not_modified(caplog):
    spider = make_spider()
    caplog.set_level(logging.INFO)
    assert parse(spider, feed_response(b"", status=304, cls=Response)) == []
    assert spider.crawler.stats.get_value("sofeed/not_modified") == 1
    assert sofeed_errors(caplog) == []
    assert any("304 Not Modified" in r.getMessage() for r in caplog.records)


def test_external_entities_are_never_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    prolog = f'<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
    entries = [Entry(question_id=1, title="placeholder"), Entry(question_id=2, title="Plain question")]
    document = render_feed(entries, prolog=prolog).replace(b"placeholder", b"Leak: &xxe;")
    items = parse(make_spider(), feed_response(document))
    assert "TOP-SECRET-VALUE" not in repr(items)
    assert [item["title"] for item in items] == ["Plain question", "Leak:"]


def test_an_entity_bomb_is_not_expanded():
    prolog = (
        '<!DOCTYPE feed [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10 if n > 1 else "&lol;" * 10}">'
            for n in range(1, 10)
        )
        + "]>\n"
    )
    document = render_feed([Entry(question_id=1, title="placeholder")], prolog=prolog)
    document = document.replace(b"placeholder", b"Bomb &lol9;")
    [item] = parse(make_spider(), feed_response(document))
    assert item["title"] == "Bomb"


def test_control_characters_in_feed_text_are_removed():
    document = render_feed([Entry(question_id=1, title="Tab\tand\u0085next\u0007bell")])
    [item] = parse(make_spider(), feed_response(document))
    assert item["title"] == "Tab andnextbell"


def test_a_whole_feed_followed_by_a_comment_is_not_mistaken_for_a_truncated_one(caplog):
    document = render_feed(sample_entries(3)) + b"\n<!-- served by a cache in 3 ms -->\n"
    assert len(parse(make_spider(), feed_response(document))) == 3
    assert sofeed_errors(caplog) == []


def test_a_feed_the_parser_gives_up_on_part_way_is_reported_not_silently_shortened(caplog):
    laughs = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 8))
    entries = sample_entries(4)
    entries[2].link = "https://stackoverflow.com/questions/1/placeholder"
    document = render_feed(entries, prolog=f"<!DOCTYPE feed [{laughs}]>\n")
    document = document.replace(b"/questions/1/placeholder", b"/questions/1/&l7;")
    items = parse(make_spider(), feed_response(document))
    assert len(items) < 4
    [error] = sofeed_errors(caplog)
    assert f"the parser read {len(items)} of its 4 entries" in error
