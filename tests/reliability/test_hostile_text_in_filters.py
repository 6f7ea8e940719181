"""Scenario 6b: the XSS corpus through the filtered page, its filter bar and its notifications.

Each payload of tests/reliability/xss_payloads.py is published in a question's
title, a tag and the summary, and the page is filtered on a tag they share.
The same payloads are then given as the filter itself (?tags= and ?q=), so the
filter bar shows them, and the questions arrive while the tab is hidden, so
they reach notification text. Everything must stay text, and nothing may run.
"""

import html
from urllib.parse import quote

import pytest

from tests.processes import wait_until
from tests.reliability.results import record
from tests.reliability.system import chromium, displayed_ids, throwaway_site
from tests.reliability.test_hostile_feed_text import PAGE_ELEMENTS, TRAPS
from tests.reliability.xss_payloads import PAYLOADS
from webapp.filters import MAX_Q_LENGTH, MAX_TAG_LENGTH

pytestmark = pytest.mark.check

SHARED_TAG = "xss-corpus"
BATCH = 10  # fewer than the feed's 30 between crawls
WAIT = 60  # seconds, generous: the machine is shared
RECORD_NOTIFICATIONS = """
(() => {
  const notes = [];
  Object.defineProperty(window, "__notifications", { value: notes });
  const Shown = window.Notification;
  window.Notification = class extends Shown {
    constructor(title, options) {
      notes.push({ title, body: options && options.body });
      super(title, options);
    }
  };
})();
"""
READ_PAGE = """
() => ({
  active: [...document.querySelectorAll(".active-tag-name")].map(tag => tag.textContent),
  search: document.getElementById("search").value,
  elements: [...new Set([...document.querySelectorAll("#filters *, #questions *")].map(e => e.localName))],
  runs: window.__xssRuns.slice(),
  violations: window.__cspViolations.slice(),
})
"""
FILTER_ELEMENTS = {"ul", "li", "span", "a", "input", "label", "button"}


@pytest.fixture(scope="module")
def site(mongo_uri, tmp_path_factory):
    with throwaway_site(mongo_uri, "sofeed_xss_filters", tmp_path_factory.mktemp("xss-filters")) as site:
        yield site


@pytest.fixture
def context():
    with chromium() as browser:
        context = browser.new_context(permissions=["notifications"])
        context.add_init_script(TRAPS)
        context.add_init_script(RECORD_NOTIFICATIONS)
        yield context
        context.close()


def publish(site, payload):
    summary = f"<p>{html.escape(payload)}</p>{payload}"
    return site.feed.publish(title=payload, tags=[SHARED_TAG, payload], summary=summary)


def test_xss_payloads_stay_text_in_the_filtered_page_its_filter_bar_and_its_notifications(site, context):
    page = context.new_page()
    page.goto(site.url + "/?tags=" + SHARED_TAG)
    page.locator("#notify").click()
    page.wait_for_function("document.getElementById('notify').getAttribute('aria-pressed') === 'true'")
    # Headless Chromium never hides a tab: pretend it is hidden, as the browser would say.
    page.evaluate(
        "Object.defineProperty(document, 'hidden', { get: () => true });"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    ids = []
    for start in range(0, len(PAYLOADS), BATCH):
        ids += [publish(site, payload) for payload in PAYLOADS[start : start + BATCH]]
        site.wait_until_stored(ids, WAIT)
    wait_until(lambda: set(ids) <= set(displayed_ids(page)), WAIT, what="the page showing every payload")
    titles = {" ".join(payload.split()) for payload in PAYLOADS}

    def noted():
        notes = page.evaluate("window.__notifications.slice()")
        return {line for note in notes for line in [note["title"], *note["body"].split("\n")]}

    # The last questions are notified a moment after they show: the page gathers a batch first.
    wait_until(lambda: titles <= noted(), WAIT, what="every payload reaching a notification")
    assert titles <= noted(), "every payload reaches a notification as the text it was published as"
    notifications = page.evaluate("window.__notifications.length")
    live = page.evaluate(READ_PAGE)
    assert (live["runs"], live["violations"]) == ([], [])
    assert set(live["elements"]) <= PAGE_ELEMENTS | FILTER_ELEMENTS

    # The payloads as the filter itself: shown in the filter bar and the search box as text.
    as_tags = [p for p in PAYLOADS if "," not in p and len(p.strip()) <= MAX_TAG_LENGTH and p.isprintable()]
    as_words = [p for p in PAYLOADS if len(p) <= MAX_Q_LENGTH and p.isprintable()]
    for payload in as_tags + as_words:
        name = "tags" if payload in as_tags else "q"
        response = page.goto(f"{site.url}/?{name}={quote(payload)}")
        assert response.status == 200, payload
        shown = page.evaluate(READ_PAGE)
        if name == "tags":
            assert shown["active"] == [payload.strip().lower()], payload
        else:
            assert shown["search"] == " ".join(dict.fromkeys(payload.lower().split())), payload
        assert (shown["runs"], shown["violations"]) == ([], []), payload
        assert set(shown["elements"]) <= PAGE_ELEMENTS | FILTER_ELEMENTS, payload
    assert site.log_problems() == []
    record(
        "Hostile feed text in filters and notifications",
        order="6b",
        injected=(
            f"the {len(PAYLOADS)} payloads of scenario 6 in each question's title, a tag and its summary, "
            f"arriving on a page filtered on a shared tag with notifications on and the tab hidden; then "
            f"{len(as_tags)} of them as `?tags=` and {len(as_words)} as `?q=`"
        ),
        must_hold=(
            "zero script executions and zero CSP violations; notification titles and bodies carry the "
            "published text; the filter bar and the search box show the filter as text"
        ),
        result=(
            f"0 executions, 0 CSP violations; {notifications} notifications carried all {len(ids)} titles; "
            f"{len(as_tags) + len(as_words)} filtered pages showed their filter as text"
        ),
    )
