"""Stored documents as the web app hands them out in JSON.

Times become epoch seconds (floats at MongoDB's millisecond precision) or
ISO 8601 UTC; feed text passes through as it was stored, unescaped: the
template and the page's script escape it once, at output.
"""

from datetime import UTC, datetime


def epoch(moment):
    """An aware datetime as epoch seconds, a float at millisecond precision."""
    return round(moment.timestamp(), 3) if moment is not None else None


def iso_utc(moment):
    """An aware datetime in ISO 8601 UTC with a Z, or None."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


def public_question(doc):
    """A stored question as /update hands it out (and the page renders it)."""
    return {
        "id": doc["_id"],
        # The question's own Atom id and update time, which /feed.atom passes on.
        "entry_id": doc.get("entry_id"),
        "title": doc.get("title"),
        "link": doc.get("link"),
        "author": doc.get("author"),
        "author_uri": doc.get("author_uri"),
        "tags": list(doc.get("tags") or []),
        "rank": doc.get("rank"),
        "published": iso_utc(doc.get("published")),
        "updated": iso_utc(doc.get("updated")),
        "fetched": epoch(doc["fetched"]),
        "summary_text": doc.get("summary_text"),
    }


def plain(value):
    """A stored value as JSON: datetimes as epoch seconds."""
    if isinstance(value, datetime):
        return epoch(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def short_reason(error):
    """The first line of a pymongo error, without its topology description."""
    text = str(error).strip().split("\n", 1)[0] or type(error).__name__
    return text.split(", Timeout: ", 1)[0].split(" (configured timeouts", 1)[0][:200]
