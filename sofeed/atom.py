"""Read an Atom document: its entries into plain Python values, and what is odd about it.

The spider hands over lxml elements and the document's text; everything
here is pure and fast, so it can be tested without Scrapy and timed on its
own. Every value is feed text from a site we do not control: it is cleaned
(control characters removed, whitespace trimmed) but never escaped.
Escaping happens once, at output.
"""

import codecs
import re
import threading
from datetime import UTC, datetime
from urllib.parse import urljoin

from lxml import etree

ATOM_NS = "http://www.w3.org/2005/Atom"
RANK_NS = "http://purl.org/atompub/rank/1.0"

_A = f"{{{ATOM_NS}}}"
_ID, _TITLE, _LINK = _A + "id", _A + "title", _A + "link"
_AUTHOR, _NAME, _URI = _A + "author", _A + "name", _A + "uri"
_CATEGORY, _SUMMARY = _A + "category", _A + "summary"
_PUBLISHED, _UPDATED = _A + "published", _A + "updated"
_RANK = f"{{{RANK_NS}}}rank"
FEED_TAG = _A + "feed"

SUMMARY_LIMIT = 500

# XML 1.0 forbids most C0 controls, but a recovering parser lets some through,
# and MongoDB (FerretDB in particular) rejects NUL in strings.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
# Stack Overflow ids look like https://stackoverflow.com/q/73118407 and links
# like https://stackoverflow.com/questions/73118407/some-slug.
_QUESTION_ID = re.compile(r"/(?:q|questions)/(\d+)(?:[/?#]|$)")
# An entry's end tag, with or without a namespace prefix.
_ENTRY_END = re.compile(r"</(?:[\w.-]+:)?entry\s*>")
# An entity declaration in a document's DTD.
_ENTITY_DECLARATION = re.compile(r"<!ENTITY\s")
# The first element's start tag: what comes before it is the prolog, DTD included.
_FIRST_ELEMENT = re.compile(r"<[^?!]")
# lxml parsers must not be shared between threads; each thread builds its own.
_parsers = threading.local()
# Elements whose end separates words when HTML is read as text.
_BLOCK_TAGS = (
    *("p", "br", "hr", "div", "pre", "blockquote"),
    *("ul", "ol", "li", "table", "tr", "td", "th"),
    *("h1", "h2", "h3", "h4", "h5", "h6"),
)


def clean_text(value):
    """Remove control characters and fold whitespace; None stays None."""
    if value is None:
        return None
    # Most feed text is one line of printable characters: no control character,
    # no whitespace but single spaces, so nothing to remove or fold.
    if value.isprintable() and "  " not in value:
        return value.strip()
    return _SPACE.sub(" ", _CONTROL.sub("", value)).strip()


