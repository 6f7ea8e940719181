"""Build Atom feeds shaped like Stack Overflow's, for tests.

The layout copies what stackoverflow.com serves: Atom as the default
namespace, the creativeCommons and re (rank) namespaces, categories before the
author, and an HTML summary escaped into the XML text, with apostrophes as
&#x27; and newlines as &#xA;.
"""

import re
from dataclasses import dataclass, field

_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "\n": "&#xA;"}
_XML_SPECIAL = re.compile("[&<>\"'\n]")

TOPICS = [
    ("How do I merge two dictionaries in a single expression?", ["python", "dictionary"]),
    ("Why is my Dockerfile's COPY step invalidating the cache?", ["docker", "dockerfile"]),
    ("Kubernetes ingress returns 404 behind a cloud load balancer", ["kubernetes", "kubernetes-ingress"]),
    ("Rust borrow checker & closures that capture &mut self", ["rust", "borrow-checker"]),
    ('Difference between "let" and "var" in a for loop', ["javascript", "scope"]),
    ("pandas groupby with a custom aggregation keeps NaN rows", ["python", "pandas"]),
    ("Go: context deadline exceeded when calling gRPC from a goroutine", ["go", "grpc"]),
    ("CSS grid item overflows its track on narrow screens", ["css", "css-grid"]),
    ("SQL query to find the second highest salary per department", ["sql", "postgresql"]),
    ("React useEffect runs twice in development mode", ["reactjs", "react-hooks"]),
]


def xml_escape(text):
    return _XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group()], text)


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


def render_feed(entries, title="Newest questions - Stack Overflow", prolog=""):
    """The feed document as UTF-8 bytes; prolog goes between the XML declaration and <feed>."""
    head = f"""<?xml version="1.0" encoding="utf-8"?>
{prolog}<feed xmlns="http://www.w3.org/2005/Atom" xmlns:creativeCommons="http://backend.userland.com/creativeCommonsRssModule" xmlns:re="http://purl.org/atompub/rank/1.0">
    <title type="text">{xml_escape(title)}</title>
    <link rel="self" href="https://stackoverflow.com/feeds" type="application/atom+xml" />
    <link rel="alternate" href="https://stackoverflow.com/questions" type="text/html" />
    <subtitle>most recent 30 from stackoverflow.com</subtitle>
    <updated>2023-12-10T17:21:25Z</updated>
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
