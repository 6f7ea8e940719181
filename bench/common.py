"""What every benchmark in bench/ shares: the repository on sys.path, quick
mode, the Figure a benchmark reports, and the command line of each script.

A benchmark runs on its own (`.venv/bin/python bench/parse.py`) or under
bench/run.py. Either way it imports this module first, which makes the
repository's packages (sofeed, webapp, tools, tests) importable from bench/.

Figures are ratios against an anchor measured in the same run, on the same
data, one after the other; absolute times are printed only for context.
Pass/fail never depends on timing: a goal that is missed is reported, and
only a crash makes a benchmark exit non-zero.
"""

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# A script imports this module as `common` (bench/ is its sys.path[0]), and
# the helper modules as `bench.common`: let both names be one module.
sys.modules.setdefault("bench.common", sys.modules[__name__])

BENCH = ROOT / "bench"
# Logs, temporary databases and the smoke run's report: never committed.
VAR = ROOT / "var" / "bench"


def quick_mode():
    """True for a smoke run (BENCH_QUICK=1): small sizes, short durations."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def work_dir(name):
    """The folder under var/bench/ for one benchmark's logs (made if missing)."""
    folder = VAR / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Figure:
    """One measured value beside its anchor, and the goal that compares them.

    `ratio` is expressed in the goal's direction ("how many times less CPU",
    "what share of the anchor's rate"), and `ratio_text` says which.
    `met` is None where there is no goal for the figure.
    """

    name: str
    value: float
    unit: str
    anchor: str
    anchor_value: float | None
    ratio: float | None
    ratio_text: str
    goal: str
    met: bool | None


@dataclass
class Result:
    """What one benchmark reports: its figures, how they were measured, and context."""

    benchmark: str
    title: str
    method: str
    figures: list = field(default_factory=list)
    # Absolute numbers and notes that are not figures: name -> text.
    context: dict = field(default_factory=dict)
    quick: bool = False
    seconds: float = 0.0

    def add(self, *args, **kwargs):
        self.figures.append(Figure(*args, **kwargs))

    def note(self, name, text):
        self.context[name] = text


def percentile(values, share):
    """The share-th quantile (0..1) of values, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * share
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratio(numerator, denominator):
    """numerator / denominator, or None when the denominator is zero or missing."""
    if not denominator or numerator is None:
        return None
    return numerator / denominator


def describe(result):
    """The result as text: one line per figure, then the context."""
    lines = [f"{result.title}{' (quick)' if result.quick else ''}: {result.seconds:.0f} s"]
    for figure in result.figures:
        verdict = {True: "met", False: "MISSED", None: "-"}[figure.met]
        anchor = f"{figure.anchor_value:.4g}" if figure.anchor_value is not None else "-"
        ratio_text = f"{figure.ratio:.3g}{figure.ratio_text}" if figure.ratio is not None else "-"
        lines.append(
            f"  {figure.name}: {figure.value:.4g} {figure.unit} | anchor {figure.anchor}: {anchor} "
            f"| {ratio_text} | goal {figure.goal}: {verdict}"
        )
    lines += [f"  {name}: {text}" for name, text in result.context.items()]
    return "\n".join(lines)


def main(run, argv=None):
    """The command line of a benchmark script: run it, print its figures, save them as JSON on request."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the result to this file, for bench/run.py")
    args = parser.parse_args(argv)
    quick = quick_mode()
    started = time.monotonic()
    result = run(quick)
    result.quick = quick
    result.seconds = time.monotonic() - started
    print(describe(result), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(result), indent=1))
    return 0
