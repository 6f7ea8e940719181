"""docs/BENCHMARKS.md from the benchmarks' results: the machine, the
versions, and for each benchmark a table of figures beside their anchors."""

import ast
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version

from bench import loadgen
from bench.common import BENCH, ROOT
from tests.browser import CHROMIUM

PACKAGES = ("Scrapy", "lxml", "feedparser", "pymongo", "Flask", "gunicorn", "Playwright")
VERDICTS = {True: "met", False: "**missed**", None: "-"}


def _command_output(command):
    """What command prints, or "" if it cannot run."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine(load_before):
    """(name, value) rows: CPU, cores, memory, OS, how busy it was, and the code measured."""
    with open("/proc/cpuinfo") as cpuinfo:
        models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read(), re.MULTILINE)
    with open("/proc/meminfo") as meminfo:
        memory_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read()).group(1))
    os_name = platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    commit = _command_output(["git", "rev-parse", "--short", "HEAD"])
    changed = _command_output(["git", "status", "--porcelain", "--untracked-files=no"]).splitlines()
    code = f"commit {commit}" + (f", with uncommitted changes to {len(changed)} files" if changed else "")
    return [
        ("CPU", models[0] if models else platform.processor()),
        ("cores", str(os.cpu_count())),
        ("memory", f"{memory_kb / 1024 / 1024:.1f} GiB"),
        ("system", f"{os_name}, Linux {platform.release()}"),
        ("load average before the run", " / ".join(f"{load:.2f}" for load in load_before) + " (1/5/15 min)"),
        ("code measured", code),
    ]


def versions():
    """(name, version) rows of everything the figures depend on."""
    go_mod = (ROOT / "tools" / "ferretdb" / "go.mod").read_text()
    ferretdb = re.search(r"github\.com/FerretDB/FerretDB (v[\d.]+)", go_mod).group(1)
    from lxml import etree

    libxml2 = ".".join(map(str, etree.LIBXML_VERSION))
    rows = [("Python", platform.python_version())]
    for package in PACKAGES:
        rows.append((package, version(package) + (f" (libxml2 {libxml2})" if package == "lxml" else "")))
    rows.append(("FerretDB", f"{ferretdb} (SQLite backend, bin/ferretdb)"))
    rows.append(("Chromium", _command_output([CHROMIUM, "--version"]) or "missing"))
    rows.append(("wrk", loadgen.wrk_version()))
    return rows


def number(value):
    """A figure at a readable precision."""
    if value is None:
        return "-"
    if isinstance(value, int):  # a count: streams, pages
        return f"{value:,}"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio_cell(figure):
    """The ratio and what it means, as "0.74x the lxml loop's rate"."""
    if figure["ratio"] is None:
        return "-"
    return f"{figure['ratio']:.2f}{figure['ratio_text']}"


def figure_table(figures, with_benchmark=False):
    """A Markdown table of (benchmark, figure dict) pairs."""
    columns = ["figure", "value", "anchor", "anchor value", "ratio", "goal", ""]
    columns = ["benchmark", *columns] if with_benchmark else columns
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for benchmark, figure in figures:
        cells = [
            figure["name"],
            f"{number(figure['value'])} {figure['unit']}",
            figure["anchor"],
            "-" if figure["anchor_value"] is None else f"{number(figure['anchor_value'])} {figure['unit']}",
            ratio_cell(figure),
            figure["goal"],
            VERDICTS[figure["met"]],
        ]
        lines.append("| " + " | ".join(([benchmark] if with_benchmark else []) + cells) + " |")
    return lines


def render(results, failures, quick, seconds, load_before):
    """The whole document as Markdown."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    kind = "full run"
    if quick:
        kind = "smoke run (`BENCH_QUICK=1`: small sizes and short runs, so the figures mean little)"
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (bench/run.py): {kind}, {now}, {seconds / 60:.1f} minutes.",
        "Do not edit by hand.",
        "",
        "Every figure is a ratio against an anchor measured in the same run, on the same",
        "data, one after the other (or, for freshness, computed from the 2015 design);",
        "absolute numbers are for context only: they depend on the machine. A missed goal",
        "is reported here; it does not fail the run, only a crash does.",
        "",
        "## How to rerun",
        "",
        "```sh",
        "make bench                         # everything, about 18 minutes; rewrites this file",
        "BENCH_QUICK=1 make bench           # smoke run, about 90 s; writes var/bench/BENCHMARKS.md",
        ".venv/bin/python bench/parse.py    # one benchmark: prints its figures (BENCH_QUICK=1 works too)",
        "```",
        "",
        "`make check` runs the smoke run after the test suite, so the benchmarks never rot.",
        "The benchmarks are `bench/parse.py`, `crawl_cycle.py`, `freshness.py`, `fanout.py`,",
        "`data_scale.py` and `push.py`; their logs are under `var/bench/`.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in machine(load_before)),
        "",
        "## Versions",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in versions()),
        "",
        "## Goals",
        "",
    ]
    goals = [
        (result["title"], figure)
        for result in results
        for figure in result["figures"]
        if figure["met"] is not None
    ]
    lines += figure_table(goals, with_benchmark=True)
    if failures:
        lines += ["", "**Failed to run:** " + ", ".join(f"`bench/{name}`" for name in failures)]
    for result in results:
        lines += ["", f"## {result['title']}", "", result["method"] + f" ({result['seconds']:.0f} s).", ""]
        lines += figure_table([(result["benchmark"], figure) for figure in result["figures"]])
        if result["context"]:
            lines.append("")
            lines += [f"- {name}: {text}" for name, text in result["context"].items()]
        lines += ["", "How it is measured (from `bench/" + result["benchmark"] + ".py`):", ""]
        lines += ["> " + line if line else ">" for line in _docstring(result["benchmark"]).splitlines()]
    return "\n".join(lines) + "\n"


def _docstring(benchmark):
    """A benchmark script's docstring, read without importing it."""
    source = (BENCH / f"{benchmark}.py").read_text()
    return ast.get_docstring(ast.parse(source)) or ""
