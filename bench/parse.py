"""Parse throughput: entries per second of the spider's real extraction path.

The spider's path is what a crawl runs on a feed response: Scrapy calls the
XMLFeedSpider callback (`_parse`) with an XmlResponse; it selects the
`<entry>` nodes with the "xml" iterator, and SofeedSpider.parse_nodes and
parse_node (sofeed/atom.py's read_entry) build a QuestionItem from each.
The input is a 3,000-entry feed shaped like Stack Overflow's
(tools/sim/atom.py), about 6 MB.

Anchors, on the same bytes, in the same run, one after the other:
  - a bare lxml.etree.iterparse loop that extracts the same fields (id,
    question number, title, link, author name and uri, tags, rank, published
    and updated as datetimes, and the summary as plain text), the practical
    limit of a parser written in Python;
  - feedparser.parse, the usual way to read a feed in Python.
All three first read the feed once, unmeasured, and must return every
entry with the same ids, or the benchmark fails. Then they take turns, in
rounds, so that a busy spell of the machine slows all of them alike; each
rate is the median of its runs (the best is noted too), with a garbage
collection before each.
"""

import gc
import io
import re
import statistics
import sys
import time
from datetime import datetime

import common
import feedparser
from lxml import etree, html

from tests.helpers import feed_response, make_spider
from tools.sim import atom

ENTRIES, QUICK_ENTRIES = 3000, 300
ROUNDS, QUICK_ROUNDS = 6, 2
# feedparser, the slow one, runs every other round.
FEEDPARSER_EVERY = 2

_A = "{http://www.w3.org/2005/Atom}"
_ENTRY, _ID, _TITLE, _LINK, _AUTHOR = _A + "entry", _A + "id", _A + "title", _A + "link", _A + "author"
_NAME, _URI, _CATEGORY, _SUMMARY = _A + "name", _A + "uri", _A + "category", _A + "summary"
_PUBLISHED, _UPDATED = _A + "published", _A + "updated"
_RANK = "{http://purl.org/atompub/rank/1.0}rank"
_QUESTION_ID = re.compile(r"/(?:q|questions)/(\d+)")


def spider_entries(spider, body):
    """The spider's items for a feed body, as a crawl gets them."""
    response = feed_response(body)
    return [dict(item) for item in spider._parse(response)]


def _text(element, tag):
    return (element.findtext(tag) or "").strip()


def lxml_entries(body):
    """The same fields with a bare iterparse loop, freeing each entry once read."""
    entries = []
    for _event, entry in etree.iterparse(
        io.BytesIO(body), tag=_ENTRY, resolve_entities=False, no_network=True
    ):
        entry_id = _text(entry, _ID)
        author = entry.find(_AUTHOR)
        summary = html.fromstring(_text(entry, _SUMMARY)).text_content()
        entries.append(
            {
                "entry_id": entry_id,
                "question_id": int(_QUESTION_ID.search(entry_id).group(1)),
                "title": _text(entry, _TITLE),
                "link": entry.find(_LINK).get("href"),
                "author": _text(author, _NAME),
                "author_uri": _text(author, _URI),
                "tags": [category.get("term") for category in entry.iterfind(_CATEGORY)],
                "rank": int(_text(entry, _RANK)),
                "published": datetime.fromisoformat(_text(entry, _PUBLISHED)),
                "updated": datetime.fromisoformat(_text(entry, _UPDATED)),
                "summary_text": " ".join(summary.split())[:500],
            }
        )
        entry.clear(keep_tail=True)
        while entry.getprevious() is not None:
            del entry.getparent()[0]
    return entries


def feedparser_entries(body):
    return feedparser.parse(body).entries


def timed_rounds(readers, rounds):
    """{name: [seconds, ...]}: each reader once per round, in turn, so that a
    busy spell of the machine slows them all alike."""
    seconds = {name: [] for name in readers}
    for round_number in range(rounds):
        for name, (read, every) in readers.items():
            if round_number % every == 0:
                gc.collect()
                started = time.perf_counter()
                read()
                seconds[name].append(time.perf_counter() - started)
    return seconds


def check_same_entries(body, spider, count):
    """Each way of reading must return every entry, in feed order, with the same ids."""
    spider_ids = [entry["entry_id"] for entry in spider_entries(spider, body)][::-1]  # stored oldest first
    lxml_ids = [entry["entry_id"] for entry in lxml_entries(body)]
    feedparser_ids = [entry.id for entry in feedparser_entries(body)]
    if not (len(spider_ids) == count and spider_ids == lxml_ids == feedparser_ids):
        raise AssertionError(
            f"the parsers disagree: {len(spider_ids)} spider, {len(lxml_ids)} lxml, "
            f"{len(feedparser_ids)} feedparser entries, of {count}"
        )


def run(quick):
    count = QUICK_ENTRIES if quick else ENTRIES
    rounds = QUICK_ROUNDS if quick else ROUNDS
    body = atom.realistic_feed(count)
    spider = make_spider()
    check_same_entries(body, spider, count)
    seconds = timed_rounds(
        {
            "spider": (lambda: spider_entries(spider, body), 1),
            "lxml loop": (lambda: lxml_entries(body), 1),
            "feedparser": (lambda: feedparser_entries(body), FEEDPARSER_EVERY),
        },
        rounds,
    )
    median = {name: count / statistics.median(times) for name, times in seconds.items()}
    best = {name: count / min(times) for name, times in seconds.items()}
    spider_rate, lxml_rate, feedparser_rate = median["spider"], median["lxml loop"], median["feedparser"]

    result = common.Result(
        "parse",
        "1. Parse throughput",
        f"{count:,}-entry Stack Overflow-shaped feed ({len(body) / 1e6:.1f} MB), median of the runs: "
        + ", ".join(f"{name} {len(times)}" for name, times in seconds.items()),
    )
    result.add(
        "spider (XMLFeedSpider._parse → QuestionItem)",
        spider_rate,
        "entries/s",
        "bare lxml.etree.iterparse loop",
        lxml_rate,
        common.ratio(spider_rate, lxml_rate),
        "x the lxml loop's rate",
        "≥ 0.5x",
        spider_rate >= 0.5 * lxml_rate,
    )
    result.add(
        "spider (XMLFeedSpider._parse → QuestionItem)",
        spider_rate,
        "entries/s",
        "feedparser.parse",
        feedparser_rate,
        common.ratio(spider_rate, feedparser_rate),
        "x feedparser's rate",
        "≥ 10x",
        spider_rate >= 10 * feedparser_rate,
    )
    result.note("best runs", ", ".join(f"{name} {rate:,.0f}" for name, rate in best.items()) + " entries/s")
    result.note(
        "time for the whole feed (median)",
        f"spider {count / spider_rate * 1000:,.0f} ms, lxml loop {count / lxml_rate * 1000:,.0f} ms, "
        f"feedparser {count / feedparser_rate * 1000:,.0f} ms",
    )
    return result


if __name__ == "__main__":
    sys.exit(common.main(run))
