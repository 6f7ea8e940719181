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
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import launcher, localdb  # noqa: E402 (needs the path above when run as a script)

VENV_BIN = Path(sys.executable).parent
LOCAL_LISTEN = localdb.DEFAULT_LISTEN
# gunicorn answers within seconds; a first start on a loaded machine may take longer.
PAGE_TIMEOUT = 60.0


def database(parts, log_folder):
    """MONGO_URI, or the local FerretDB: one already answering, or one we start."""
    if os.environ.get("MONGO_URI"):
        return os.environ["MONGO_URI"]
    uri = f"mongodb://{LOCAL_LISTEN}/"
    if localdb.answers_ping(uri):
        print(f"using the MongoDB-compatible server that answers at {uri}")
        return uri
    log = open(log_folder / "ferretdb.log", "a")  # noqa: SIM115 (open for as long as the server runs)
    process, uri = localdb.launch(log_folder / "ferretdb", listen=LOCAL_LISTEN, log=log, tied=True)
    parts.append(launcher.Part("FerretDB", process))
    print(f"FerretDB (SQLite backend) answers at {uri}; data in var/ferretdb")
    return uri


def page_answers(url):
    """A ready() check: the app answers /healthz, 503 included (up, but the database is not yet)."""

    def answers(_part):
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2):
                return True
        except urllib.error.HTTPError as error:
            return error.code == 503
        except OSError:
            return False

    return answers


def start_simulators(parts, env):
    """The demo's feed and API simulators; returns the feed URLs for the scheduler."""
    feed = launcher.start(
        "the feed simulator",
        [sys.executable, "tools/sim/feed_server.py", "--port", "0", "--every", "4"],
        first_line=True,
        env=env,
    )
    parts.append(feed)
    print(f"the feed simulator publishes a question every 4 s at {feed.first_line}")
    command = ["tools/sim/stackexchange.py", "--port", "0", "--every", "6", "--mirror", feed.first_line]
    api = launcher.start("the API simulator", [sys.executable, *command], first_line=True, env=env)
    parts.append(api)
    print(f"the API simulator lists the feed's questions and its own, one every 6 s, at {api.first_line}")
    return [feed.first_line, api.first_line]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="crawl a simulated feed into sofeed_demo")
    options = parser.parse_args(argv)
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    host = os.environ.get("SOFEED_HOST", "127.0.0.1")
    port = os.environ.get("SOFEED_PORT", "8000")
    url = f"http://{host}:{port}/"

    parts = []  # in start order; stopped last first
    stopping, failure = [], None
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    try:
        env = {**os.environ, "MONGO_URI": database(parts, var), "PYTHONUNBUFFERED": "1"}
        scheduler = [sys.executable, "scheduler.py"]
        if options.demo:
            env.setdefault("MONGO_DATABASE", "sofeed_demo")
            scheduler += ["--interval", "5"]
            for feed in start_simulators(parts, env):
                scheduler += ["--feed-url", feed]
        parts.append(launcher.start("the scheduler", scheduler, env=env))
        gunicorn = [str(VENV_BIN / "gunicorn"), "-c", "webapp/gunicorn_conf.py", "webapp:create_app()"]
        web = launcher.start("the web app", gunicorn, ready=page_answers(url), timeout=PAGE_TIMEOUT, env=env)
        parts.append(web)
        print(f"\n  sofeed is up: {url}   (Ctrl-C stops it)\n", flush=True)
        while not stopping and all(part.running for part in parts):
            time.sleep(0.2)
    except RuntimeError as error:  # a part that did not come up; launcher.start stopped it
        failure = error
    finally:
        dead = [part for part in parts if not part.running]
        for part in reversed(parts):
            part.stop()
    if failure is not None:
        print(f"{failure}; stopped the rest", file=sys.stderr)
    for part in dead:
        print(f"{part.name} exited with status {part.process.returncode}; stopped the rest", file=sys.stderr)
    return 1 if (failure or dead) and not stopping else 0


if __name__ == "__main__":
    sys.exit(main())
