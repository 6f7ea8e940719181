"""`make db` and `make db-stop`, run as the Makefile runs them."""

import socket
import subprocess
import sys

from tests.helpers import ROOT
from tools.localdb import answers_ping


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def localdb(*args):
    command = [sys.executable, "tools/localdb.py", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_make_db_starts_ferretdb_says_so_when_it_already_runs_and_stops_it(tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    uri = f"mongodb://{listen}/"
    try:
        first = localdb("start", "--listen", listen, "--var", str(tmp_path))
        assert first.returncode == 0, first.stderr
        assert f"FerretDB (SQLite backend) answers at {uri}" in first.stdout
        assert answers_ping(uri)
        assert (tmp_path / "ferretdb").is_dir()

        again = localdb("start", "--listen", listen, "--var", str(tmp_path))
        assert again.returncode == 0
        assert f"already answers at {uri}" in again.stdout
    finally:
        stopped = localdb("stop", "--var", str(tmp_path))
    assert stopped.returncode == 0
    assert "stopped" in stopped.stdout
    assert not answers_ping(uri)
    assert not (tmp_path / "ferretdb.pid").exists()


def test_make_db_stop_without_a_started_server_says_so(tmp_path):
    result = localdb("stop", "--var", str(tmp_path))
    assert result.returncode == 0
    assert "No local FerretDB was started" in result.stdout
