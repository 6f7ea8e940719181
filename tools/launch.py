"""Bring the whole of sofeed up in one terminal: `make run` and `make demo`.

    python tools/launch.py           # FerretDB, the scheduler, the web app
    python tools/launch.py --demo    # the same, crawling a simulated feed

It starts the local FerretDB on 127.0.0.1:27017 (data in var/ferretdb)
unless MONGO_URI is set or a server already answers there, then the
scheduler and the web app under gunicorn, and prints the page's URL once
the app answers. Ctrl-C (or SIGTERM) stops everything it started. If one
part dies, the others are stopped too and the exit status is 1.

The demo crawls tools/sim/feed_server.py, which publishes a new question every few
seconds, and the Stack Exchange API simulator (tools/sim/stackexchange.py),
which lists the feed's questions and some of its own, every 5 seconds, into
its own database (sofeed_demo).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import localdb  # noqa: E402 (needs the path above when run as a script)

VENV_BIN = Path(sys.executable).parent
LOCAL_LISTEN = localdb.DEFAULT_LISTEN


class Launcher:
    def __init__(self):
        self.children = []  # (name, Popen), in start order

    def start(self, name, command, env=None, **popen):
        # Own session: Ctrl-C reaches only us, and we stop the parts in order.
        process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, **popen)
        self.children.append((name, process))
        return process

    def stop_all(self, timeout=8):
        for _name, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {timeout} s; killing it", file=sys.stderr)
                process.kill()
                process.wait()

    def dead(self):
        return [(name, process.returncode) for name, process in self.children if process.poll() is not None]


def database(launcher, log_folder):
    """MONGO_URI, or the local FerretDB: one already answering, or one we start."""
    if os.environ.get("MONGO_URI"):
        return os.environ["MONGO_URI"]
    uri = f"mongodb://{LOCAL_LISTEN}/"
    if localdb.answers_ping(uri):
        print(f"using the MongoDB-compatible server that answers at {uri}")
        return uri
    log = open(log_folder / "ferretdb.log", "a")  # noqa: SIM115 (open for as long as the server runs)
    process, uri = localdb.launch(log_folder / "ferretdb", listen=LOCAL_LISTEN, log=log, tied=True)
    launcher.children.append(("FerretDB", process))
    print(f"FerretDB (SQLite backend) answers at {uri}; data in var/ferretdb")
    return uri


def wait_for_page(url, launcher, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not launcher.dead():
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2):
                return True
        except OSError as error:
            if getattr(error, "code", None) == 503:  # up, but the database is not (yet)
                return True
            time.sleep(0.2)
    return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="crawl a simulated feed into sofeed_demo")
    options = parser.parse_args(argv)
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    host = os.environ.get("SOFEED_HOST", "127.0.0.1")
    port = os.environ.get("SOFEED_PORT", "8000")
    url = f"http://{host}:{port}/"

    launcher = Launcher()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    try:
        env = {**os.environ, "MONGO_URI": database(launcher, var), "PYTHONUNBUFFERED": "1"}
        scheduler = [sys.executable, "scheduler.py"]
        if options.demo:
            env.setdefault("MONGO_DATABASE", "sofeed_demo")
            feedsim = launcher.start(
                "the feed simulator",
                [sys.executable, "tools/sim/feed_server.py", "--port", "0", "--every", "4"],
                stdout=subprocess.PIPE,
                text=True,
            )
            feed_url = feedsim.stdout.readline().strip()
            print(f"the feed simulator publishes a question every 4 s at {feed_url}")
            apisim = launcher.start(
                "the API simulator",
                [
                    sys.executable,
                    "tools/sim/stackexchange.py",
                    "--port",
                    "0",
                    "--every",
                    "6",
                    "--mirror",
                    feed_url,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            api_url = apisim.stdout.readline().strip()
            print(f"the API simulator lists the feed's questions and its own, one every 6 s, at {api_url}")
            scheduler += ["--interval", "5", "--feed-url", feed_url, "--feed-url", api_url]
        launcher.start("the scheduler", scheduler, env=env)
        launcher.start(
            "the web app",
            [str(VENV_BIN / "gunicorn"), "-c", "webapp/gunicorn_conf.py", "webapp:create_app()"],
            env=env,
        )
        if wait_for_page(url, launcher):
            print(f"\n  sofeed is up: {url}   (Ctrl-C stops it)\n", flush=True)
        while not stopping and not launcher.dead():
            time.sleep(0.2)
    finally:
        dead = launcher.dead()
        launcher.stop_all()
    for name, status in dead:
        print(f"{name} exited with status {status}; stopped the rest", file=sys.stderr)
    return 1 if dead and not stopping else 0


if __name__ == "__main__":
    sys.exit(main())
