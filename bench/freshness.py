"""Freshness: how long a new question takes to appear in an open page.

The whole system runs as in production, on one machine: tools/sim/feed_server.py
plays Stack Overflow and publishes nothing by itself; scheduler.py crawls
it at the default interval (30 s); the web app runs under gunicorn with
webapp/gunicorn_conf.py and default page settings; headless Chromium
shows the page. The benchmark publishes questions (POST /publish) at
random moments, several per crawl interval, and a MutationObserver in the
page records Date.now() when each `li[data-id]` is added to #questions
(same machine, same clock).

Two figures, p50 and p95 over the publications:
  - end to end: from publishing to visible in the page;
  - after the crawl: from the question's insert (its `fetched` in the
    store) to visible in the page.
Anchor: the 2015 original's design, computed rather than run: a crawl
every 30 s and a page polling every 5 s, so a question waits U(0, 30 s)
for the crawl and then U(0, 5 s) for the poll (worst case 35 s; after the
crawl, U(0, 5 s), worst case 5 s). Goals: after the crawl p95 ≤ 1 s; end
to end p95 ≤ the interval + 1 s.
"""

import contextlib
import random
import sys
import time
import uuid

import common
from playwright.sync_api import sync_playwright

from bench.services import private_database, web_app
from sofeed.store import Store
from tests.browser import launch_chromium
from tests.processes import FeedSimulator, launch_scheduler, wait_until

# (crawl interval s, publications, intervals they are spread over)
FULL = (30.0, 30, 4)
QUICK = (1.0, 5, 2)
# The 2015 design's page polled every 5 s.
ANCHOR_POLL = 5.0
SEED = 2015

# Runs before the page's own script: note when each question reaches the list.
RECORD_ARRIVALS = """
(() => {
  window.__arrivals = {};
  const note = (node) => {
    if (node.nodeType === 1 && node.matches("li[data-id]") && node.parentElement
        && node.parentElement.id === "questions" && !(node.dataset.id in window.__arrivals)) {
      window.__arrivals[node.dataset.id] = Date.now();
    }
  };
  new MutationObserver((mutations) => {
    for (const mutation of mutations) mutation.addedNodes.forEach(note);
  }).observe(document, { childList: true, subtree: true });
})();
"""


def uniform_sum_quantile(a, b, share):
    """The share-quantile of U(0, a) + U(0, b): the anchor's model of waiting for a crawl and a poll."""
    a, b = max(a, b), min(a, b)

    def cdf(s):
        if s <= b:
            return s * s / (2 * a * b)
        if s <= a:
            return (s - b / 2) / a
        return 1 - (a + b - s) ** 2 / (2 * a * b)

    low, high = 0.0, a + b
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < share else (low, middle)
    return (low + high) / 2


def sleep_until(moment):
    """Sleep until time.monotonic() reaches moment."""
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def publish_at_random(simulator, moments):
    """Publish one question at each moment (monotonic seconds); returns {store _id: epoch published}."""
    published = {}
    for moment in moments:
        sleep_until(moment)
        before = time.time()
        published[simulator.publish()] = before
    return published


def run(quick):
    interval, count, spread = QUICK if quick else FULL
    work = common.work_dir("freshness")
    database = f"bench_fresh_{uuid.uuid4().hex[:8]}"
    rng = random.Random(SEED)
    simulator = FeedSimulator(every=0, seed=SEED)
    requests = {"/events": 0, "/update": 0}
    with contextlib.ExitStack() as running:
        running.callback(simulator.stop)
        mongo_uri, _database_process = running.enter_context(private_database(work / "ferretdb"))
        running.enter_context(
            launch_scheduler([simulator.feed_url], mongo_uri, database, work / "scheduler.log", interval)
        )
        # The web app and the browser start while the scheduler makes its first crawl.
        app = running.enter_context(web_app(work / "gunicorn.log", mongo_uri, database))
        browser = launch_chromium(running.enter_context(sync_playwright()))
        running.callback(browser.close)
        store = Store.connect(mongo_uri, database)
        running.callback(store.close)
        app.wait_ready()
        wait_until(lambda: store.count_questions() >= 30, timeout=60, what="the first crawl")

        page = browser.new_page()
        page.on("request", lambda request: _count_request(requests, request.url))
        page.add_init_script(RECORD_ARRIVALS)
        page.goto(app.url + "/")
        page.wait_for_load_state("load")
        start = time.monotonic() + 0.2
        published = publish_at_random(
            simulator, sorted(start + rng.uniform(0, spread * interval) for _ in range(count))
        )
        ids = list(published)
        wait_until(
            lambda: not page.evaluate("ids => ids.filter(id => !(id in window.__arrivals))", ids),
            timeout=interval + ANCHOR_POLL + 20,
            step=0.1,
            what=f"all {count} publications in the page",
        )
        arrivals = page.evaluate("() => window.__arrivals")
        stored = store.questions.find({"_id": {"$in": ids}}, {"fetched": 1})
        fetched = {question["_id"]: question["fetched"].timestamp() for question in stored}

    end_to_end = [arrivals[key] / 1000 - published[key] for key in ids]
    after_crawl = [arrivals[key] / 1000 - fetched[key] for key in ids]
    waiting_for_crawl = [fetched[key] - published[key] for key in ids]
    anchor = {share: uniform_sum_quantile(interval, ANCHOR_POLL, share) for share in (0.5, 0.95)}
    after_anchor = {share: ANCHOR_POLL * share for share in (0.5, 0.95)}

    result = common.Result(
        "freshness",
        "3. Freshness",
        f"{count} questions published at random moments over {spread} crawl intervals of {interval:g} s, "
        "default page settings, headless Chromium",
    )
    figures = (
        ("end to end", end_to_end, f"{interval:g} s crawl + {ANCHOR_POLL:g} s poll", anchor, interval + 1),
        ("after the crawl (from `fetched`)", after_crawl, f"{ANCHOR_POLL:g} s poll", after_anchor, 1),
    )
    for name, seconds, design, modelled, goal_seconds in figures:
        for share, label in ((0.5, "p50"), (0.95, "p95")):
            value = common.percentile(seconds, share)
            goal = share == 0.95
            result.add(
                f"{name}, {label}",
                value,
                "s",
                f"2015 design: {design} (model)",
                modelled[share],
                common.ratio(value, modelled[share]),
                "x the anchor's time",
                f"≤ {goal_seconds:g} s" if goal else "none (context)",
                value <= goal_seconds if goal else None,
            )
    result.note(
        "worst case",
        f"end to end {max(end_to_end):.2f} s (anchor {interval + ANCHOR_POLL:g} s), "
        f"after the crawl {max(after_crawl):.2f} s (anchor {ANCHOR_POLL:g} s)",
    )
    result.note(
        "waiting for the crawl (published to `fetched`)",
        f"p50 {common.percentile(waiting_for_crawl, 0.5):.2f} s, "
        f"p95 {common.percentile(waiting_for_crawl, 0.95):.2f} s, max {max(waiting_for_crawl):.2f} s",
    )
    result.note(
        "the page's requests",
        f"/events {requests['/events']}, /update {requests['/update']}",
    )
    return result


def _count_request(counts, url):
    path = "/" + url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
    if path in counts:
        counts[path] += 1


if __name__ == "__main__":
    sys.exit(common.main(run))
