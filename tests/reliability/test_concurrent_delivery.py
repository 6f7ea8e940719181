"""Scenario 4: two writers store a growing feed while 50 pages poll for half a minute.

The writers are scheduler.py, crawling every second, and one manual
`scrapy crawl sofeed` after another against the same feed: both insert the
same new questions, racing each other. The pages load `/` and poll /update
as webapp/static/app.js does. In the end, with the writers stopped, each page
must hold exactly the stored questions, and every time an answer brought a
question a page already had must be explained by a writer re-stamping a
slow insert (README: the page dedupes those).
"""

import threading

import pytest

from tests.reliability.pollers import Crowd
from tests.reliability.results import record
from tests.reliability.system import Site, entry_id_counts

# The full tier (`make check`): real processes for seconds to minutes each.
pytestmark = pytest.mark.check

PAGES, POLL_SECONDS, SECONDS = 50, 0.5, 30
PUBLISH_EVERY = 0.3  # seconds: a few new questions for each crawl, never more than the feed's 30


class ManualCrawls:
    """`scrapy crawl sofeed` of the feed, one after another in a thread, until stopped."""

    def __init__(self, crawl, feed_url):
        self.results = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(crawl, feed_url))

    def _run(self, crawl, feed_url):
        while not self._stop.is_set():
            self.results.append(crawl(feed_url, timeout=120))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()


def test_fifty_pages_polling_while_two_writers_store_a_growing_feed_end_with_exactly_the_stored_questions(
    mongo_uri, database_name, tmp_path, crawl
):
    with Site(mongo_uri, database_name, tmp_path, publish_every=PUBLISH_EVERY) as site:
        site.wait_for_first_crawl()
        site.wait_until_settled()
        with Crowd(site.url, PAGES) as crowd:
            crowd.load()
            with ManualCrawls(crawl, site.feed.feed_url) as manual:
                crowd.poll_for(POLL_SECONDS, SECONDS)
            site.stop_writing()
            site.wait_until_settled()
            stored = site.stored()
            crowd.poll_until_all_hold(stored.keys())
            pages = crowd.pages
            errors = crowd.errors
        counts = entry_id_counts(site.store)
        marker_count = site.store.count_questions()
        log_problems = site.log_problems()
        scheduler_new = sum(crawl.count("new") for crawl in site.scheduler.crawls())

    assert errors == []
    assert log_problems == []
    for page in pages:
        assert len(page.shown) == len(set(page.shown)) == len(stored)
        for question_id, fetched in page.receipts.items():
            # Brought again only with a later stamp, and the last one is what the store keeps.
            assert fetched == sorted(set(fetched)), question_id
            assert fetched[-1] == stored[question_id], question_id
    assert set(counts.values()) == {1}
    assert marker_count == len(stored)
    assert [result.returncode for result in manual.results] == [0] * len(manual.results)
    manual_new = sum(result.stat("sofeed/new") for result in manual.results)
    assert manual_new > 0, "the manual crawls never stored a question first: no concurrent writing happened"
    assert scheduler_new > 0
    assert scheduler_new + manual_new == len(stored), "a question counted new by both writers, or by neither"
    duplicates = sum(page.duplicates for page in pages)
    restamped = {
        question_id for page in pages for question_id, fetched in page.receipts.items() if len(fetched) > 1
    }
    record(
        "Concurrent delivery",
        order="4",
        injected=(
            f"2 writers for {SECONDS} s: `scheduler.py` (1 s interval) and {len(manual.results)} manual "
            f"`scrapy crawl sofeed` runs one after another, on a feed gaining a question every "
            f"{PUBLISH_EVERY:g} s; {PAGES} pages loading `/` and polling `/update` every {POLL_SECONDS:g} s "
            "under gunicorn"
        ),
        must_hold=(
            "each page ends with exactly the stored set, shown once each; an answer brings a question a "
            "page already had only with a newer `fetched` (a re-stamped slow insert); each question stored "
            "once"
        ),
        result=(
            f"{len(stored)} questions stored once each ({scheduler_new} by the scheduler, {manual_new} by "
            f"manual crawls); {PAGES}/{PAGES} pages hold exactly that set; {duplicates} duplicate "
            f"receipts across all pages, of {len(restamped)} re-stamped question(s); 0 errors"
        ),
    )
