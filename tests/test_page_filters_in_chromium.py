"""Filters, keys, notifications and the dark theme of the live page, in real
headless Chromium against the whole system (see test_page_in_chromium.py)."""

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests import test_page_in_chromium as e2e
from tests.browser import VISIBILITY_SWITCH
from tests.helpers import ROOT
from tests.processes import wait_until as wait_for

# The whole system and the browser of the other page tests, and their checks.
browser, site, page, shown_ids = e2e.browser, e2e.site, e2e.page, e2e.shown_ids

# `SOFEED_SCREENSHOT_DARK=docs/screenshot-dark.png` saves it for the README.
SCREENSHOT_ENV = "SOFEED_SCREENSHOT_DARK"
# Questions link to stackoverflow.com: the browser answers them itself, so no test reaches it.
OFF_SITE = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")
# Records each Notification the page raises, before the browser shows it.
RECORD_NOTIFICATIONS = """
(() => {
  window.__notifications = [];
  window.__shown = [];
  window.__permissionRequests = 0;
  const Shown = window.Notification;
  window.Notification = class extends Shown {
    constructor(title, options) {
      window.__notifications.push({ title, body: options && options.body });
      super(title, options);
      window.__shown.push(this);
    }
    static requestPermission(...args) {
      window.__permissionRequests += 1;
      return Shown.requestPermission(...args);
    }
  };
})();
"""


def shown_tags(page):
    return page.locator("#questions > li").evaluate_all(
        "items => items.map(item => [...item.querySelectorAll('.tag')].map(tag => tag.textContent))"
    )


def test_a_page_filtered_on_a_tag_shows_only_the_matching_questions_a_later_crawl_brings(page, site):
    page.goto(site.url + "/?tags=Kubernetes")
    assert all("kubernetes" in [t.lower() for t in tags] for tags in shown_tags(page))
    expect(page.locator(".active-tag-name")).to_have_text(["kubernetes"])
    other = site.feed.publish(title=f"Not about clusters {uuid.uuid4().hex[:8]}", tags=["rust"])
    wanted = site.feed.publish(title=f"Pods restart {uuid.uuid4().hex[:8]}", tags=["kubernetes", "docker"])
    expect(page.locator(f'#questions > li[data-id="{wanted}"]')).to_be_visible(timeout=15_000)
    site.stored(other)
    site.wait_until_settled()
    page.wait_for_timeout(1000)  # a stream that filtered nothing would have pushed `other` by now
    assert other not in shown_ids(page)
    assert all("kubernetes" in tags for tags in shown_tags(page))


def test_clicking_a_tag_chip_filters_the_page_and_removing_the_tag_unfilters_it(page, site):
    page.goto(site.url + "/")
    # By its question: a question arriving on top in between must not swap the chip.
    newest = page.locator("#questions > li[data-id]").first.get_attribute("data-id")
    chip = page.locator(f'#questions > li[data-id="{newest}"] .tag a').first
    tag = chip.inner_text()
    chip.focus()
    page.keyboard.press("Enter")  # a chip is a link: the keyboard follows it like a click
    expect(page).to_have_url(re.compile(r"/\?tags=" + re.escape(tag.lower())))
    tags = shown_tags(page)
    assert tags
    assert all(tag.lower() in [t.lower() for t in question] for question in tags)
    same_tag = page.locator("#questions > li .tag a", has_text=re.compile(f"^{re.escape(tag)}$"))
    same_tag.first.click()  # adding a tag the filter has changes nothing
    expect(page).to_have_url(re.compile(r"/\?tags=" + re.escape(tag.lower()) + "$"))
    page.locator(".remove-tag").click()
    expect(page).to_have_url(site.url + "/")
    assert any(tag.lower() not in [t.lower() for t in question] for question in shown_tags(page))


def test_j_and_k_move_between_questions_and_o_opens_the_current_one(page, site):
    page.context.route(OFF_SITE, lambda route: route.fulfill(body="a question", content_type="text/plain"))
    page.goto(site.url + "/")
    current = page.locator("#questions > li.current")

    def press(key):
        page.keyboard.press(key)
        return current.get_attribute("data-id")

    first = press("j")
    assert first == shown_ids(page)[0] or first in shown_ids(page)[:3]  # newer ones may arrive above it
    second = press("j")
    third = press("j")
    order = shown_ids(page)  # new questions go on top: the order of these three stays
    assert order.index(second) == order.index(first) + 1
    assert order.index(third) == order.index(second) + 1
    assert press("k") == second
    assert current.count() == 1
    link = current.locator("h2 a").get_attribute("href")
    with page.expect_popup() as opened:
        page.keyboard.press("o")
    expect(opened.value).to_have_url(link)
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("jk")  # typed into the search box, not taken as keys
    expect(page.locator("#search")).to_have_value("jk")
    assert current.get_attribute("data-id") == second


