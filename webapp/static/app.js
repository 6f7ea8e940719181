// sofeed's live page: new questions appear without a reload.
//
// The server pushes them on one EventSource, /events?timestamp=<cursor>; the
// browser reconnects it by itself and resumes from the last event's id. If
// the server refuses a stream (a process whose streams are full), the page
// polls /update?timestamp=<cursor> instead. The cursor is the largest `fetched` the
// server has sent (first the one embedded in the page), never the browser's
// clock, and questions are deduplicated by id. Feed text is
// only ever set with textContent or setAttribute, and a link is clickable
// only if it is http(s). After an error the page backs off, says
// "reconnecting…", and keeps trying until the server answers again.
// The status line comes from /status; relative times use the server's clock,
// estimated from its `now`.
// The filter (?tags=&q=) lives in the page's URL; the page passes it on to
// /events and /update, so only matching questions arrive. Keys: j and k move,
// o or Enter opens, / searches. "Notify me" raises a Notification per batch of
// questions that arrive while the tab is hidden; its text is plain text.
"use strict";

(function () {
  const feed = document.getElementById("feed");
  const list = document.getElementById("questions");
  const empty = document.getElementById("empty");
  const connection = document.getElementById("connection");
  const announcer = document.getElementById("announcer");
  const countText = document.getElementById("count");
  const lastCrawlText = document.getElementById("last-crawl");
  const nextCrawlText = document.getElementById("next-crawl");
  const sourceNote = document.getElementById("source-note");

  const pollMs = Math.max(100, parseFloat(feed.dataset.pollSeconds) * 1000 || 5000);
  const maxBackoffMs = Math.max(pollMs, Math.min(30000, pollMs * 8));
  const statusEveryMs = Math.max(pollMs, 2000);
  const requestTimeoutMs = Math.max(10000, pollMs * 2);
  // A stream that has been reconnecting for this long shows "reconnecting…".
  const streamStallMs = 3000;
  const maxShown = 500;
  const maxRemembered = 5000;
  const baseTitle = document.title;
  const filterQuery = feed.dataset.filter || "";
  const filterTags = (feed.dataset.tags || "").split(",").filter(Boolean);
  const filterWords = feed.dataset.words || "";
  const sites = new Set((feed.dataset.sites || "").split(" ").filter(Boolean));
  const search = document.getElementById("search");
  const notifyButton = document.getElementById("notify");
  let notifying = false;
  let current = null;

  let cursor = parseFloat(feed.dataset.cursor) || 0;
  let serverOffsetMs = parseFloat(feed.dataset.now) * 1000 - Date.now() || 0;
  let failures = 0;
  let hiddenArrivals = 0;
  let lastStatus = null;
  const seen = new Set(Array.from(list.children, (item) => item.dataset.id));

  function serverNow() {
    return Date.now() + serverOffsetMs;
  }

  function ago(epochMs) {
    const seconds = Math.max(0, (serverNow() - epochMs) / 1000);
    if (seconds < 10) return "just now";
    if (seconds >= 86400) return Math.floor(seconds / 86400) + " d ago";
    if (seconds >= 3600) return Math.floor(seconds / 3600) + " h ago";
    if (seconds >= 60) return Math.floor(seconds / 60) + " min ago";
    return Math.floor(seconds) + " s ago";
  }

  function until(epochMs) {
    const seconds = (epochMs - serverNow()) / 1000;
    if (seconds < 1) return "due now";
    if (seconds < 60) return "in " + Math.ceil(seconds) + " s";
    return "in " + Math.ceil(seconds / 60) + " min";
  }

  function webLink(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function linkOrText(url, className, text) {
    const href = webLink(url);
    const node = element(href ? "a" : "span", className, text);
    if (href) {
      node.setAttribute("href", href);
      node.setAttribute("rel", "noopener noreferrer");
    }
    return node;
  }

  function siteOf(url) {
    const href = webLink(url);
    if (!href) return "";
    try {
      return new URL(href).hostname;
    } catch (error) {
      return "";
    }
  }

  // The page's URL for this filter plus one tag, as the server renders it on a chip.
  function withTagUrl(tag) {
    const name = String(tag).trim().toLowerCase();
    const tags = filterTags.includes(name) ? filterTags : filterTags.concat([name]);
    const params = new URLSearchParams();
    if (tags.length) params.set("tags", tags.join(","));
    if (filterWords) params.set("q", filterWords);
    return feed.dataset.indexUrl + "?" + params.toString();
  }

  // The same markup as the server renders in templates/index.html.
  function renderQuestion(q) {
    const item = element("li", "question");
    item.dataset.id = q.id;
    item.dataset.fetched = String(q.fetched);
    item.tabIndex = -1;

    const votes = element("div", "votes");
    votes.append(element("span", "rank", q.rank === null || q.rank === undefined ? 0 : q.rank));
    votes.append(element("span", "votes-label", "votes"));

    const body = element("div", "body");
    const title = element("h2", "title");
    title.append(linkOrText(q.link, webLink(q.link) ? "" : "not-a-link", q.title));
    body.append(title);
    if (q.link && !webLink(q.link)) {
      const odd = element("p", "odd-link", "link (not http or https, so not clickable): ");
      odd.append(element("span", "link-text", q.link));
      body.append(odd);
    }
    if (q.summary_text) body.append(element("p", "summary", q.summary_text));

    const details = element("div", "details");
    const tags = element("ul", "tags");
    for (const tag of Array.isArray(q.tags) ? q.tags : []) {
      const chip = element("a", null, tag);
      chip.setAttribute("href", withTagUrl(tag));
      chip.setAttribute("title", "Show questions tagged " + String(tag));
      const li = element("li", "tag");
      li.append(chip);
      tags.append(li);
    }
    const meta = element("p", "meta");
    if (sites.size > 1) {
      meta.append(element("span", "site", siteOf(q.link)), document.createTextNode(" "));
    }
    meta.append(linkOrText(q.author_uri, "author", q.author || "anonymous"));
    meta.append(document.createTextNode(" asked "));
    const time = element("time");
    time.setAttribute("datetime", q.published || "");
    time.dataset.fetched = String(q.fetched);
    meta.append(time);
    details.append(tags, meta);
    body.append(details);

    item.append(votes, body);
    refreshTime(time);
    return item;
  }

  function refreshTime(time) {
    const published = Date.parse(time.getAttribute("datetime") || "");
    const moment = Number.isNaN(published) ? parseFloat(time.dataset.fetched) * 1000 : published;
    time.textContent = ago(moment);
  }

  function refreshTimes() {
    for (const time of list.querySelectorAll("time")) refreshTime(time);
    renderStatus();
  }

  // The filter as webapp/filters.py applies it. The server filters /events
  // and /update already; the page checks too, as a second line.
  function matches(q) {
    const tags = (Array.isArray(q.tags) ? q.tags : []).map((tag) => String(tag).toLowerCase());
    if (filterTags.length && !filterTags.some((tag) => tags.includes(tag))) return false;
    const text = (String(q.title || "") + "\n" + String(q.summary_text || "")).toLowerCase();
    return filterWords.split(" ").every((word) => !word || text.includes(word));
  }

  function receive(questions) {
    const arrivals = [];
    for (const q of questions) {
      if (!q || typeof q.id !== "string" || typeof q.fetched !== "number") continue;
      if (q.fetched > cursor) cursor = q.fetched;
      if (!matches(q)) continue;
      if (seen.has(q.id)) continue; // a question re-stamped by a slow writer comes twice
      seen.add(q.id);
      arrivals.push(q);
    }
    if (arrivals.length === 0) return;
    const known = sites.size;
    for (const q of arrivals) if (siteOf(q.link)) sites.add(siteOf(q.link));
    if (known === 1 && sites.size > 1) showSites();
    // Newest first from the server: prepend the oldest first, so the newest ends on top.
    for (let i = arrivals.length - 1; i >= 0; i--) {
      const item = renderQuestion(arrivals[i]);
      item.classList.add("fresh");
      item.addEventListener("animationend", () => item.classList.remove("fresh"), { once: true });
      list.prepend(item);
    }
    while (list.children.length > maxShown) list.lastElementChild.remove();
    for (const id of seen) {
      if (seen.size <= maxRemembered) break;
      seen.delete(id);
    }
    empty.hidden = true;
    announcer.textContent =
      arrivals.length === 1 ? "New question: " + arrivals[0].title : arrivals.length + " new questions";
    if (document.hidden) {
      hiddenArrivals += arrivals.length;
      document.title = "(" + hiddenArrivals + ") " + baseTitle;
      if (notifying) gatherNotification(arrivals);
    }
  }

  // One crawl's questions can reach the page in two pushes a refresh apart:
  // those that arrive within a moment of the first make one Notification.
  const gatherMs = 1500;
  let gathered = null;
  function gatherNotification(arrivals) {
    if (gathered) {
      gathered.unshift(...arrivals); // later arrivals are newer: newest first, as the server sends them
      return;
    }
    gathered = arrivals.slice();
    window.setTimeout(() => {
      const batch = gathered;
      gathered = null;
      if (notifying) notify(batch);
    }, gatherMs);
  }

  // The questions rendered before a second site appeared get their site too.
  function showSites() {
    for (const item of list.children) {
      const meta = item.querySelector(".meta");
      const link = item.querySelector("h2 a");
      if (!meta || meta.querySelector(".site")) continue;
      meta.prepend(element("span", "site", siteOf(link ? link.href : "")), document.createTextNode(" "));
    }
  }

  // One Notification per batch: the question's title, or "7 new questions in python, flask".
  function notify(arrivals) {
    const newest = arrivals[0];
    let title = newest.title || "A new question";
    let body = (Array.isArray(newest.tags) ? newest.tags : []).join(", ");
    if (arrivals.length > 1) {
      const tags = filterTags.length ? filterTags : topTags(arrivals);
      title = arrivals.length + " new questions" + (tags.length ? " in " + tags.join(", ") : "");
      body = arrivals.map((q) => q.title).join("\n");
    }
    let shown = null;
    try {
      shown = new Notification(String(title), { body: String(body), tag: "sofeed" });
    } catch (error) {
      return;
    }
    shown.addEventListener("click", () => {
      window.focus();
      const item = list.querySelector('li[data-id="' + CSS.escape(newest.id) + '"]');
      if (item) select(item);
      open(webLink(newest.link));
      shown.close();
    });
  }

  function topTags(questions) {
    const counts = new Map();
    for (const q of questions) {
      for (const tag of Array.isArray(q.tags) ? q.tags : []) counts.set(tag, (counts.get(tag) || 0) + 1);
    }
    return Array.from(counts.entries())
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map((entry) => String(entry[0]));
  }

  function open(href) {
    if (href) window.open(href, "_blank", "noopener,noreferrer");
  }

  function select(item) {
    if (current) current.classList.remove("current");
    current = item;
    item.classList.add("current");
    item.focus({ preventScroll: true });
    item.scrollIntoView({ block: "nearest" });
  }

  function typing(target) {
    return (
      target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName))
    );
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const items = Array.from(list.children);
    const at = current && current.isConnected ? items.indexOf(current) : -1;
    if (event.key === "j" || event.key === "k") {
      const next = event.key === "j" ? Math.min(at + 1, items.length - 1) : Math.max(at - 1, 0);
      if (items[next]) select(items[next]);
    } else if ((event.key === "o" || (event.key === "Enter" && event.target === current)) && current) {
      const link = current.querySelector("h2 a");
      open(link ? webLink(link.getAttribute("href")) : null);
    } else if (event.key === "/" && search) {
      search.focus();
      search.select();
    } else {
      return;
    }
    event.preventDefault();
  });

  if (notifyButton && "Notification" in window) {
    notifyButton.hidden = false;
    const show = () => {
      notifyButton.setAttribute("aria-pressed", String(notifying));
      notifyButton.textContent = notifying ? "Notifying" : "Notify me";
    };
    notifyButton.addEventListener("click", async () => {
      if (notifying) {
        notifying = false;
      } else {
        // Asked only here, on a click: never when the page loads.
        const permission = await Notification.requestPermission();
        notifying = permission === "granted";
        if (permission === "denied") notifyButton.title = "Notifications are blocked for this site";
      }
      show();
    });
  }

  async function getJson(url) {
    const response = await fetch(url, {
      cache: "no-store",
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.json();
  }

  function connected() {
    failures = 0;
    connection.hidden = true;
  }

  function disconnected() {
    connection.hidden = false;
  }

  function withCursor(url) {
    return url + "?timestamp=" + encodeURIComponent(String(cursor)) + (filterQuery ? "&" + filterQuery : "");
  }

  function listen() {
    const source = new EventSource(withCursor(feed.dataset.eventsUrl));
    let stalled = null;
    source.addEventListener("open", () => {
      window.clearTimeout(stalled);
      stalled = null;
      connected();
    });
    source.addEventListener("questions", (message) => {
      let questions = null;
      try {
        questions = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (Array.isArray(questions)) receive(questions);
    });
    source.addEventListener("unavailable", disconnected);
    source.addEventListener("available", connected);
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (not a stream, or too many here): poll from now on.
        window.clearTimeout(stalled);
        window.setTimeout(poll, pollMs);
      } else if (stalled === null) {
        stalled = window.setTimeout(disconnected, streamStallMs);
      }
    });
  }

  async function poll() {
    let delay = pollMs;
    try {
      const questions = await getJson(withCursor(feed.dataset.updateUrl));
      if (!Array.isArray(questions)) throw new Error("/update did not answer a list");
      receive(questions);
      connected();
    } catch (error) {
      failures += 1;
      disconnected();
      delay = Math.min(pollMs * 2 ** failures, maxBackoffMs) * (0.9 + 0.2 * Math.random());
    }
    window.setTimeout(poll, delay);
  }

  async function pollStatus() {
    try {
      const status = await getJson(feed.dataset.statusUrl);
      if (typeof status.now === "number") serverOffsetMs = status.now * 1000 - Date.now();
      lastStatus = status;
      renderStatus();
    } catch (error) {
      // /update's failures already show "reconnecting…".
    }
  }

  function renderStatus() {
    const status = lastStatus;
    if (!status) return;
    if (typeof status.questions === "number") {
      countText.textContent = status.questions.toLocaleString("en") + " questions";
    }
    const crawl = status.last_crawl;
    if (crawl) {
      const when = typeof crawl.finished === "number" ? crawl.finished : crawl.started;
      let text = "last crawl " + (typeof when === "number" ? ago(when * 1000) : "");
      if (crawl.outcome) text += " · " + String(crawl.outcome).replace(/_/g, " ");
      if (crawl.outcome === "ok" && typeof crawl.new === "number") text += " (" + crawl.new + " new)";
      for (const quota of status.api_quota || []) {
        text += " · API quota " + quota.quota_remaining + (quota.quota_max ? "/" + quota.quota_max : "") + " left";
      }
      lastCrawlText.textContent = text;
      lastCrawlText.classList.toggle("bad", crawl.ok === false);
    } else {
      lastCrawlText.textContent = "no crawl yet";
    }
    // Why the questions come from where they do (a refused feed, the API instead): text, never markup.
    sourceNote.textContent = status.note || "";
    sourceNote.hidden = !status.note;
    sourceNote.classList.toggle("bad", Boolean(crawl && crawl.refused && !crawl.via));
    const scheduler = status.scheduler;
    if (scheduler && scheduler.active && typeof status.next_crawl === "number") {
      nextCrawlText.textContent = "next crawl " + until(status.next_crawl * 1000);
    } else {
      nextCrawlText.textContent = scheduler && scheduler.active ? "" : "scheduler not running";
    }
    nextCrawlText.classList.toggle("bad", !(scheduler && scheduler.active));
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      hiddenArrivals = 0;
      document.title = baseTitle;
    }
  });

  refreshTimes();
  pollStatus();
  window.setInterval(refreshTimes, 5000);
  window.setInterval(pollStatus, statusEveryMs);
  // A page whose filter was refused shows the message and waits for the user.
  if (feed.dataset.live === "no") return;
  if (window.EventSource && feed.dataset.eventsUrl) listen();
  else window.setTimeout(poll, pollMs);
})();
