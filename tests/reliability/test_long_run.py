"""Scenario 8: the scheduler at a 0.5 s interval for 600 cycles against the feed simulator.

The run itself happens in the background of the whole session (see
tests/reliability/long_run.py and tests/conftest.py); this test runs last,
waits for the cycles to be done and checks what was measured meanwhile.
SOFEED_LONG_RUN_CYCLES sets the number of cycles for a quicker local run.
"""

import pytest

from tests.reliability.long_run import INTERVAL, PUBLISH_EVERY, WARM_CYCLE
from tests.reliability.results import record

# The full tier (`make check`): real processes for seconds to minutes each.
pytestmark = pytest.mark.check

# Bounds from the warm cycle to the end. A leak of one object per crawl
# would pass none of them over 600 cycles; a socket or a thread per crawl neither.
RSS_GROWTH_MB = 15
FD_GROWTH = 4
THREAD_GROWTH = 2


@pytest.mark.long_run
def test_the_scheduler_crawls_600_cycles_with_flat_memory_files_and_processes_and_stores_every_question(
    long_run,
):
    long_run.wait_for_the_cycles()
    samples = list(long_run.samples)
    returncode = long_run.finish()

    cycles = len(long_run.scheduler.crawl_lines())
    assert cycles >= long_run.cycles
    assert returncode == 0
    assert long_run.scheduler.unexpected_lines() == []
    assert long_run.missing() == []
    assert len({*long_run.published}) == len(long_run.published)
    assert long_run.store.count_questions() == long_run.store.questions.count_documents({})
    warm = next(sample for sample in samples if sample.cycles >= min(WARM_CYCLE, long_run.cycles // 2))
    last = samples[-1]
    assert all(sample.children == 0 for sample in samples)
    assert max(sample.rss_mb for sample in samples) - warm.rss_mb <= RSS_GROWTH_MB
    assert max(sample.fds for sample in samples if sample.at >= warm.at) - warm.fds <= FD_GROWTH
    assert max(sample.threads for sample in samples if sample.at >= warm.at) - warm.threads <= THREAD_GROWTH

    failed = [crawl for crawl in long_run.scheduler.crawls() if crawl.level != "INFO"]
    cpu_per_crawl = (last.cpu_seconds - warm.cpu_seconds) / (last.cycles - warm.cycles)
    record(
        "Long run",
        injected=f"`scheduler.py --interval {INTERVAL:g}` for {cycles} cycles against "
        "tools/sim/feed_server.py, "
        f"a new question every {PUBLISH_EVERY:g} s",
        must_hold=f"no child process; from cycle {warm.cycles} on, open files within +{FD_GROWTH}, "
        f"threads within +{THREAD_GROWTH}, RSS within +{RSS_GROWTH_MB} MB; every published question stored",
        result=f"{cycles} cycles in {last.at:.0f} s, {len(failed)} not OK; "
        f"{len(long_run.published)}/{len(long_run.published)} questions stored once; "
        f"child processes 0 throughout; RSS {warm.rss_mb:.1f} MB at cycle {warm.cycles}, "
        f"{last.rss_mb:.1f} MB at cycle {last.cycles} (peak {max(s.rss_mb for s in samples):.1f}); "
        f"open files {warm.fds} → {last.fds} (max {max(s.fds for s in samples)}); "
        f"threads {warm.threads} → {last.threads}; {cpu_per_crawl * 1000:.0f} ms CPU per crawl",
        order="8",
    )
