"""GET /feed.atom: the newest matching questions as Atom 1.0, so a feed reader
(or another sofeed) can subscribe to exactly what a filtered page shows.

Each entry keeps the question's own Atom id (`entry_id`), so a sofeed that
crawls this feed stores every question under the same `_id` as this one.
The document is built with lxml, which escapes feed text exactly once and
always writes well-formed XML; the ETag is a digest of the document itself.
"""

import hashlib
import re
from datetime import UTC, datetime

from flask import Blueprint, request, url_for
from lxml import etree

from sofeed.atom import ATOM_NS, RANK_NS
from webapp.db import get_recent
from webapp.documents import iso_utc
from webapp.errors import error_response
from webapp.filters import QuestionFilter
from webapp.questions import web_link
from webapp.recent import StoreUnavailable

bp = Blueprint("atom_feed", __name__)

FEED_SIZE = 50  # entries in one document, the newest matching questions
CONTENT_TYPE = "application/atom+xml; charset=utf-8"
_A = f"{{{ATOM_NS}}}"
# Characters XML 1.0 cannot carry at all, even escaped; stored text rarely has any.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_EPOCH = "1970-01-01T00:00:00Z"


@bp.get("/feed.atom")
def feed():
    """The newest questions that pass the filter, as an Atom feed; 304 if the reader has it."""
    try:
        wanted = QuestionFilter.from_args(request.args)
    except ValueError as error:
        return error_response(400, str(error))
    try:
        snapshot = get_recent().snapshot()
    except StoreUnavailable as error:
        return error_response(503, str(error))
    questions = wanted.questions_after(snapshot, 0, FEED_SIZE)
    body = render(wanted, questions)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    known = _etags(request.headers.get("If-None-Match", ""))
    if etag in known or "*" in known:
        return "", 304, headers
    return body, 200, {**headers, "Content-Type": CONTENT_TYPE}


def render(wanted, questions):
    """The Atom document, as UTF-8 bytes, for a filter and its questions (newest first)."""
    query = wanted.query_string()
    self_url = url_for("atom_feed.feed", _external=True) + ("?" + query if query else "")
    page_url = url_for("questions.index", _external=True) + ("?" + query if query else "")
    root = etree.Element(_A + "feed", nsmap={None: ATOM_NS, "re": RANK_NS})
    _add(root, "id", self_url)
    title = "sofeed: new questions" + (" in " + ", ".join(wanted.tags) if wanted.tags else "")
    _add(root, "title", title + (" matching " + " ".join(wanted.words) if wanted.words else ""))
    _link(root, "self", self_url, "application/atom+xml")
    _link(root, "alternate", page_url, "text/html")
    _add(root, "updated", max((_updated(q) for q in questions), default=_EPOCH))
    _add(root, "generator", "sofeed")
    for question in questions:
        _entry(root, question)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _entry(root, question):
    entry = etree.SubElement(root, _A + "entry")
    link = web_link(question.get("link"))
    _add(entry, "id", question.get("entry_id") or question.get("link"))
    _add(entry, "title", question.get("title") or "", type="text")
    if link:
        _link(entry, "alternate", link, "text/html")
    author = etree.SubElement(entry, _A + "author")
    _add(author, "name", question.get("author") or "anonymous")
    if web_link(question.get("author_uri")):
        _add(author, "uri", question["author_uri"])
    for tag in question.get("tags") or ():
        etree.SubElement(entry, _A + "category", scheme="https://stackoverflow.com/tags", term=_xml(tag))
    if isinstance(question.get("rank"), int):
        _add(entry, f"{{{RANK_NS}}}rank", str(question["rank"]), scheme="https://stackoverflow.com")
    _add(entry, "published", question.get("published") or _fetched(question))
    _add(entry, "updated", _updated(question))
    if question.get("summary_text"):
        _add(entry, "summary", question["summary_text"], type="text")


def _add(parent, name, text, **attributes):
    tag = name if name.startswith("{") else _A + name
    element = etree.SubElement(parent, tag, **attributes)
    element.text = _xml(text)
    return element


def _link(parent, rel, href, media_type):
    etree.SubElement(parent, _A + "link", rel=rel, type=media_type, href=_xml(href))


def _xml(text):
    return _NOT_XML.sub("", str(text))


def _fetched(question):
    return iso_utc(datetime.fromtimestamp(question["fetched"], UTC).replace(microsecond=0))


def _updated(question):
    return question.get("updated") or question.get("published") or _fetched(question)


def _etags(header):
    """The entity tags of an If-None-Match header, weak ones as their strong form."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
