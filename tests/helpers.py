"""Helpers for the tests: sample data, a spider on a real crawler, and what
the crawl subprocess reports."""

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scrapy import Request
from scrapy.http import XmlResponse
from scrapy.utils.test import get_crawler

from sofeed import settings as project_settings
from sofeed.middlewares import FEED_META
from sofeed.spiders.sofeed import SofeedSpider
from sofeed.store import Store, StrictClock, question_key

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def fixture_bytes(name):
    return (FIXTURES / name).read_bytes()


def question_fields(**changes):
    """A question as the spider yields it, with some fields changed."""
    fields = {
        "entry_id": "https://stackoverflow.com/q/77635559",
        "question_id": 77635559,
        "title": "Kubernetes ingress returns 404 behind a cloud load balancer",
        "link": "https://stackoverflow.com/questions/77635559/kubernetes-ingress-returns-404",
        "author": "Dana W.",
        "author_uri": "https://stackoverflow.com/users/2290917",
        "tags": ["kubernetes", "kubernetes-ingress"],
        "rank": 1,
        "published": datetime(2023, 12, 10, 16, 39, 44, tzinfo=UTC),
        "updated": datetime(2023, 12, 10, 16, 45, 2, tzinfo=UTC),
        "summary_text": "My ingress answers 404 for every path once the load balancer is in front.",
    }
    return {**fields, **changes}


def save_numbered(store, n, **changes):
    """Save question n (entry id .../q/n, title "Question n") through the store; return its document."""
    changes = {"entry_id": f"https://stackoverflow.com/q/{n}", "title": f"Question {n}", **changes}
    fields = question_fields(**changes)
    store.save_question(fields)
    return store.questions.find_one({"_id": question_key(fields["entry_id"])})


def save_days_ago(store, days, numbers):
    """Save questions numbered `numbers` as a writer whose clock is `days` behind; returns their _ids."""
    past = Store(store.client, store.db.name, clock=StrictClock(now=lambda: time.time() - days * 86400))
    return [save_numbered(past, n)["_id"] for n in numbers]


def make_spider(**settings):
    """A sofeed spider on a crawler with the project's settings, plus overrides."""
    values = {name: getattr(project_settings, name) for name in dir(project_settings) if name.isupper()}
    crawler = get_crawler(SofeedSpider, settings_dict={**values, **settings})
    spider = SofeedSpider.from_crawler(crawler)
    crawler.spider = spider
    return spider


def feed_response(body, url="https://stackoverflow.com/feeds", status=200, headers=None, cls=XmlResponse):
    """The response Scrapy would hand the spider for a feed request."""
    request = Request(url, meta={FEED_META: url})
    return cls(url, body=body, status=status, headers=headers or {}, request=request)


def parse(spider, response):
    """Run the callback Scrapy calls for a feed response (XMLFeedSpider._parse)."""
    return list(spider._parse(response))


@dataclass
class CrawlResult:
    returncode: int
    log: str

    def stat(self, name):
        """A counter from the stats Scrapy dumps at the end, 0 if absent."""
        match = re.search(rf"'{re.escape(name)}': (\d+)", self.log)
        return int(match.group(1)) if match else 0

    @property
    def errors(self):
        return [line for line in self.log.splitlines() if "] ERROR: " in line]
