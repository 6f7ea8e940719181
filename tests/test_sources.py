"""Sources: which URLs are API sources, and the API source for an Atom feed's site."""

import pytest

from sofeed.sources import api_url_for, is_api_url, spider_for, split_urls


def test_urls_split_on_commas_with_blanks_dropped():
    assert split_urls(" http://a/feeds, ,http://b/2.3/questions ") == [
        "http://a/feeds",
        "http://b/2.3/questions",
    ]
    assert split_urls(["http://a/feeds", " "]) == ["http://a/feeds"]
    assert split_urls(None) == split_urls("") == []


def test_each_url_goes_to_the_spider_of_its_kind_whatever_its_host():
    assert spider_for("https://stackoverflow.com/feeds") == "sofeed"
    assert spider_for("http://127.0.0.1:8766/2.3/questions?site=stackoverflow") == "stackexchange"
    assert not is_api_url("https://api.stackexchange.com/2.3/answers?site=stackoverflow")
    assert not is_api_url("http://[::1")  # not a URL at all


@pytest.mark.parametrize(
    ("feed", "api"),
    [
        ("https://stackoverflow.com/feeds", "site=stackoverflow.com"),
        ("https://superuser.com/feeds", "site=superuser.com"),
        ("https://unix.stackexchange.com/feeds", "site=unix.stackexchange.com"),
        ("https://stackoverflow.com/feeds/tag/c%23", "site=stackoverflow.com&tagged=c%23"),
    ],
)
def test_a_network_sites_feed_has_the_api_source_of_the_same_site(feed, api):
    assert api_url_for(feed) == f"https://api.stackexchange.com/2.3/questions?{api}"


def test_a_feed_off_the_network_has_no_api_source():
    assert api_url_for("http://127.0.0.1:8765/feeds") is None
    assert api_url_for("https://example.com/feeds") is None
