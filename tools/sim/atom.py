"""Build Atom feeds shaped like Stack Overflow's, for the tests, the benchmarks and `make demo`.

The layout copies what stackoverflow.com serves: Atom as the default
namespace, the creativeCommons and re (rank) namespaces, categories before the
author, and an HTML summary escaped into the XML text, with apostrophes as
&#x27; and newlines as &#xA;.
"""

import json
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "\n": "&#xA;"}
_XML_SPECIAL = re.compile("[&<>\"'\n]")

SAMPLES = json.loads((Path(__file__).with_name("samples.json")).read_text(encoding="utf-8"))
# (title, tags) of short questions, for tests that want a few plain entries.
TOPICS = [(sample["title"], sample["tags"]) for sample in SAMPLES["short_questions"]]
AUTHORS = SAMPLES["authors"]


def xml_escape(text):
    return _XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group()], text)


def html_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80]


@dataclass
class Entry:
    """One question as the feed lists it; ids and links follow from question_id."""

    question_id: int
    title: str
    tags: list = field(default_factory=lambda: ["python"])
    author: str = "Ada Example"
    author_uri: str | None = "https://stackoverflow.com/users/1000001"
    rank: int | None = 0
    published: str = "2023-12-10T16:39:44Z"
    updated: str = "2023-12-10T16:41:02Z"
    summary_html: str = (
        "<p>I tried the obvious approach but it doesn't work:</p>\n<pre><code>x = 1\n</code></pre>\n"
    )
    entry_id: str | None = None
    link: str | None = None

    def __post_init__(self):
        if self.entry_id is None:
            self.entry_id = f"https://stackoverflow.com/q/{self.question_id}"
        if self.link is None:
            self.link = f"https://stackoverflow.com/questions/{self.question_id}/{slug(self.title)}"


def render_entry(entry):
    lines = ["    <entry>"]
    if entry.entry_id:
        lines.append(f"        <id>{xml_escape(entry.entry_id)}</id>")
    if entry.rank is not None:
        lines.append(f'        <re:rank scheme="https://stackoverflow.com">{entry.rank}</re:rank>')
    if entry.title is not None:
        lines.append(f'        <title type="text">{xml_escape(entry.title)}</title>')
    for tag in entry.tags:
        lines.append(
            f'            <category scheme="https://stackoverflow.com/tags" term="{xml_escape(tag)}" />'
        )
    lines.append("        <author>")
    lines.append(f"            <name>{xml_escape(entry.author)}</name>")
    if entry.author_uri:
        lines.append(f"            <uri>{xml_escape(entry.author_uri)}</uri>")
    lines.append("        </author>")
    if entry.link:
        lines.append(f'        <link rel="alternate" href="{xml_escape(entry.link)}" />')
    lines.append(f"        <published>{entry.published}</published>")
    lines.append(f"        <updated>{entry.updated}</updated>")
    lines.append('        <summary type="html">')
    lines.append(f"            {xml_escape(entry.summary_html)}")
    lines.append("        </summary>")
    lines.append("    </entry>")
    return "\n".join(lines)


def render_feed(
    entries, title="Newest questions - Stack Overflow", prolog="", updated="2023-12-10T17:21:25Z"
):
    """The feed document as UTF-8 bytes; prolog goes between the XML declaration and <feed>."""
    head = f"""<?xml version="1.0" encoding="utf-8"?>
{prolog}<feed xmlns="http://www.w3.org/2005/Atom" \
xmlns:creativeCommons="http://backend.userland.com/creativeCommonsRssModule" \
xmlns:re="http://purl.org/atompub/rank/1.0">
    <title type="text">{xml_escape(title)}</title>
    <link rel="self" href="https://stackoverflow.com/feeds" type="application/atom+xml" />
    <link rel="alternate" href="https://stackoverflow.com/questions" type="text/html" />
    <subtitle>most recent 30 from stackoverflow.com</subtitle>
    <updated>{updated}</updated>
    <id>https://stackoverflow.com/feeds</id>
    <creativeCommons:license>https://creativecommons.org/licenses/by-sa/4.0/rdf</creativeCommons:license>
"""
    body = "\n".join(render_entry(entry) for entry in entries)
    return (head + body + "\n</feed>").encode("utf-8")


