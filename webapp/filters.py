"""Which questions a page, a poll or a feed asks for: ?tags=python,flask&q=async await.

`tags` matches a question with any of the tags, `q` one whose title or
summary contains all of the words; both are case-insensitive. A filter runs
on the in-memory snapshot (webapp/recent.py), so it costs no database query,
and it reaches back as far as the snapshot does: the newest 1,000 questions.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from webapp.recent import KEEP

MAX_TAGS = 20
MAX_TAG_LENGTH = 35  # Stack Overflow's own limit for a tag name
MAX_Q_LENGTH = 200
_SEPARATE = {"tags": "separate several tags with commas", "q": "separate several words with spaces"}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class FilterError(ValueError):
    """Filter input that cannot be used; str() says what to send instead."""


@dataclass(frozen=True)
class QuestionFilter:
    """Tags (any of them) and words (all of them), lower-cased; empty matches every question."""

    tags: tuple = ()
    words: tuple = ()

    @classmethod
    def from_args(cls, args):
        """The filter of a request's query arguments; raises FilterError on bad input."""
        tags = _single(args, "tags")
        q = _single(args, "q")
        for name, value in (("tags", tags), ("q", q)):
            if _CONTROL.search(value):
                raise FilterError(f"{name} contains a control character: send printable text only")
        if len(q) > MAX_Q_LENGTH:
            raise FilterError(f"q is longer than {MAX_Q_LENGTH} characters: search for fewer words")
        names = []
        for tag in tags.split(","):
            tag = tag.strip().lower()
            if len(tag) > MAX_TAG_LENGTH:
                raise FilterError(
                    f"the tag {tag[:MAX_TAG_LENGTH]!r}… is longer than {MAX_TAG_LENGTH} characters: "
                    "no Stack Overflow tag is; check the spelling"
                )
            if tag and tag not in names:
                names.append(tag)
        if len(names) > MAX_TAGS:
            raise FilterError(f"{len(names)} tags given: filter on at most {MAX_TAGS} tags at once")
        words = []
        for word in q.lower().split():
            if word not in words:
                words.append(word)
        return cls(tags=tuple(names), words=tuple(words))

    def __bool__(self):
        return bool(self.tags or self.words)

    def matches(self, question):
        """Whether a public_question() dict passes this filter."""
        if self.tags:
            tags = {str(tag).lower() for tag in question.get("tags") or ()}
            if tags.isdisjoint(self.tags):
                return False
        if self.words:
            text = f"{question.get('title') or ''}\n{question.get('summary_text') or ''}".lower()
            if not all(word in text for word in self.words):
                return False
        return True

    def questions_after(self, snapshot, timestamp, limit):
        """Like Snapshot.questions_after, matching questions only: the newest limit of them."""
        if not self:
            return snapshot.questions_after(timestamp, limit=limit)
        chosen = []
        for question in snapshot.questions_after(timestamp, limit=KEEP):
            if len(chosen) >= limit:
                break
            if self.matches(question):
                chosen.append(question)
        return chosen

    def args(self):
        """The query arguments that give this filter back, empty ones left out."""
        args = {}
        if self.tags:
            args["tags"] = ",".join(self.tags)
        if self.words:
            args["q"] = " ".join(self.words)
        return args

    def query_string(self):
        """This filter as a query string without the '?', like tags=python%2Cflask&q=async."""
        return urlencode(self.args())

    def with_tag(self, tag):
        """This filter with one more tag (the query string a tag chip links to)."""
        tag = str(tag).strip().lower()
        return self if not tag or tag in self.tags else QuestionFilter((*self.tags, tag), self.words)

    def without_tag(self, tag):
        return QuestionFilter(tuple(name for name in self.tags if name != tag), self.words)


def _single(args, name):
    values = args.getlist(name)
    if len(values) > 1:
        raise FilterError(f"give {name} once: {_SEPARATE[name]}")
    return values[0] if values else ""
