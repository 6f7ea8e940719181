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
BINARY = ROOT / "bin" / "ferretdb"
VAR = ROOT / "var"
PID_FILE = VAR / "ferretdb.pid"
LOG_FILE = VAR / "ferretdb.log"
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
    """Start FerretDB in the background; return (process, MongoDB URI).

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
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE if tied else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        text=True,
        start_new_session=True,  # Ctrl-C in the terminal does not reach it
    )
    uri = process.stdout.readline().strip()
    process.stdout.close()  # it prints nothing else there
    if not uri.startswith("mongodb://"):
        process.kill()
        raise RuntimeError(f"FerretDB did not start (exit status {process.wait()}); see its log")
    deadline = time.monotonic() + timeout
    while not answers_ping(uri):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"FerretDB at {uri} does not answer a ping")
        time.sleep(0.05)
    return process, uri


def start(listen=DEFAULT_LISTEN):
    uri = f"mongodb://{listen}/"
    if answers_ping(uri):
        print(f"A MongoDB-compatible server already answers at {uri}; using it.")
        return 0
    VAR.mkdir(exist_ok=True)
    with open(LOG_FILE, "a") as log:
        process, uri = launch(VAR / "ferretdb", listen=listen, log=log)
    PID_FILE.write_text(f"{process.pid}\n")
    print(f"FerretDB (SQLite backend) answers at {uri}; data in {VAR / 'ferretdb'}, log in {LOG_FILE}")
    return 0


def stop():
    if not PID_FILE.exists():
        print("No local FerretDB was started by `make db`.")
        return 0
    pid = int(PID_FILE.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print(f"FerretDB (pid {pid}) was not running.")
    else:
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        print(f"FerretDB (pid {pid}) stopped.")
    PID_FILE.unlink()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port (default %(default)s)")
    args = parser.parse_args(argv)
    return start(args.listen) if args.command == "start" else stop()


if __name__ == "__main__":
    sys.exit(main())
