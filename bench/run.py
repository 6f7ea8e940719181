"""Run every benchmark in bench/, in order, and write docs/BENCHMARKS.md.

    .venv/bin/python bench/run.py                   # `make bench`: about 18 minutes
    BENCH_QUICK=1 .venv/bin/python bench/run.py     # smoke run: about 90 s

Each benchmark runs as its own process (`bench/NAME.py --json FILE`), so
one's memory, reactor or browser never weighs on the next, and so that a
benchmark run alone prints exactly what it prints here. A smoke run writes
var/bench/BENCHMARKS.md and leaves docs/ alone; so does a full run in which
a benchmark failed. The exit status is 1 if any benchmark crashed (or
timed out), whatever the figures say.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

from bench import report

BENCHMARKS = ("parse", "crawl_cycle", "freshness", "fanout", "data_scale", "push", "prune")
# A benchmark that runs longer than this is stuck: it is stopped, and counts as failed.
TIME_LIMIT, QUICK_TIME_LIMIT = 600, 120
# push.py holds 10,000 streams on each of two servers, one after the other.
TIME_LIMITS = {"push": 1200, "prune": 1200}


def run_benchmark(name, json_path, time_limit):
    """Run bench/NAME.py; True if it finished well and wrote its result."""
    command = [sys.executable, str(common.BENCH / f"{name}.py"), "--json", str(json_path)]
    # Its own process group, so that a stuck or interrupted benchmark is
    # stopped with everything it started.
    process = subprocess.Popen(command, cwd=common.ROOT, start_new_session=True)
    try:
        process.wait(timeout=time_limit)
    except subprocess.TimeoutExpired:
        print(f"bench/{name}.py is still running after {time_limit} s: stopping it", flush=True)
        return False
    finally:
        if process.poll() is None:
            stop_group(process)
    return process.returncode == 0 and json_path.exists()


def stop_group(process):
    """SIGTERM to a benchmark's process group, then SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main():
    quick = common.quick_mode()
    started = time.monotonic()
    load_before = os.getloadavg()
    results, failures = [], []
    common.VAR.mkdir(parents=True, exist_ok=True)
    # This run's own folder for the results: another run at the same time (make test) has its own.
    with tempfile.TemporaryDirectory(prefix="results-", dir=common.VAR) as results_dir:
        for name in BENCHMARKS:
            print(f"== bench/{name}.py", flush=True)
            json_path = Path(results_dir) / f"{name}.json"
            if run_benchmark(
                name, json_path, QUICK_TIME_LIMIT if quick else TIME_LIMITS.get(name, TIME_LIMIT)
            ):
                results.append(json.loads(json_path.read_text()))
            else:
                failures.append(f"{name}.py")
    seconds = time.monotonic() - started
    target = common.ROOT / "docs" / "BENCHMARKS.md"
    if quick or failures:
        target = common.VAR / "BENCHMARKS.md"
    target.write_text(report.render(results, failures, quick, seconds, load_before))
    print(f"== wrote {target.relative_to(common.ROOT)} after {seconds:.0f} s", flush=True)
    if failures:
        print("== failed: " + ", ".join(f"bench/{name}" for name in failures), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
