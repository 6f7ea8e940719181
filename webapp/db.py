"""The web app's database handle: one Store, one RecentQuestions on it, and one
Fanout of that to the /events streams, per process.

They are built on first use, not in create_app: gunicorn forks its workers
after loading the app, and a MongoClient (or the fanout's thread) must not
cross a fork. They are closed when the process exits. Views call
get_store(), get_recent() and get_fanout() and never build a client
themselves.
"""

import atexit
import threading

from flask import current_app

from sofeed.store import Store
from webapp.fanout import Fanout
from webapp.recent import RecentQuestions

EXTENSION = "sofeed.db"

_open_handles = set()  # closed at exit, whatever the app did


class Handle:
    """The Store, the RecentQuestions and the Fanout of one app, built lazily and thread-safely."""

    def __init__(self, config):
        self.config = config
        self._lock = threading.Lock()
        self._store = None
        self._recent = None
        self._fanout = None

    @property
    def store(self):
        if self._store is None:
            with self._lock:
                if self._store is None:
                    config = self.config
                    # Each try of a call gives up within MONGO_TIMEOUT_MS, stuck server
                    # included; /healthz and /metrics bound a call's retries with
                    # Store.within, and no request waits for a refresh past 1.5 s.
                    timeout = int(config["MONGO_TIMEOUT_MS"])
                    self._store = Store.connect(
                        config["MONGO_URI"], config["MONGO_DATABASE"], timeout, socket_timeout_ms=timeout
                    )
                    _open_handles.add(self)
        return self._store

    @property
    def recent(self):
        if self._recent is None:
            from webapp.metrics import OBSERVER  # metrics reads the store through this module

            store = self.store
            with self._lock:
                if self._recent is None:
                    self._recent = RecentQuestions(
                        store,
                        refresh_seconds=float(self.config["REFRESH_SECONDS"]),
                        status_seconds=float(self.config["STATUS_SECONDS"]),
                        observer=OBSERVER,
                    )
        return self._recent

    @property
    def fanout(self):
        if self._fanout is None:
            recent = self.recent
            with self._lock:
                if self._fanout is None:
                    self._fanout = Fanout(recent)
        return self._fanout

    def close(self):
        with self._lock:
            if self._fanout is not None:
                self._fanout.stop()
            if self._store is not None:
                self._store.close()
            self._store = self._recent = self._fanout = None
            _open_handles.discard(self)


def init_app(app):
    app.extensions[EXTENSION] = Handle(app.config)


def get_store():
    """The process's Store for the current app."""
    return current_app.extensions[EXTENSION].store


def get_recent():
    """The process's RecentQuestions for the current app."""
    return current_app.extensions[EXTENSION].recent


def get_fanout():
    """The process's Fanout for the current app's /events streams."""
    return current_app.extensions[EXTENSION].fanout


def warm_up(app):
    """Start reading the recent questions now, in the background: a worker just started
    then answers its first pages without waiting for them. Any other app is left alone."""
    handle = getattr(app, "extensions", {}).get(EXTENSION)
    if handle is not None:
        handle.recent.refresh_if_due(wait=False)


def close(app):
    """Close the app's database client (tests do; a process exit does it anyway)."""
    app.extensions[EXTENSION].close()


@atexit.register
def _close_all():
    for handle in list(_open_handles):
        handle.close()
