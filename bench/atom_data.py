"""Made-up Stack Overflow questions, as the site's Atom feed lists them.

The benchmarks build their own data: the shape is stackoverflow.com's
(Atom as the default namespace, `re:rank`, categories as tags, author name
and uri, an HTML summary escaped into the XML with entities such as &#x27;
and &#xA;, published and updated, ids like https://stackoverflow.com/q/NNN),
and so are the sizes: a summary holds the whole question body, one to five
paragraphs and up to three code blocks, so that summaries take from 250
characters to 2.4 KB of escaped XML (median 1.2 KB; a real feed's run from
0.2 to 4.5 KB, median 1.1 KB), with two to five tags, and an entry about
2.1 KB, as in real feeds. The entry markup is tools/feedsim.py's, which
copies the site's.
"""

import random
from datetime import UTC, datetime, timedelta

from sofeed.atom import read_entry
from tools.feedsim import AUTHORS, FEED_HEAD, SUMMARY_PHRASES, TOPICS, Question, html_escape, slug

FIRST_QUESTION_ID = 78_000_000
# Tags to add beside a topic's own two, as askers do (up to five in all).
EXTRA_TAGS = sorted({tag for _title, tags, _tried, _code in TOPICS for tag in tags.split()})


def _summary_html(rng, topic_tags):
    """A question body: paragraphs with inline code, code blocks with several lines."""
    parts = []
    for n in range(rng.randint(1, 5)):
        _title, _tags, tried, code = rng.choice(TOPICS)
        opening, closing = rng.choice(SUMMARY_PHRASES)
        inline = html_escape(code.split()[0])
        parts.append(
            f"<p>{html_escape(tried)}. I'm using <code>{inline}</code> here. {html_escape(opening)}</p>"
        )
        if n < 3 and rng.random() < 0.7:
            lines = [rng.choice(TOPICS)[3] for _ in range(rng.randint(1, 8))]
            parts.append("<pre><code>" + html_escape("\n".join(lines)) + "\n</code></pre>")
        if n == 0 or rng.random() < 0.3:
            parts.append(f"<p>{html_escape(closing.format(tag=topic_tags[0]))}</p>")
    return "\n".join(parts) + "\n"


def questions(count, seed=1, newest=None):
    """count feedsim Questions, newest first, one to three minutes apart."""
    rng = random.Random(seed)
    moment = newest or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    question_id = FIRST_QUESTION_ID + count * 40
    made = []
    for _ in range(count):
        title, tags, _tried, _code = rng.choice(TOPICS)
        tags = tags.split()
        tags += [tag for tag in rng.sample(EXTRA_TAGS, rng.randint(0, 3)) if tag not in tags]
        made.append(
            Question(
                question_id=question_id,
                title=title,
                tags=tags,
                author=rng.choice(AUTHORS),
                author_uri=f"https://stackoverflow.com/users/{rng.randint(1_000_000, 23_000_000)}",
                rank=rng.choice([0, 0, 0, 0, 1, 1, 2, 3, -1, -2]),
                published=moment,
                summary_html=_summary_html(rng, tags),
                link=f"https://stackoverflow.com/questions/{question_id}/{slug(title)}",
            )
        )
        question_id -= rng.randint(1, 40)
        moment -= timedelta(seconds=rng.randint(60, 180))
    return made


def feed(count, seed=1):
    """A feed of count entries, newest first, as UTF-8 bytes."""
    entries = questions(count, seed)
    body = FEED_HEAD.format(updated=entries[0].published.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return (body + "\n".join(entry.entry_xml() for entry in entries) + "\n</feed>").encode("utf-8")


def question_fields(count, seed=1):
    """count questions as the spider reads them (sofeed.atom.read_entry), newest first."""
    from lxml import etree

    root = etree.fromstring(feed(count, seed), etree.XMLParser(resolve_entities=False, no_network=True))
    return [read_entry(entry, "https://stackoverflow.com/feeds") for entry in root.iter(_ENTRY)]


_ENTRY = "{http://www.w3.org/2005/Atom}entry"