def test_a_question_arriving_while_the_tab_is_hidden_raises_a_notification(browser, site):
    context = browser.new_context(permissions=["notifications"])
    context.add_init_script(VISIBILITY_SWITCH)
    context.add_init_script(RECORD_NOTIFICATIONS)
    context.route(OFF_SITE, lambda route: route.fulfill(body="a question", content_type="text/plain"))
    try:
        page = context.new_page()
        page.goto(site.url + "/?tags=python")
        page.locator("#questions > li").first.wait_for()
        assert page.evaluate("window.__permissionRequests") == 0  # not asked before the click
        page.locator("#notify").click()
        expect(page.locator("#notify")).to_have_attribute("aria-pressed", "true")
        page.locator("#questions > li").first.wait_for()
        assert page.evaluate("window.__notifications") == []
        page.evaluate("window.__setHidden(true)")
        title = f"<b>Asked</b> while away {uuid.uuid4().hex[:8]}"
        question_id = site.feed.publish(title=title, tags=["python"])
        page.locator(f'#questions > li[data-id="{question_id}"]').wait_for(timeout=15_000)
        # The simulator asks python questions of its own too: ours may come alone or in a bundle.
        [note] = wait_for(
            lambda: [
                note
                for note in page.evaluate("window.__notifications")
                if title in note["title"] + "\n" + note["body"]
            ],
            what="a notification of the question",
        )
        assert note["title"] == title or re.fullmatch(r"\d+ new questions in python", note["title"])
        assert page.locator("img, b").count() == 0  # the markup in the title stayed text
        ours = page.evaluate("window.__notifications").index(note)
        with page.expect_popup() as opened:
            page.evaluate("n => window.__shown[n].dispatchEvent(new Event('click'))", ours)
        link = page.locator(f'#questions > li[data-id="{question_id}"] h2 a').get_attribute("href")
        hrefs = "links => links.map(a => a.getAttribute('href'))"
        links = page.locator("#questions > li h2 a").evaluate_all(hrefs)
        opened.value.wait_for_load_state()
        # Ours, or in a bundle the newest question of it: one above ours (more may have come since).
        assert opened.value.url in links[: links.index(link) + 1]
        expect(page.locator("#questions > li.current")).to_have_count(1)
    finally:
        context.close()


def test_questions_arriving_together_while_hidden_are_bundled_into_one_notification(browser, site):
    tag = f"batch-{uuid.uuid4().hex[:6]}"
    context = browser.new_context(permissions=["notifications"])
    context.add_init_script(VISIBILITY_SWITCH)
    context.add_init_script(RECORD_NOTIFICATIONS)
    try:
        page = context.new_page()
        page.goto(f"{site.url}/?tags={tag}")
        page.locator("#notify").click()
        expect(page.locator("#notify")).to_have_attribute("aria-pressed", "true")
        page.evaluate("window.__setHidden(true)")
        # Offline while they are crawled, so the page gets all three in one answer when it reconnects.
        context.set_offline(True)
        ids = [site.feed.publish(title=f"Batched {n}", tags=[tag, "python"]) for n in range(3)]
        for question_id in ids:
            site.stored(question_id)
        site.wait_until_settled()
        context.set_offline(False)
        for question_id in ids:
            page.locator(f'#questions > li[data-id="{question_id}"]').wait_for(timeout=30_000)
        # The page gathers what arrives within a moment, even over two pushes, into one notification.
        wait_for(lambda: page.evaluate("window.__notifications.length"), what="the notification")
        assert page.evaluate("window.__notifications") == [
            {"title": f"3 new questions in {tag}", "body": "Batched 2\nBatched 1\nBatched 0"}
        ]
        assert page.title() == f"(3) {tag} · sofeed"
    finally:
        context.close()


@pytest.mark.parametrize(
    ("scheme", "background"), [("dark", "rgb(27, 29, 31)"), ("light", "rgb(248, 249, 249)")]
)
def test_the_page_follows_the_browser_s_colour_scheme(browser, site, tmp_path, scheme, background):
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1100, "height": 900})
    try:
        page = context.new_page()
        page.goto(site.url + "/?tags=python,pandas")
        page.locator("#questions > li").first.wait_for()
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"
        assert page.evaluate("getComputedStyle(document.documentElement).backgroundColor") == background
        if scheme == "dark":
            saved = os.environ.get(SCREENSHOT_ENV)
            screenshot = ROOT / saved if saved else tmp_path / "dark.png"
            page.screenshot(path=screenshot)
            assert screenshot.read_bytes().startswith(b"\x89PNG")
    finally:
        context.close()
