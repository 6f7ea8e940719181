"""Render docs/RELIABILITY.md from the rows the reliability scenarios recorded.

    make reliability-report                  # run tests/reliability, then this
    python -m tests.reliability.report       # only re-render, from var/reliability/*.json

Each scenario's test writes one JSON row when its checks pass
(tests/reliability/results.py); this turns them into one table, sorted by
each row's `order`, with the machine they were measured on.
"""

import json
import os
import platform
import sys
from datetime import datetime, timedelta
from pathlib import Path

from tests.helpers import ROOT
from tests.reliability.results import RESULTS

REPORT = ROOT / "docs" / "RELIABILITY.md"
# A row recorded this long before the newest one is from an earlier run (its test failed
# since, or is gone): it is marked, not silently mixed in. A whole run takes about 11 minutes.
STALE_AFTER = timedelta(minutes=15)
RECORDED = "%Y-%m-%d %H:%M:%S UTC"

# Short notes, by scenario number: what the table cannot say in a cell.
NOTES = {
    "1": (
        "All fault kinds run side by side: one scheduler crawls one feed URL per kind, each served by "
        "the test's own feed server, which switches every URL from its fault to a healthy feed of its "
        "own entries. So each kind is injected for the same crawls, and healing is checked per feed."
    ),
    "3": (
        "The kill is placed with SIGSTOP: the test freezes the scheduler at the chosen moment (counted in "
        "the store), then sends SIGKILL, so 3b and 3c hit their window on every run. 3c, the count one "
        "short after a kill between a question's copy into `recent` and taking its number in `counted`, "
        "is a strict xfail: the question shows, the count does not recover (recounting `questions` scans "
        "it on FerretDB; docs/COUNTING.md). The newest-first stop-at-first-duplicate crawl it is "
        "compared with is simulated on the state the crash left, not run."
    ),
    "8": (
        "The long run starts with the test session and crawls in its background, while the rest of the "
        "suite loads the machine; its test runs last and checks what was sampled from /proc meanwhile. "
        "`SOFEED_LONG_RUN_CYCLES` shortens it for a local run; the default is 600."
    ),
    "2": (
        "The outage lasts 20 s. FerretDB is the test's own, stopped and started on "
        "the same port. The feed gains a question every 2 s during the outage, so it still holds them all "
        "when the database is back; the open page must show them without a reload. A stopped server "
        "refuses connections at once; a hung one (2b) accepts them and answers nothing, so each call "
        "waits out its timeouts, which is why it gets a row of its own."
    ),
    "4": (
        "A re-stamp happens when a writer's insert and its announcement take longer than half of "
        "`VISIBILITY_LAG` (0.5 s): the store gives the question a fresh `fetched`, so a page may be handed "
        'it twice, and dedupes it by id. "No duplicates" therefore means: no page shows a question twice, '
        "each extra receipt carries a newer `fetched`, and the store holds each question once."
    ),
    "5": (
        "Property-based: hypothesis, derandomized (the same cases on every run), no example database. "
        "Latencies are per request, measured in the test process; the app's share runs in-process, the "
        "raw share over loopback TCP."
    ),
    "9": (
        "The pages, the slow clients and the ordinary client are bench/clients.py's asyncio processes, the "
        "ones `bench/push.py` measures with; wrk is Debian's. Only behaviour is asserted (every page "
        "delivered, no failed request, no 503); the timings are recorded, and `bench/push.py` (docs/"
        "BENCHMARKS.md) holds the goals on them, beside the gthread worker."
    ),
    "7": (
        "CPU is user plus system time of gunicorn's master and workers from /proc, over the 30 s, as a "
        "share of one core; the machine is shared with the rest of the suite, so figures vary from run "
        "to run. Latency is measured at the client, from sending a request to reading its last byte."
    ),
    "10": (
        "A page's time without a new question is the longest gap between two questions first shown on it "
        "(or the window's edge), in each window: before the kills (the feed gains a question every 0.5 s "
        "and is crawled every second, so a page's normal gap is one to two seconds), from the web kill to "
        "the scheduler kill, and from the scheduler kill to the end. A page whose stream is cut reconnects "
        "through nginx after the stream's `retry:` (1 s), and polls if the surviving host refuses it."
    ),
}


def rows(results=RESULTS):
    """The recorded rows, in table order."""
    found = [json.loads(path.read_text()) for path in sorted(results.glob("*.json"))]
    return sorted(found, key=lambda row: (natural(row["order"]), row["scenario"]))


def natural(order):
    """ "2" < "10", "1b" < "1c": digits compare as numbers."""
    digits = "".join(char for char in order if char.isdigit())
    rest = order[len(digits) :] if order.startswith(digits) else order
    return (int(digits) if digits else sys.maxsize, rest)


def cell(text):
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def stale(found):
    """The rows recorded long before the newest one."""
    newest = max(datetime.strptime(row["recorded"], RECORDED) for row in found)
    return [row for row in found if newest - datetime.strptime(row["recorded"], RECORDED) > STALE_AFTER]


def render(found):
    """docs/RELIABILITY.md for the rows found."""
    recorded = sorted(row["recorded"] for row in found)
    old = stale(found)
    lines = [
        "# Reliability",
        "",
        "What the reliability suite (`tests/reliability/`) does to sofeed, what must hold, and what it",
        "measured. Every scenario runs the real parts: `scheduler.py`, the web app under gunicorn,",
        "FerretDB, the local feed servers and, where a page is involved, Chromium. A scenario's row is",
        "written only when its checks pass.",
        "",
        "Regenerate this file (runs the suite, about 10 minutes, then renders the table):",
        "",
        "```sh",
        "make reliability-report",
        "```",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}. Measured {recorded[0]} to {recorded[-1]}; a row from",
        "an earlier run says so.",
        "",
        "| Scenario | Injected | Must hold | Measured |",
        "| --- | --- | --- | --- |",
    ]
    for row in found:
        result = row["result"] + (f" (from an earlier run, {row['recorded']})" if row in old else "")
        cells = [f"{row['order']}. {row['scenario']}", row["injected"], row["must_hold"], result]
        lines.append("| " + " | ".join(cell(text) for text in cells) + " |")
    numbers = sorted({natural(row["order"])[0] for row in found})
    notes = [(str(number), NOTES[str(number)]) for number in numbers if str(number) in NOTES]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- **{number}.** {note}" for number, note in notes]
    return "\n".join(lines) + "\n"


def main():
    found = rows()
    if not found:
        print(f"no results in {RESULTS}: run `make reliability-report` (or pytest tests/reliability) first")
        return 1
    REPORT.write_text(render(found))
    print(f"wrote {REPORT.relative_to(ROOT)}: {len(found)} scenarios")
    for row in stale(found):
        print(f"  {row['order']}. {row['scenario']}: from an earlier run ({row['recorded']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
