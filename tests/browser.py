"""Headless Chromium for the end-to-end tests: Debian's, driven by Playwright."""

import uuid

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Headless Chromium keeps every tab visible, even minimised or behind another
# one, so the tests hide a page by overriding document.hidden and
# visibilityState, and fire visibilitychange as a browser does.
VISIBILITY_SWITCH = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true,
    get: () => (hidden ? "hidden" : "visible"),
  });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def push_a_question(page, url, publish, timeout_ms):
    """Open url, publish a question with publish(title) (it returns the question's _id), and wait
    until the page shows it, then check it came without a reload; returns the paths the page asked for."""
    from urllib.parse import urlsplit

    from playwright.sync_api import expect

    requests = []
    page.on("request", lambda request: requests.append(urlsplit(request.url).path))
    page.goto(url)
    page.evaluate("window.__loaded = true")
    title = f"Freshly asked {uuid.uuid4().hex[:8]}"
    item = page.locator(f'#questions > li[data-id="{publish(title)}"]')
    expect(item).to_be_visible(timeout=timeout_ms)
    assert item.locator("h2").inner_text() == title
    assert page.evaluate("window.__loaded") is True  # the same document: no reload
    return requests
