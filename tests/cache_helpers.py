"""For the tests of the web app's cache: a real Store, on the test's real database, that
fails or stalls when the test says so, and a clock that moves only when the test says so."""

import threading

from pymongo.errors import AutoReconnect

from sofeed.store import Store


class FlakyStore(Store):
    """change_version (the first read of every refresh) fails the next `failing` times, as a
    lost connection makes it; or, while `stalling`, waits for `released`, as a starved process does;
    and while `lost`, the client knows no server, as when the database has stopped."""

    def __init__(self, client, database):
        super().__init__(client, database)
        self.failing = 0
        self.failures = 0
        self.stalling = False
        self.stalled = threading.Event()  # set once a call is waiting
        self.released = threading.Event()
        self.lost = False  # whether the client seems to have lost the server, as when it stops

    def knows_a_server(self):
        return not self.lost and super().knows_a_server()

    def change_version(self):
        if self.stalling:
            self.stalled.set()
            self.released.wait()
        if self.failing:
            self.failing -= 1
            self.failures += 1
            raise AutoReconnect("connection closed (injected by the test)")
        return super().change_version()


class Clock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now
