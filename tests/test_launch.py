"""`make run` and `make demo` bring the whole system up: tools/launch.py as a real process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tests.helpers import ROOT


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid):
    """Every live process below pid."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_the_demo_comes_up_with_questions_and_ctrl_c_stops_every_part(mongo_uri, database_name, tmp_path):
    port = free_port()
    env = {**os.environ, "MONGO_URI": mongo_uri, "MONGO_DATABASE": database_name, "SOFEED_PORT": str(port)}
    log = tmp_path / "launch.log"
    with open(log, "w") as output:
        launcher = subprocess.Popen(
            [sys.executable, "tools/launch.py", "--demo"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        questions = []
        while not questions and time.monotonic() < deadline:
            time.sleep(0.5)
            if f"sofeed is up: {url}" in log.read_text():
                questions = get_json(url + "update?timestamp=0")
        assert questions, log.read_text()
        parts = descendants(launcher.pid)
        assert len(parts) >= 4  # the feed simulator, the scheduler, gunicorn and its workers

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=20) == 0
        assert [pid for pid in parts if os.path.exists(f"/proc/{pid}")] == []
        assert "stopped" in log.read_text()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
