"""Read the Stack Exchange API's answers into plain Python values.

An answer to /2.3/questions is the API's common wrapper, or its error
wrapper; read_wrapper() tells them apart. read_question() turns one question
object into the fields of the QuestionItem the Atom spider builds from the
same question, so that both sources store it as one document. Every value
comes from a site we do not control: it is decoded and cleaned as Atom text
is (sofeed/atom.py), never escaped.
"""

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sofeed.atom import SUMMARY_LIMIT, clean_text, html_to_text, shorten


class NotAWrapper(ValueError):
    """A body that is neither the API's wrapper nor its error wrapper; str() says what it is."""


@dataclass(frozen=True)
class ApiError:
    """The error wrapper: error_name is what the API's documentation lists."""

    error_id: int | None
    error_name: str
    error_message: str


@dataclass(frozen=True)
class Wrapper:
    """The common wrapper, or an error (then items is empty); quota fields are None when absent."""

    items: list = field(default_factory=list)
    has_more: bool = False
    quota_max: int | None = None
    quota_remaining: int | None = None
    backoff: int | None = None  # seconds before the same method may be called again
    error: ApiError | None = None


def read_wrapper(body):
    """The Wrapper in a decompressed response body (bytes or str)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        start = body[:40] if isinstance(body, str) else body[:40].decode("utf-8", "replace")
        raise NotAWrapper(f"not JSON ({error.__class__.__name__}), starting {start!r}") from None
    if not isinstance(data, dict):
        raise NotAWrapper(f"JSON, but a {type(data).__name__} instead of the API's wrapper object")
    quota = {name: _count(data.get(name)) for name in ("quota_max", "quota_remaining", "backoff")}
    if "error_name" in data or "error_id" in data:
        error = ApiError(
            _count(data.get("error_id")),
            clean_text(str(data.get("error_name") or "unknown_error")),
            clean_text(str(data.get("error_message") or "")),
        )
        return Wrapper(error=error, **quota)
    items = data.get("items")
    if not isinstance(items, list):
        raise NotAWrapper("JSON without the wrapper's `items` list")
    return Wrapper(items=items, has_more=data.get("has_more") is True, **quota)


def read_question(question):
    """The fields of one API question object as a dict, like atom.read_entry; absent values are None."""
    if not isinstance(question, dict):
        question = {}
    owner = question.get("owner") if isinstance(question.get("owner"), dict) else {}
    link = _url(question.get("link"))
    number = _count(question.get("question_id"))
    body = question.get("body")
    summary = shorten(html_to_text(body, SUMMARY_LIMIT), SUMMARY_LIMIT) if isinstance(body, str) else None
    updated = question.get("last_edit_date") or question.get("last_activity_date")
    tags = question.get("tags") if isinstance(question.get("tags"), list) else []
    return {
        "entry_id": entry_id(link, number),
        "question_id": number,
        "title": _decoded(question.get("title")),
        "link": link,
        "author": _decoded(owner.get("display_name")),
        "author_uri": _url(owner.get("link")),
        "tags": list(dict.fromkeys(clean_text(tag) for tag in tags if isinstance(tag, str) and tag.strip())),
        "rank": _integer(question.get("score")),
        "published": epoch_datetime(question.get("creation_date")),
        "updated": epoch_datetime(updated),
        "summary_text": summary or None,
    }


def entry_id(link, number):
    """The id Stack Overflow's Atom feed gives the question: https://{host of its link}/q/{number}."""
    if link is None or number is None:
        return None
    return f"https://{urlsplit(link).hostname}/q/{number}"


def epoch_datetime(value):
    """Epoch seconds as an aware UTC datetime, or None if value is not a plausible one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _decoded(value):
    """API text (HTML-encoded: &#39;, &quot;, J&#246;rg) as plain text."""
    if not isinstance(value, str):
        return None
    return clean_text(html.unescape(value)) or None


def _url(value):
    """An absolute http(s) URL with a host, or None."""
    if not isinstance(value, str):
        return None
    value = clean_text(value)
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme in ("http", "https") and parts.hostname else None


def _integer(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value):
    """A non-negative integer, or None."""
    value = _integer(value)
    return value if value is not None and value >= 0 else None
