"""Start and stop the local FerretDB that stands in for MongoDB.

    python tools/localdb.py start   # 127.0.0.1:27017, data under var/ferretdb
    python tools/localdb.py stop

`make db` and `make db-stop` call this; the test suite uses `launch()` to run
a private server on a free port. The binary is built by `make setup`.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import launcher  # noqa: E402 (needs the path above when run as a script)

BINARY = ROOT / "bin" / "ferretdb"
VAR = ROOT / "var"
DEFAULT_LISTEN = "127.0.0.1:27017"


def answers_ping(uri, timeout_ms=500):
    """True if a MongoDB-compatible server at uri answers a ping."""
    client = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def launch(data_dir, listen="127.0.0.1:0", log=subprocess.DEVNULL, timeout=15, tied=False):
    """Start FerretDB in the background; return (process, MongoDB URI) once it answers a ping.

    With port 0 the server picks a free port and prints its URI first thing,
    so there is no race for the port between choosing and binding it. A tied
    server stops when this process ends, however it ends: it watches the
    pipe on its standard input, which only this process holds open.
    """
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is missing: run `make setup` to build FerretDB")
    env = dict(os.environ, FERRETDB_TELEMETRY="disable")
    command = [str(BINARY), "-listen", listen, "-data", str(data_dir)]
    if tied:
        command.append("-stop-on-stdin-eof")
    part = launcher.start(
        "FerretDB",
        command,
        ready=_answers_at_its_uri,
        timeout=timeout,
        first_line=True,
        stdin=subprocess.PIPE if tied else subprocess.DEVNULL,
        stderr=log,
        env=env,
    )
    return part.process, part.first_line


def _answers_at_its_uri(part):
    if not part.first_line.startswith("mongodb://"):
        raise RuntimeError(f"FerretDB printed {part.first_line!r} instead of its URI; see its log")
    return answers_ping(part.first_line)


def start(listen=DEFAULT_LISTEN, var=VAR):
    """Start FerretDB on listen, with its data, log and pid file under var."""
    uri = f"mongodb://{listen}/"
    if answers_ping(uri):
        print(f"A MongoDB-compatible server already answers at {uri}; using it.")
        return 0
    var.mkdir(parents=True, exist_ok=True)
    log_file = var / "ferretdb.log"
    with open(log_file, "a") as log:
        process, uri = launch(var / "ferretdb", listen=listen, log=log)
    (var / "ferretdb.pid").write_text(f"{process.pid}\n")
    print(f"FerretDB (SQLite backend) answers at {uri}; data in {var / 'ferretdb'}, log in {log_file}")
    return 0


def stop(var=VAR, timeout=10):
    """Stop the FerretDB that start() left running with its pid file under var."""
    pid_file = var / "ferretdb.pid"
    if not pid_file.exists():
        print("No local FerretDB was started by `make db`.")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print(f"FerretDB (pid {pid}) was not running.")
    else:
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"FerretDB (pid {pid}) stopped.")
    pid_file.unlink()
    return 0


def _alive(pid):
    """True while pid runs; an exited process nobody has reaped yet counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port (default %(default)s)")
    parser.add_argument(
        "--var", type=Path, default=VAR, help="folder for data, log and pid file (default var/)"
    )
    args = parser.parse_args(argv)
    return start(args.listen, args.var) if args.command == "start" else stop(args.var)


if __name__ == "__main__":
    sys.exit(main())
