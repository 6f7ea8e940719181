"""Start one part of the system as a process, wait until it is ready, stop it and its children.

Every part (FerretDB, scheduler.py, gunicorn, a feed server) runs in a
session of its own, so that Ctrl-C in a terminal reaches only whoever started
it, and stopping it reaches the whole process group: gunicorn's workers and a
crawl's subprocess stop with their parent.
"""

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition, timeout=20.0, step=0.05, what="the condition"):
    """condition()'s first truthy value, polling every step seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(step)


@dataclass
class Part:
    """A started process; first_line is what it printed first when asked for (its URL)."""

    name: str
    process: subprocess.Popen
    first_line: str = ""

    @property
    def running(self):
        return self.process.poll() is None

    def stop(self, timeout=10):
        """SIGTERM to its process group, then SIGKILL to the group if it lingers."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait()
        # Children that outlived a parent which exited on its own.
        _signal_group(self.process, signal.SIGKILL)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _signal_group(process, signum):
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(process.pid, signum)


def start(name, command, *, ready=None, timeout=30.0, first_line=False, cwd=ROOT, **popen):
    """Start command as a Part in its own session, and return once it is ready.

    With first_line, its standard output is a pipe and the first line it
    prints is kept (a server that picked a free port prints its URL there);
    the pipe is closed after it. ready(part) is polled until truthy; the
    part is stopped and RuntimeError raised if it exits or times out first.
    """
    if first_line:
        popen.update(stdout=subprocess.PIPE, text=True)
    process = subprocess.Popen(command, cwd=cwd, start_new_session=True, **popen)
    part = Part(name, process)
    try:
        if first_line:
            part.first_line = process.stdout.readline().strip()
            process.stdout.close()
            process.stdout = None
            if not part.first_line:
                raise RuntimeError(
                    f"{name} exited (status {process.wait()}) before printing anything; see its log"
                )
        deadline = time.monotonic() + timeout
        while ready is not None and not ready(part):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode} before it was ready; see its log"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {timeout} s; see its log")
            time.sleep(0.05)
    except BaseException:
        part.stop(timeout=2)
        raise
    return part
