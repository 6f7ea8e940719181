"""webapp/worker.py under real gunicorn with webapp/gunicorn_conf.py."""

import contextlib
import json
import os
import select
import signal
import socket
import time
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.processes import WebApp, http, wait_until

GENEROUS = 30  # seconds: only ever a timeout, so that a broken server fails the test instead of hanging it


@pytest.fixture
def start_web(mongo_uri, database_name, tmp_path, monkeypatch):
    """Start gunicorn: start_web(worker_class, gunicorn_args="", **WebApp keywords); stopped at the end."""
    started = []

    def start(worker_class="gevent", gunicorn_args="", **keywords):
        monkeypatch.setenv("SOFEED_WORKER_CLASS", worker_class)
        # Command-line settings for gunicorn, over webapp/gunicorn_conf.py's.
        monkeypatch.setenv("GUNICORN_CMD_ARGS", gunicorn_args)
        with open(tmp_path / "gunicorn.log", "w") as log:
            web = WebApp(mongo_uri, database_name, log, **keywords)
        web.log_path = tmp_path / "gunicorn.log"
        started.append(web)
        return web

    yield start
    for web in started:
        web.stop()


def connect(web):
    address = urlsplit(web.url)
    return socket.create_connection((address.hostname, address.port), timeout=GENEROUS)


def open_stream(web):
    """(a socket on which an /events stream has begun, what it received so far)."""
    connection = connect(web)
    connection.sendall(b"GET /events HTTP/1.1\r\nHost: sofeed\r\n\r\n")
    received = connection.recv(65536)
    assert received.startswith(b"HTTP/1.1 200")
    return connection, received


def read_to_the_end(connection):
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


# gthread, the benchmarks' anchor, in the full tier only: the fast tier's budget is seconds.
@pytest.mark.parametrize("worker_class", ["gevent", pytest.param("gthread", marks=pytest.mark.check)])
def test_gunicorn_stops_at_once_with_streams_and_idle_keep_alive_connections_open(start_web, worker_class):
    web = start_web(worker_class)
    streams = [open_stream(web) for _ in range(3)]
    idle = HTTPConnection(urlsplit(web.url).netloc, timeout=GENEROUS)
    try:
        idle.request("GET", "/update")
        assert idle.getresponse().read().startswith(b"[")
        web.process.send_signal(signal.SIGTERM)
        endings = [(received + read_to_the_end(stream))[-7:] for stream, received in streams]
        assert idle.sock.recv(1) == b""  # closed by the server, not left to its keepalive
    finally:
        for connection in [*(stream for stream, _ in streams), idle]:
            connection.close()
    assert web.process.wait(timeout=GENEROUS) == 0
    # Each stream ended with its last chunk: ended by the worker, not killed after graceful_timeout.
    assert endings == [b"\r\n0\r\n\r\n"] * 3
    log = web.log_path.read_text()
    assert "graceful timeout" not in log
    assert "Traceback" not in log


@pytest.mark.check  # the full tier: seconds of trickling
def test_a_client_trickling_its_request_is_dropped_while_ordinary_requests_keep_working(start_web):
    # gevent bounds the read of one request by keepalive: 1 s here, so that the test is quick.
    web = start_web(gunicorn_args="--keep-alive 1")
    slow = connect(web)
    slow.sendall(b"GET /update HTTP/1.1\r\nHost: sofeed\r\nX-Slow: ")
    answers, dropped_by = [], None
    deadline = time.monotonic() + GENEROUS
    while dropped_by is None:
        assert time.monotonic() < deadline, "the trickling client was never dropped"
        try:
            slow.send(b"a")
            if select.select([slow], [], [], 0.1)[0]:
                assert slow.recv(65536) == b"", "the server answered a request it never got whole"
                dropped_by = "close"
        except (BrokenPipeError, ConnectionResetError):
            dropped_by = "reset"
        answers.append(http(web.url + "/update?timestamp=0", timeout=GENEROUS)[0])
    slow.close()
    assert len(answers) >= 2
    assert set(answers) == {200}


def refused(web, request_line):
    """(status line, headers, body) of gunicorn's answer to a request it refuses itself."""
    with connect(web) as connection:
        connection.sendall(request_line + b"\r\nHost: sofeed\r\n\r\n")
        head, _, body = read_to_the_end(connection).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return (
        status,
        {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)},
        body,
    )


def test_requests_gunicorn_refuses_itself_are_answered_in_json(start_web):
    web = start_web()
    too_long = refused(web, b"GET /update?timestamp=" + b"1" * 5000 + b" HTTP/1.1")
    not_http = refused(web, b"\x16\x03\x01 not http at all")
    for (status, headers, body), code in ((too_long, 414), (not_http, 400)):
        assert status.startswith(f"HTTP/1.1 {code} ")
        assert headers["content-type"] == "application/json"
        assert "script-src 'self'" in headers["content-security-policy"]
        assert json.loads(body)["error"].startswith(status.split(" ", 2)[2] + ": ")
    assert "too large" in json.loads(too_long[2])["error"]
    assert web.process.poll() is None


LISTEN = "0A"  # the TCP state as /proc/net/tcp writes it


def sockets(pid, port, peers=None):
    """How many TCP sockets on the local port the process holds: listening, or connected to one of peers."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if int(local.split(":")[1], 16) != port or inode not in inodes:
            continue
        if peers is None:
            count += state == LISTEN
        else:
            count += int(remote.split(":")[1], 16) in peers
    return count


@pytest.mark.check  # the full tier: a deployment property, and a port of its own
def test_when_gunicorn_binds_the_address_each_worker_takes_a_share_of_the_connections(start_web):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    web = start_web(port=port)
    children = Path(f"/proc/{web.process.pid}/task/{web.process.pid}/children")

    def listening_workers():
        workers = [int(pid) for pid in children.read_text().split()]
        return workers if len(workers) == 2 and all(sockets(pid, port) for pid in workers) else None

    # Each worker binds its own socket as it boots: both must listen before the connections come.
    workers = wait_until(listening_workers, GENEROUS, what="both workers listening")
    streams = [open_stream(web)[0] for _ in range(40)]
    try:
        peers = {stream.getsockname()[1] for stream in streams}
        held = [sockets(pid, port, peers) for pid in workers]
    finally:
        for stream in streams:
            stream.close()
    assert sum(held) == 40, held
    # The kernel hashes each connection to one worker's socket: all 40 on one has odds of 2 in 2^40.
    assert min(held) >= 1