def element_text(element):
    """All character data under an element, ignoring unexpanded entities.

    The parser never expands entity references that a document declares
    (that is how entity bombs and external entities are defused), so such
    references stay as entity nodes, and they carry no text of their own.
    """
    if element is None:
        return None
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            parts.append(element_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _html_parser():
    parser = getattr(_parsers, "html", None)
    if parser is None:
        parser = _parsers.html = etree.HTMLParser(no_network=True, remove_comments=True, remove_pis=True)
    return parser


def html_to_text(markup, limit=None):
    """Reduce an HTML fragment to its plain text, without scripts or styles.

    With a limit, only about the first limit characters of the text are
    wanted (see shorten), and only as much markup is parsed as they need:
    first a piece a few times longer than limit, then twice as much, until
    the text is longer than limit by a margin or the markup is all read.
    A long question then costs about as much as a short one. A piece cut
    in the middle of a tag or an entity spoils only the end of its text,
    which lies beyond the margin.
    """
    if "<" not in markup and "&" not in markup:
        return clean_text(markup)
    if limit is None:
        return _markup_text(markup)
    size = limit * _MARKUP_PER_TEXT
    while True:
        text = _markup_text(markup[:size])
        if size >= len(markup) or len(text) > limit + _CUT_MARGIN:
            return text
        size *= 2


# How many characters of a question's markup to read per character of text
# wanted, at first: code blocks, links and entities make markup longer.
_MARKUP_PER_TEXT = 3
# Text this far beyond the limit is discarded: a cut entity (&amp) or word is harmless there.
_CUT_MARGIN = 32


def _markup_text(markup):
    # Before parsing: the HTML parser would turn a NUL into U+FFFD.
    root = etree.fromstring(_CONTROL.sub("", markup), _html_parser())
    if root is None:  # nothing but whitespace or comments
        return ""
    etree.strip_elements(root, "script", "style", with_tail=False)
    for element in root.iter(*_BLOCK_TAGS):
        tail = element.tail or ""
        try:
            element.tail = " " + tail
        except ValueError:  # a character reference to a control character, like &#1;
            element.tail = " " + _CONTROL.sub("", tail)
    return clean_text("".join(root.itertext()))


def construct_text(element, limit=None):
    """The plain text of an Atom text construct (type text, html or xhtml).

    With a limit, shortened to about limit characters (see shorten).
    """
    if element is None:
        return None
    if element.get("type") == "html":
        text = html_to_text(element_text(element), limit)
    else:
        text = clean_text(element_text(element))
    return shorten(text, limit) if limit else text


def shorten(text, limit=SUMMARY_LIMIT):
    """Cut text to about limit characters, at a word boundary, marked with …"""
    if text is None or len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def parse_datetime(value):
    """An RFC 3339 date as an aware UTC datetime, or None if it is not one."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_int(value):
    """An integer from feed text, or None."""
    try:
        return int(value.strip())
    except (AttributeError, ValueError):
        return None


def question_id(entry_id, link):
    """The question number in the entry's id, or in its link if it has no id.

    Only the id counts when there is one: an answer's id (/a/123) has no
    question number, though its link holds the question it answers.
    """
    match = _QUESTION_ID.search(entry_id or link or "")
    return int(match.group(1)) if match else None


def absolute_url(href, base_url):
    """href made absolute against the feed's URL, if it is relative."""
    return href if href.startswith(("https://", "http://")) else urljoin(base_url, href)


def read_entry(entry, base_url=""):
    """The fields of one Atom entry as a dict; absent values are None.

    One pass over the entry's children: where an element appears twice,
    the first one counts, except categories, which all do.
    """
    first = {}
    terms = []
    link = None
    for child in entry:
        tag = child.tag
        if tag == _CATEGORY:
            terms.append(clean_text(child.get("term")))
        elif tag == _LINK:
            href = clean_text(child.get("href"))
            if link is None and href and child.get("rel", "alternate") == "alternate":
                link = absolute_url(href, base_url)
        elif tag not in first:
            first[tag] = child
    author = first.get(_AUTHOR)
    entry_id = _text_of(first.get(_ID))
    return {
        "entry_id": entry_id,
        "question_id": question_id(entry_id, link),
        "title": construct_text(first.get(_TITLE)) or None,
        "link": link,
        "author": _text_of(author.find(_NAME)) if author is not None else None,
        "author_uri": _text_of(author.find(_URI)) if author is not None else None,
        "tags": list(dict.fromkeys(term for term in terms if term)),
        "rank": parse_int(_text_of(first.get(_RANK))),
        "published": parse_datetime(_text_of(first.get(_PUBLISHED))),
        "updated": parse_datetime(_text_of(first.get(_UPDATED))),
        "summary_text": construct_text(first.get(_SUMMARY), SUMMARY_LIMIT) or None,
    }


def _text_of(element):
    """The cleaned text of a simple element, or None if it is absent or empty."""
    return clean_text(element_text(element)) or None


def complete_entries(text):
    """How many entries a document holds whole, by their end tags, whatever a recovering parser made of it."""
    return len(_ENTRY_END.findall(text))


def declared_entities(text):
    """How many entities the document's DTD declares (never expanded: see element_text)."""
    first_element = _FIRST_ELEMENT.search(text)
    prolog = text[: first_element.start()] if first_element else text
    return len(_ENTITY_DECLARATION.findall(prolog))


def mislabelled_utf8(body, declared_encoding):
    """Whether a body that declares another encoding is, in fact, UTF-8.

    Bytes above 0x7F that decode as UTF-8 are UTF-8: text in Latin-1 or
    cp1252 almost never forms valid multi-byte sequences. A body without such
    bytes reads the same in any ASCII-compatible encoding, so it is left alone.
    """
    if codecs.lookup(declared_encoding).name == "utf-8" or body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