def sample_entries(count, first_id=77600000):
    """Distinct, realistic questions, newest first, as the newest-questions feed lists them."""
    entries = []
    for n in range(count):
        title, tags = TOPICS[n % len(TOPICS)]
        if n >= len(TOPICS):
            title = f"{title} (variant {n // len(TOPICS)})"
        question_id = first_id + count - n
        minute = 59 - n % 60
        entries.append(
            Entry(
                question_id=question_id,
                title=title,
                tags=tags,
                author=f"user{question_id % 9973}",
                author_uri=f"https://stackoverflow.com/users/{question_id % 9973 + 100}",
                rank=n % 3 - 1,
                published=f"2023-12-10T16:{minute:02d}:00Z",
                updated=f"2023-12-10T16:{minute:02d}:30Z",
            )
        )
    return entries


FIRST_QUESTION_ID = 78_000_000
# Tags to add beside a question's own, as askers do (up to five in all).
EXTRA_TAGS = sorted({tag for sample in SAMPLES["questions"] for tag in sample["tags"]})


def realistic_summary(rng, tags, paragraphs=None):
    """A question body: paragraphs with inline code, and code blocks of several lines.

    Sized as real ones are: from 250 characters to 2.4 KB of escaped XML
    (median 1.2 KB), for one to five paragraphs.
    """
    parts = []
    for n in range(paragraphs or rng.randint(1, 5)):
        sample = rng.choice(SAMPLES["questions"])
        phrase = rng.choice(SAMPLES["phrases"])
        inline = html_escape(sample["code"].split()[0])
        parts.append(
            f"<p>{html_escape(sample['tried'])}. I'm using <code>{inline}</code> here. "
            f"{html_escape(phrase['opening'])}</p>"
        )
        if n < 3 and rng.random() < 0.7:
            lines = [rng.choice(SAMPLES["questions"])["code"] for _ in range(rng.randint(1, 8))]
            parts.append("<pre><code>" + html_escape("\n".join(lines)) + "\n</code></pre>")
        if n == 0 or rng.random() < 0.3:
            parts.append(f"<p>{html_escape(phrase['closing'].format(tag=tags[0]))}</p>")
    return "\n".join(parts) + "\n"


def realistic_entry(rng, question_id, published, paragraphs=None):
    """One made-up question drawn from samples.json, with two to five tags."""
    sample = rng.choice(SAMPLES["questions"])
    tags = list(sample["tags"])
    tags += [tag for tag in rng.sample(EXTRA_TAGS, rng.randint(0, 3)) if tag not in tags]
    return Entry(
        question_id=question_id,
        title=sample["title"],
        tags=tags,
        author=rng.choice(AUTHORS),
        author_uri=f"https://stackoverflow.com/users/{rng.randint(1_000_000, 23_000_000)}",
        rank=rng.choice([0, 0, 0, 0, 1, 1, 2, 3, -1, -2]),
        published=iso(published),
        updated=iso(published + timedelta(seconds=question_id % 50)),
        summary_html=realistic_summary(rng, tags, paragraphs),
    )


def realistic_entries(count, seed=1, newest=None):
    """count made-up questions, newest first, one to three minutes apart."""
    rng = random.Random(seed)
    moment = newest or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    question_id = FIRST_QUESTION_ID + count * 40
    made = []
    for _ in range(count):
        made.append(realistic_entry(rng, question_id, moment))
        question_id -= rng.randint(1, 40)
        moment -= timedelta(seconds=rng.randint(60, 180))
    return made


def realistic_feed(count, seed=1):
    """A feed of count made-up questions, newest first, as UTF-8 bytes."""
    entries = realistic_entries(count, seed)
    return render_feed(entries, updated=entries[0].published if entries else iso(datetime.now(UTC)))


def realistic_fields(count, seed=1):
    """count made-up questions as the spider reads them (sofeed.atom.read_entry), newest first."""
    from lxml import etree

    from sofeed.atom import read_entry

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(realistic_feed(count, seed), parser)
    entries = root.iter("{http://www.w3.org/2005/Atom}entry")
    return [read_entry(entry, "https://stackoverflow.com/feeds") for entry in entries]
