"""Scenario 7: 200 pages poll /update every second for half a minute, against gunicorn
with its production config on this 2-core machine, while the scheduler crawls
a feed that gains a question every second.

The pages are asyncio clients in this one process (tests/reliability/pollers.py),
so the load generator takes little of the CPU the server is measured on.
"""

import os
import time

import pytest

from tests.reliability.pollers import Crowd, milliseconds, percentile
from tests.reliability.results import record
from tests.reliability.system import Site, cpu_seconds

# The full tier (`make check`): real processes for seconds to minutes each.
pytestmark = pytest.mark.check

PAGES, INTERVAL, SECONDS = 200, 1.0, 30  # 200 pages polling every second, for half a minute
PUBLISH_EVERY = 1.0


def test_200_pages_polling_every_second_for_half_a_minute_get_every_answer_right(
    mongo_uri, database_name, tmp_path
):
    with Site(mongo_uri, database_name, tmp_path, publish_every=PUBLISH_EVERY) as site:
        site.wait_for_first_crawl()
        web_pids = site.web_pids()
        with Crowd(site.url, PAGES) as crowd:
            crowd.load()
            stored_before = site.stored().keys()
            server_before, client_before = cpu_seconds(web_pids), time.process_time()
            started = time.monotonic()
            crowd.poll_for(INTERVAL, SECONDS)
            elapsed = time.monotonic() - started
            server_cpu = cpu_seconds(web_pids) - server_before
            client_cpu = time.process_time() - client_before
            machine_load = os.getloadavg()[0]
            latencies, errors = crowd.latencies, crowd.errors
            new_seen = [len(page.receipts.keys() - stored_before) for page in crowd.pages]
            reconnects = sum(page.connection.reconnects for page in crowd.pages)
        stored_during = len(site.stored().keys() - stored_before)
        web_pids_after = site.web_pids()
        log_problems = site.log_problems()

    assert errors == [], f"{len(errors)} errors, first ones: {errors[:5]}"
    assert web_pids_after == web_pids, "a gunicorn worker died or was replaced"
    assert log_problems == []
    assert min(new_seen) > 0, "a page never received a new question"
    requests = len(latencies)
    received = f"{min(new_seen)}" if min(new_seen) == max(new_seen) else f"{min(new_seen)} to {max(new_seen)}"
    record(
        "Load",
        order="7",
        injected=(
            f"{PAGES} pages polling `/update` every {INTERVAL:g} s for {SECONDS} s (asyncio keep-alive "
            "clients, cursor as the page keeps it) against gunicorn with `webapp/gunicorn_conf.py` "
            f"({len(web_pids) - 1} workers) on {os.cpu_count()} cores, while `scheduler.py` crawled a "
            f"feed gaining a question every {PUBLISH_EVERY:g} s"
        ),
        must_hold="zero errors: every answer 200 with a JSON list; no worker dies",
        result=(
            f"0 errors in {requests} requests ({requests / elapsed:.0f}/s); latency p50 "
            f"{milliseconds(percentile(latencies, 0.5))}, p95 {milliseconds(percentile(latencies, 0.95))}, "
            f"p99 {milliseconds(percentile(latencies, 0.99))}, max {milliseconds(max(latencies))}; gunicorn "
            f"CPU {server_cpu / elapsed:.0%} of one core (master and workers), the 200 clients "
            f"{client_cpu / elapsed:.0%}; load average {machine_load:.1f} at the end; {stored_during} new "
            f"questions stored, each page received {received} of them; "
            f"{reconnects} requests retried on a new connection"
        ),
    )
