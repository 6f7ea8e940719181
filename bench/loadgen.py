"""HTTP load with Debian's wrk: requests per second and latency percentiles.

wrk keeps `connections` keep-alive connections open and, from two threads
(the machine's two cores), sends requests on each as fast as the server
answers them: a closed loop that finds the server's capacity, and whose
latency is mostly queueing once the server is saturated. The numbers come
out of bench/wrk_report.lua as JSON; wrk's own `--latency` text goes to
the log.
"""

import json
import resource
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPORT_SCRIPT = Path(__file__).resolve().parent / "wrk_report.lua"
WRK = "/usr/bin/wrk"


@dataclass
class Load:
    """What wrk measured for one URL at one number of connections."""

    connections: int
    seconds: float
    requests: int
    errors: int  # connect, read, write and timeout errors, and answers other than 2xx/3xx
    non_2xx: int  # of those, the answers other than 2xx/3xx
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def median(loads):
    """One Load standing for several runs of the same load: the median of each figure."""
    return Load(
        connections=loads[0].connections,
        seconds=sum(load.seconds for load in loads),
        requests=sum(load.requests for load in loads),
        errors=sum(load.errors for load in loads),
        non_2xx=sum(load.non_2xx for load in loads),
        **{
            name: statistics.median(getattr(load, name) for load in loads)
            for name in ("requests_per_second", "p50_ms", "p90_ms", "p99_ms", "max_ms")
        },
    )


def allow_open_files(needed):
    """Raise this process's soft limit on open files (inherited by wrk) to needed, if the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wrk_version():
    if not shutil.which(WRK):
        return "missing"
    finished = subprocess.run([WRK, "-v"], capture_output=True, text=True)
    return (finished.stdout + finished.stderr).split("Copyright")[0].strip()


def load(url, connections, seconds, log, threads=2, timeout_seconds=10):
    """Run wrk against url; returns a Load. Its text output is appended to the open file log."""
    if not Path(WRK).exists():
        raise FileNotFoundError(f"{WRK} is missing: `make bench` installs it (apt-get install wrk)")
    allow_open_files(connections + 256)
    command = [WRK, "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds}s"]
    command += ["--timeout", f"{timeout_seconds}s", "--latency", "-s", str(REPORT_SCRIPT), url]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    log.write(f"$ {' '.join(command)}\n{finished.stdout}{finished.stderr}\n")
    log.flush()
    if finished.returncode != 0:
        raise RuntimeError(f"wrk exited with status {finished.returncode}: {finished.stderr.strip()}")
    line = next(line for line in finished.stdout.splitlines() if line.startswith("WRK_JSON "))
    report = json.loads(line.removeprefix("WRK_JSON "))
    latency = report["latency_us"]
    duration = report["duration_us"] / 1e6
    return Load(
        connections=connections,
        seconds=duration,
        requests=report["requests"],
        errors=sum(report["errors"].values()),
        non_2xx=report["errors"]["status"],
        requests_per_second=report["requests"] / duration,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )
