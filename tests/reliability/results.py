"""What each reliability scenario measured, kept for docs/RELIABILITY.md.

A scenario's test calls record() once it has checked what must hold. Each
record is one JSON file under var/reliability/, one per row of the table, so
running a single test refreshes its own row; `make reliability-report` runs
the suite and renders the table from the files (tests/reliability/report.py).
"""

import json
import re
import time

from tests.helpers import ROOT

RESULTS = ROOT / "var" / "reliability"


def record(scenario, *, injected, must_hold, result, order=None):
    """Save one row: the scenario, what was injected, what must hold, what was measured.

    injected, must_hold and result are short sentences of plain text (a few
    Markdown backticks at most); order sorts the rows in the table (the
    scenario number, then a letter: "1a", "1b", ... ).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", scenario.lower()).strip("-")
    row = {
        "scenario": scenario,
        "order": order or scenario,
        "injected": injected,
        "must_hold": must_hold,
        "result": result,
        "recorded": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    (RESULTS / f"{slug}.json").write_text(json.dumps(row, indent=2) + "\n")
    return row
