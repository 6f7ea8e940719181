"""`make db` and `make db-stop`, run as the Makefile runs them; a backup of the FerretDB data folder."""

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from sofeed.store import Store
from tests.helpers import ROOT, question_fields, save_days_ago
from tests.processes import PrivateFerretDB
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


@pytest.mark.check  # the full tier: two FerretDBs, one after the other
def test_a_tar_of_a_stopped_ferretdbs_data_folder_restores_into_a_second_ferretdb_whole(tmp_path):
    original, restored = PrivateFerretDB(tmp_path / "original"), PrivateFerretDB(tmp_path / "restored")
    try:
        store = Store.connect(original.start(), "sofeed")
        save_days_ago(store, 40, range(3))
        save_days_ago(store, 1, range(3, 8))
        store.prune_questions(datetime.now(UTC) - timedelta(days=30), datetime.now(UTC))
        store.record_crawl("https://stackoverflow.com/feeds", {"outcome": "ok", "ok": True, "new": 5})
        saved = database_state(store)
        store.close()
        original.stop()
        # As the README says: stop FerretDB, tar its data folder, start it again.
        backup = tmp_path / "sofeed-ferretdb.tar.gz"
        subprocess.run(["tar", "-C", original.data.parent, "-czf", backup, "data"], check=True)

        subprocess.run(["tar", "-C", restored.data.parent, "-xzf", backup], check=True)
        copy = Store.connect(restored.start(), "sofeed")
        assert database_state(copy) == saved
        assert copy.count_questions() == 5
        assert copy.save_question(question_fields(entry_id="https://stackoverflow.com/q/99")) is True
        copy.close()
    finally:
        for server in (original, restored):
            server.stop()
            server.log.close()


def database_state(store):
    """Everything a Store reads, and every document of every collection."""
    collections = sorted(store.db.list_collection_names())
    return {
        "documents": {name: sorted(store.db[name].find(), key=str) for name in collections},
        "recent": [doc["_id"] for doc in store.recent_questions()],
        "count": store.count_questions(),
        "version": store.change_version(),
        "last prune": store.last_prune(),
    }
