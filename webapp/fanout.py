"""What the process's /events streams are told, built once and shared by all of them.

A stream waits on the current Edition: the snapshot RecentQuestions serves
now (or why it serves none) and an Event that is set when a newer edition
replaces it. A new edition is published only when what the snapshot hands
out changed, or the database went away or came back; a refresh that found
nothing new wakes no stream. While streams are open, one loop per process
(a thread, a greenlet under gevent) starts each refresh when it is due and
publishes what it brought; a refresh a request made is published as it ends.

A woken stream asks its edition for the event after its cursor through its
filter. The bytes are built once per (cursor, filter) and edition, and
every stream at that cursor with that filter writes the same bytes: a
thousand pages that are up to date cost one json.dumps, not a thousand.
"""

import json
import threading
from dataclasses import dataclass, field

from webapp.recent import StoreUnavailable

# The loop's shortest pause: REFRESH_SECONDS=0 (the tests' "refresh on every request") must not spin.
SHORTEST_PAUSE = 0.02


def event(name, data, event_id=None):
    """One Server-Sent Event, as bytes."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {name}", "data: " + json.dumps(data, separators=(",", ":"))]
    return ("\n".join(lines) + "\n\n").encode()


AVAILABLE = event("available", {})


@dataclass(eq=False)
class Edition:
    """What every stream is told until the next edition: a snapshot, or the reason there is none."""

    snapshot: object = None  # a recent.Snapshot, None while the database is unavailable
    failure: str | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    _encoded: dict = field(default_factory=dict, repr=False)  # (cursor, filter) -> (bytes or None, cursor)

    def questions_event(self, cursor, wanted):
        """(the questions event for a stream at cursor with filter wanted, or None; its next cursor).

        The cursor moves past the questions the filter drops too, so a
        resumed stream does not look at them again.
        """
        key = (cursor, wanted)
        found = self._encoded.get(key)
        if found is None:
            questions = self.snapshot.questions_after(cursor) if self.snapshot is not None else []
            after = questions[0]["fetched"] if questions else cursor
            chosen = [question for question in questions if wanted.matches(question)]
            data = event("questions", chosen, event_id=repr(after)) if chosen else None
            found = self._encoded[key] = (data, after)
        return found

    def unavailable_event(self):
        found = self._encoded.get("unavailable")
        if found is None:
            found = self._encoded["unavailable"] = event("unavailable", {"error": self.failure})
        return found

    def tells_the_same_as(self, snapshot, failure):
        """Whether a stream would learn nothing new from (snapshot, failure) after this edition."""
        if (self.snapshot is None) != (snapshot is None):
            return False
        return snapshot is None or self.snapshot.handed_out() == snapshot.handed_out()


class Fanout:
    """The editions of one RecentQuestions, and the loop that keeps them current while streams are open."""

    def __init__(self, recent):
        self.recent = recent
        self.stopping = False
        self._lock = threading.Lock()
        self._edition = None
        self._listeners = 0
        self._looping = False

    def open(self):
        """A stream starts: count it, refresh if due, and return the edition it begins with. Then close()."""
        with self._lock:
            self._listeners += 1
            start, self._looping = not self._looping, True
        if start:
            threading.Thread(target=self._loop, name="sofeed-fanout", daemon=True).start()
        self.recent.ready()
        return self.publish()

    def close(self):
        """A stream ended."""
        with self._lock:
            self._listeners -= 1

    @property
    def listeners(self):
        return self._listeners

    def current(self):
        return self._edition

    def stop(self):
        """End every stream now: they see stopping as they wake, and no edition follows this one."""
        with self._lock:
            self.stopping = True
            edition = self._edition
        if edition is not None:
            edition.ended.set()

    def publish(self):
        """The current edition, replaced first if the cache now tells streams something new."""
        with self._lock:
            edition = self._edition
            if self.stopping:
                return edition
            try:
                snapshot, failure = self.recent.current(), None
            except StoreUnavailable as error:
                snapshot, failure = None, str(error)
            if edition is not None and edition.tells_the_same_as(snapshot, failure):
                return edition
            self._edition = new = Edition(snapshot, failure)
        if edition is not None:
            edition.ended.set()
        return new

    def _loop(self):
        """While streams are open: start each refresh when due, and publish what each refresh brought."""
        while True:
            with self._lock:
                if self._listeners <= 0 or self.stopping:
                    self._looping = False
                    return
            refreshed = self.recent.next_refresh
            # Not waited for: a stale snapshot must expire on time during a slow refresh.
            self.recent.refresh_if_due(wait=False)
            self.publish()
            refreshed.wait(max(SHORTEST_PAUSE, self.recent.refresh_seconds))
