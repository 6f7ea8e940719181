from datetime import UTC, datetime

import pytest
from lxml import etree

from sofeed.atom import (
    clean_text,
    construct_text,
    html_to_text,
    parse_datetime,
    question_id,
    read_entry,
    shorten,
)
from tests.helpers import fixture_bytes
from tools.sim.atom import Entry, render_feed

ATOM = "{http://www.w3.org/2005/Atom}"


def entries_of(document):
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False))
    return [read_entry(entry, "https://stackoverflow.com/feeds") for entry in root.iter(ATOM + "entry")]


@pytest.fixture(scope="module")
def fixture_entries():
    return entries_of(fixture_bytes("newest-questions.xml"))


def test_read_entry_reads_every_field_of_a_stack_overflow_entry(fixture_entries):
    assert fixture_entries[0] == {
        "entry_id": "https://stackoverflow.com/q/77640001",
        "question_id": 77640001,
        "title": 'Why doesn\'t "git stash pop" restore untracked files & folders?',
        "link": "https://stackoverflow.com/questions/77640001/why-doesnt-git-stash-pop-restore-untracked-files-folders",
        "author": "Mira Okafor",
        "author_uri": "https://stackoverflow.com/users/4410021",
        "tags": ["git", "git-stash"],
        "rank": 2,
        "published": datetime(2023, 12, 11, 9, 14, 52, tzinfo=UTC),
        "updated": datetime(2023, 12, 11, 9, 15, 3, tzinfo=UTC),
        "summary_text": "I ran git stash and then git stash pop, but my new files didn't come back. "
        "$ git stash pop No stash entries found. What am I missing?",
    }


def test_read_entry_keeps_markup_in_a_title_and_author_as_literal_text(fixture_entries):
    hostile = fixture_entries[1]
    assert hostile["title"] == "<script>alert('title')</script> shows up in my Django template"
    assert hostile["author"] == "<b>Bold</b> Tester"


def test_read_entry_reads_a_negative_rank(fixture_entries):
    assert fixture_entries[1]["rank"] == -3


def test_read_entry_leaves_author_uri_empty_when_the_feed_has_none(fixture_entries):
    assert fixture_entries[1]["author_uri"] is None


def test_read_entry_gives_an_empty_tag_list_for_an_entry_without_categories(fixture_entries):
    assert fixture_entries[2]["tags"] == []


def test_read_entry_trims_whitespace_around_a_title(fixture_entries):
    assert fixture_entries[2]["title"] == "Segfault in a C program after realloc"


def test_read_entry_gives_none_for_missing_id_title_and_link(fixture_entries):
    no_id, no_title, nothing = fixture_entries[3], fixture_entries[4], fixture_entries[5]
    assert no_id["entry_id"] is None
    assert no_id["question_id"] == 77639901
    assert no_title["title"] is None
    assert (nothing["entry_id"], nothing["link"], nothing["question_id"]) == (None, None, None)


def test_summary_text_drops_scripts_and_keeps_escaped_markup_as_text(fixture_entries):
    assert (
        fixture_entries[1]["summary_text"] == "My template prints <script> tags literally. Is autoescape on?"
    )


def test_summary_text_is_cut_near_500_characters_at_a_word_boundary():
    words = " ".join(f"word{n}" for n in range(300))
    [entry] = entries_of(render_feed([Entry(question_id=1, title="Long", summary_html=f"<p>{words}</p>")]))
    summary = entry["summary_text"]
    assert 400 < len(summary) <= 501
    assert summary.endswith("…")
    assert summary[:-1] == words[: len(summary) - 1]
    assert words[len(summary) - 1] == " "


def test_html_to_text_separates_paragraphs_and_list_items():
    assert html_to_text("<p>one</p><p>two</p><ul><li>three</li><li>four</li></ul>") == "one two three four"


def test_clean_text_removes_nul_and_control_characters_and_folds_whitespace():
    assert clean_text("\x00 a\x01b\x7f \t\n c\x9f ") == "ab c"
    assert clean_text(None) is None


def test_read_entry_resolves_a_relative_link_against_the_feed_url():
    feed = render_feed([Entry(question_id=5, title="Relative", link="/questions/5/relative")])
    [entry] = entries_of(feed)
    assert entry["link"] == "https://stackoverflow.com/questions/5/relative"


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        (("https://stackoverflow.com/q/73118407", None), 73118407),
        ((None, "https://stackoverflow.com/questions/42/a-title"), 42),
        (("https://stackoverflow.com/a/999", "https://stackoverflow.com/questions/42/a#999"), None),
        (("https://stackoverflow.com/q/12abc", None), None),
    ],
)
def test_question_id_comes_from_the_entry_id_or_from_the_link_when_there_is_no_id(urls, expected):
    assert question_id(*urls) == expected


def test_parse_datetime_gives_aware_utc_datetimes():
    assert parse_datetime("2022-03-11T10:42:43Z") == datetime(2022, 3, 11, 10, 42, 43, tzinfo=UTC)
    assert parse_datetime(" 2022-03-11T12:42:43+02:00 ") == datetime(2022, 3, 11, 10, 42, 43, tzinfo=UTC)


@pytest.mark.parametrize("garbage", [None, "", "yesterday", "2022-13-45T99:00:00Z"])
def test_parse_datetime_gives_none_for_what_is_not_a_date(garbage):
    assert parse_datetime(garbage) is None


def test_shorten_leaves_short_text_alone():
    assert shorten("short") == "short"


def test_a_character_reference_to_a_control_character_after_a_paragraph_is_dropped():
    assert html_to_text("<p>first</p>&#1;second") == "first second"


LONG_QUESTION = (
    "<p>I have a <code>dict</code> &amp; a list &lt;like this&gt;:</p>"
    + "<pre><code>"
    + "values = {'key': [1, 2, 3]}  # &quot;comment&quot;\n" * 40
    + "</code></pre>"
    + "<script>window.x = 1</script><style>p { color: red }</style><!-- a comment -->"
    + "".join(
        f"<p>Paragraph {n} with <a href='https://example.com/{n}'>a link</a> &#x27;quoted&#x27;.</p>"
        for n in range(200)
    )
)


@pytest.mark.parametrize("start", range(0, 2400, 97))
def test_a_summary_cut_to_500_characters_reads_as_if_the_whole_question_were_parsed(start):
    markup = LONG_QUESTION[start:]
    assert construct_text_of("html", markup, 500) == shorten(html_to_text(markup))
    assert len(markup) > 4 * 500  # so only a piece of it is parsed


def construct_text_of(kind, text, limit):
    element = etree.Element(ATOM + "summary", type=kind)
    element.text = text
    return construct_text(element, limit)
