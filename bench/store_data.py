"""A database of N questions, written the way the crawler writes them.

The newest questions (up to RECENT_KEEP, the size of `recent`) go through
Store.save_question, so `recent` and the `changes` marker are exactly what
crawls leave. Older ones, to make the database big, are then inserted
straight into `questions` with insert_many, shaped like the documents
save_question writes and stamped `fetched` a month earlier, and the
marker's count is raised by as many: saving 100,000 questions one by one
would take most of an hour on FerretDB. The web app reads only `recent`
and `changes`, so what it sees is what a crawled database of that size
shows. copy() starts a second database as an exact copy of a first one.
"""

import itertools
from datetime import UTC, datetime, timedelta

from sofeed.store import FIXED_FIELDS, MUTABLE_FIELDS, QUESTIONS, RECENT, RECENT_KEEP, question_key
from tools.sim import atom

BATCH = 1000
# Distinct question bodies to draw from; ids, links and times are made unique.
POOL = 300

_numbers = itertools.count(70_000_000)
_pool = []


def _fields():
    """The next question's fields: a realistic body under a new number."""
    if not _pool:
        _pool.extend(atom.realistic_fields(POOL))
    number = next(_numbers)
    fields = _pool[number % len(_pool)]
    slug = fields["link"].rsplit("/", 1)[1]
    return {
        **fields,
        "entry_id": f"https://stackoverflow.com/q/{number}",
        "question_id": number,
        "link": f"https://stackoverflow.com/questions/{number}/{slug}",
    }


def save_new(store, count):
    """Save count new questions through the store, one after the other, as a crawl does."""
    store.ensure_indexes()
    new = sum(store.save_question(_fields()) for _ in range(count))
    if new != count:
        raise AssertionError(f"save_question stored {new} of {count} new questions")


def add_older(store, count):
    """Insert count questions fetched a month ago, and count them in the `changes` marker."""
    oldest = datetime.now(UTC) - timedelta(days=30)
    for start in range(0, count, BATCH):
        documents = []
        for n in range(start, min(start + BATCH, count)):
            fields = _fields()
            fetched = oldest + timedelta(seconds=n)
            documents.append(
                {
                    "_id": question_key(fields["entry_id"]),
                    **{name: fields[name] for name in FIXED_FIELDS},
                    **{name: fields[name] for name in MUTABLE_FIELDS},
                    "fetched": fetched,
                    "last_changed": fetched,
                }
            )
        store.questions.insert_many(documents, ordered=False)
    # What Store._ensure_marker would count for them: the count new questions are numbered
    # from (docs/COUNTING.md). They are not new, so the version stays.
    store.changes.update_one({"_id": QUESTIONS}, {"$inc": {"count": count}})


def copy(source, target):
    """Make target's database a copy of what crawls wrote in source's: its questions, `recent` and marker."""
    target.ensure_indexes()
    for collection in (QUESTIONS, RECENT):
        target.db[collection].insert_many(list(source.db[collection].find()))
    target.changes.replace_one({"_id": QUESTIONS}, source.changes.find_one({"_id": QUESTIONS}))


def fill(store, count):
    """A database of count questions: the newest RECENT_KEEP saved, the rest inserted older."""
    newest = min(count, RECENT_KEEP)
    save_new(store, newest)
    add_older(store, count - newest)
