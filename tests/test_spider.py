import logging

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest, ResponseDataLossError
from scrapy.http import HtmlResponse, Response
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.spiders import XMLFeedSpider
from twisted.python.failure import Failure

from sofeed.items import QuestionItem
from sofeed.middlewares import FEED_META, CrawlTimeUp
from sofeed.sources import DEFAULT_FEED_URL
from tests.helpers import feed_response, fixture_bytes, make_spider, parse
from tools.sim.atom import Entry, render_feed, sample_entries


def sofeed_errors(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "sofeed" and r.levelno >= logging.ERROR]


def sofeed_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "sofeed" and r.levelno == logging.WARNING]


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
    assert spider.report.not_modified
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


TITLE = "Café crème \u2013 naïve \u201cquotes\u201d"


def test_a_utf8_body_that_says_it_is_latin_1_is_read_as_utf8_and_a_warning_says_so(caplog):
    document = render_feed([Entry(question_id=1, title=TITLE)])
    document = document.replace(b'encoding="utf-8"', b'encoding="ISO-8859-1"')
    spider = make_spider()
    response = feed_response(document, headers={"Content-Type": "application/atom+xml; charset=ISO-8859-1"})
    [item] = parse(spider, response)
    assert item["title"] == TITLE
    [warning] = sofeed_warnings(caplog)
    assert "says its encoding is cp1252, but the body is UTF-8" in warning
    assert spider.report.warnings == [warning.split(": ", 1)[1]]


def test_a_latin_1_body_that_says_so_is_read_as_latin_1_without_a_warning(caplog):
    document = render_feed([Entry(question_id=1, title="Café crème")]).decode().encode("latin-1")
    document = document.replace(b'encoding="utf-8"', b'encoding="ISO-8859-1"')
    response = feed_response(document, headers={"Content-Type": "application/atom+xml; charset=ISO-8859-1"})
    assert [item["title"] for item in parse(make_spider(), response)] == ["Café crème"]
    assert sofeed_warnings(caplog) == []


def test_entities_declared_in_a_dtd_are_named_in_a_warning_and_the_feed_is_still_read(caplog):
    prolog = '<!DOCTYPE feed [<!ENTITY a "x"><!ENTITY b SYSTEM "file:///etc/passwd">]>\n'
    spider = make_spider()
    items = parse(spider, feed_response(render_feed(sample_entries(3), prolog=prolog)))
    assert len(items) == 3
    [warning] = sofeed_warnings(caplog)
    assert "its DTD declares 2 entities, and entity references are never expanded" in warning
    assert sofeed_errors(caplog) == []


def test_scrapys_own_warnings_about_a_download_it_gave_up_are_left_to_the_spider(caplog):
    make_spider()  # its crawl puts the LogFilters extension in place
    for name, message in [
        (
            "scrapy.core.downloader.handlers.http11",
            "Expected to receive 9 bytes which is larger than download max size (4)",
        ),
        ("scrapy.downloadermiddlewares.httpcompression", "Ignored response: exceeded DOWNLOAD_MAXSIZE (4 B)"),
        ("scrapy.core.downloader.handlers.http11", "Got data loss in http://x/feeds. If you want ..."),
        (
            "scrapy.core.downloader.handlers.http11",
            "Received 2 bytes which is larger than download warn size (1)",
        ),
    ]:
        logging.getLogger(name).warning(message)
    assert [r.getMessage() for r in caplog.records] == [
        "Received 2 bytes which is larger than download warn size (1)"
    ]


def failed_fetch(exception, **meta):
    """The Failure that the spider's errback gets for a feed request."""
    failure = Failure(exception)
    failure.request = Request(DEFAULT_FEED_URL, meta={FEED_META: DEFAULT_FEED_URL, **meta})
    return failure


def test_a_fetch_failure_without_a_message_is_reported_by_its_type_alone(caplog):
    make_spider().feed_failed(failed_fetch(ResponseDataLossError()))
    assert sofeed_errors(caplog) == [f"feed {DEFAULT_FEED_URL}: fetch failed: ResponseDataLossError"]


def test_a_feed_not_requested_because_the_deadline_passed_first_is_not_a_feed_error(caplog):
    spider = make_spider()
    spider.feed_failed(failed_fetch(CrawlTimeUp("the crawl's time is up")))
    assert sofeed_errors(caplog) == []
    assert spider.report.not_requested
    assert not spider.report.failed


def test_a_retry_that_the_deadline_stopped_is_still_a_feed_error(caplog):
    spider = make_spider()
    spider.feed_failed(failed_fetch(CrawlTimeUp("the crawl's time is up"), retry_times=1))
    [error] = sofeed_errors(caplog)
    assert "time is up" in error


def test_a_feed_refused_by_robots_txt_is_one_line_naming_the_api_source_and_the_override(caplog):
    spider = make_spider()
    spider.feed_failed(failed_fetch(IgnoreRequest("Forbidden by robots.txt")))
    [error] = sofeed_errors(caplog)
    assert error.startswith(f"feed {DEFAULT_FEED_URL} is disallowed by its site's robots.txt")
    assert "--feed-url 'https://api.stackexchange.com/2.3/questions?site=stackoverflow.com'" in error
    assert "ROBOTSTXT_OBEY=False" in error
    assert spider.report.refusal.kind == "robots"
    assert spider.report.error == error


def challenged(status, headers=None, body=b""):
    """The HttpError failure of a feed request that Cloudflare answered with a challenge."""
    request = Request(DEFAULT_FEED_URL, meta={FEED_META: DEFAULT_FEED_URL})
    response = HtmlResponse(DEFAULT_FEED_URL, status=status, headers=headers, body=body, request=request)
    failure = Failure(HttpError(response))
    failure.request = request
    return failure


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (403, {"cf-mitigated": "challenge"}, b""),
        (503, {}, b"<html><head><title>Just a moment...</title></head></html>"),
    ],
)
def test_a_cloudflare_challenge_is_one_line_that_names_it_and_the_api_source(caplog, status, headers, body):
    spider = make_spider()
    spider.feed_failed(challenged(status, headers, body))
    [error] = sofeed_errors(caplog)
    assert f"HTTP {status}, a Cloudflare challenge" in error
    assert "site=stackoverflow.com" in error
    assert "ROBOTSTXT_OBEY" not in error
    assert spider.report.refusal.kind == "challenge"


def test_a_forbidden_feed_without_a_challenge_is_a_plain_http_error(caplog):
    spider = make_spider()
    spider.feed_failed(challenged(403, body=b"<html><title>Forbidden</title></html>"))
    assert sofeed_errors(caplog) == [f"feed {DEFAULT_FEED_URL}: HTTP 403"]
    assert spider.report.refusal is None


def test_a_challenge_page_answered_with_200_is_not_read_as_a_broken_feed(caplog):
    page = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>checking</body></html>"
    spider = make_spider()
    assert parse(spider, feed_response(page, headers={"Content-Type": "text/html"}, cls=HtmlResponse)) == []
    [error] = sofeed_errors(caplog)
    assert "a Cloudflare challenge page instead of the feed" in error
    assert spider.report.refusal.kind == "challenge"
