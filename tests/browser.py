"""Helpers for the end-to-end tests: the system as real processes, and headless Chromium.

Each part runs as it does in production: the feed simulator (tools/feedsim.py),
the scheduler (scheduler.py) crawling it, and the web app under gunicorn with
webapp/gunicorn_conf.py. Chromium is Debian's, driven by Playwright.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from sofeed.store import question_key
from tests.helpers import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Headless Chromium keeps every tab visible, even minimised or behind another
# one, so the tests hide a page by overriding document.hidden and
# visibilityState, and fire visibilitychange as a browser does.
VISIBILITY_SWITCH = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true,
    get: () => (hidden ? "hidden" : "visible"),
  });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


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


def http(url, data=None, timeout=10):
    """(status, parsed JSON or text) of a GET, or of a POST when data is given."""
    headers = {"Content-Type": "application/json"} if data is not None else {}
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text, kind = (
                response.status,
                response.read().decode(),
                response.headers.get_content_type(),
            )
    except urllib.error.HTTPError as error:
        with error:
            status, text, kind = error.code, error.read().decode(), error.headers.get_content_type()
    return status, json.loads(text) if kind == "application/json" else text


def stop(process, timeout=10):
    """Stop a process this module started: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class FeedSimulator:
    """tools/feedsim.py as a process: a Stack Overflow feed that grows by itself."""

    def __init__(self, every, seed=11):
        self.process = subprocess.Popen(
            [sys.executable, "tools/feedsim.py", "--port", "0", "--every", str(every), "--seed", str(seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.feed_url = self.process.stdout.readline().strip()
        self.process.stdout.close()
        if not self.feed_url.startswith("http://"):
            stop(self.process)
            raise RuntimeError("tools/feedsim.py did not print its feed URL")

    def publish(self, **fields):
        """Publish a question now; returns its _id in the store."""
        status, answer = http(self.feed_url.replace("/feeds", "/publish"), data=fields)
        assert status == 201, answer
        return question_key(answer["entry_id"])

    def stop(self):
        stop(self.process)


def start_scheduler(feed_url, mongo_uri, database, log):
    """scheduler.py crawling feed_url every second, as `make demo` runs it."""
    environment = dict(os.environ, MONGO_URI=mongo_uri, MONGO_DATABASE=database)
    return subprocess.Popen(
        [sys.executable, "scheduler.py", "--interval", "1", "--feed-url", feed_url],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


class WebApp:
    """The web app under gunicorn, with the production config, on a free port.

    gunicorn cannot bind port 0, so the test binds the socket and hands it
    over as fd://N: no other process can take the port in between.
    """

    def __init__(self, mongo_uri, database, log, poll_seconds=0.5):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.set_inheritable(True)
        host, port = listener.getsockname()
        self.url = f"http://{host}:{port}"
        environment = dict(
            os.environ, MONGO_URI=mongo_uri, MONGO_DATABASE=database, SOFEED_POLL_SECONDS=str(poll_seconds)
        )
        command = [sys.executable, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py"]
        command += ["--bind", f"fd://{listener.fileno()}"]
        with listener:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()],
            )
        # The socket already listens: this waits for a worker to answer.
        status, _ = http(self.url + "/static/style.css", timeout=30)
        if status != 200:
            self.stop()
            raise RuntimeError(f"gunicorn answered {status} for /static/style.css")

    def stop(self):
        stop(self.process)
