"""taskmesh_common.serving, run as the services run it: a real server process on a free port.

The process is ``python -m serving_main``, a program written as each service's ``__main__`` is.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PING = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"
# uvicorn re-raises the signal it handled once it has shut down cleanly.
STOPPED = (0, -signal.SIGTERM)

pytestmark = pytest.mark.timeout(60)


@dataclass
class Served:
    """A serving process and where it listens."""

    process: subprocess.Popen[bytes]
    port: int
    mark: Path
    connections: list[socket.socket] = field(default_factory=list)

    def connect(self) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.connections.append(connection)
        return connection

    def refuses_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False


@dataclass(frozen=True)
class Answer:
    """One HTTP response read off a socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        return dict(json.loads(self.body))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _read_answer(connection: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"connection closed before a full answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = connection.recv(65536)
        assert chunk, "connection closed in the middle of a body"
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body)


def _closed_by_server(connection: socket.socket) -> bool:
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True


def _wait_until_ready(served: Served, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert served.process.poll() is None, "the server exited while starting"
        try:
            with socket.create_connection(("127.0.0.1", served.port), timeout=1) as probe:
                probe.sendall(PING.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
                if _read_answer(probe).status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the server did not come up")


@contextlib.contextmanager
def _serve(tmp_path: Path, *, drain_seconds: float, http: str = "httptools") -> Iterator[Served]:
    port = _free_port()
    mark = tmp_path / "lifespan-shutdown"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "TASKMESH_DRAIN_SECONDS": str(drain_seconds),
        "SERVING_TEST_MARK": str(mark),
        "SERVING_TEST_LOG": str(tmp_path / "server.log"),
    }
    command = [sys.executable, "-m", "serving_main", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--http", http]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    served = Served(process, port, mark)
    try:
        _wait_until_ready(served, time.monotonic() + 20)
        yield served
    finally:
        for connection in served.connections:
            connection.close()
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture
def slow_drain(tmp_path: Path) -> Iterator[Served]:
    with _serve(tmp_path, drain_seconds=30) as served:
        yield served


@pytest.fixture
def short_drain(tmp_path: Path) -> Iterator[Served]:
    with _serve(tmp_path, drain_seconds=2) as served:
        yield served


def _wait_for(check: object, timeout: float) -> bool:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_drain_serves_open_connections_with_close_refuses_new_ones_and_ends_when_idle(
    slow_drain: Served,
) -> None:
    pooled = slow_drain.connect()
    pooled.sendall(PING)
    before = _read_answer(pooled)
    assert before.status == 200
    assert before.headers.get("connection") != "close"  # a keep-alive connection, as nginx pools

    slow_drain.process.send_signal(signal.SIGTERM)
    assert _wait_for(slow_drain.refuses_connections, timeout=5)
    time.sleep(0.5)  # uvicorn alone closes idle connections at once; the drain keeps them

    pooled.sendall(PING)
    during = _read_answer(pooled)
    assert during.status == 200
    assert during.json() == {"ok": True}
    assert during.headers["connection"] == "close"
    assert _closed_by_server(pooled)

    # No connection left: the drain ends long before its 30 s, then uvicorn's shutdown runs.
    assert slow_drain.process.wait(timeout=5) in STOPPED
    assert slow_drain.mark.read_text(encoding="utf-8") == "shut down"


def test_drain_holds_an_idle_connection_for_the_drain_period_then_exits(
    short_drain: Served,
) -> None:
    idle = short_drain.connect()
    idle.sendall(PING)
    assert _read_answer(idle).status == 200

    signalled = time.monotonic()
    short_drain.process.send_signal(signal.SIGTERM)
    assert short_drain.process.wait(timeout=15) in STOPPED
    assert time.monotonic() - signalled >= 1.9  # kept for the whole 2 s drain, not closed at once
    assert _closed_by_server(idle)
    assert short_drain.mark.read_text(encoding="utf-8") == "shut down"
    # The process ends by its re-raised SIGTERM (no atexit hooks): buffered log lines were flushed.
    log = short_drain.mark.with_name("server.log").read_text(encoding="utf-8")
    assert "draining 1 connection(s) for at most 2 s" in log
    assert "Finished server process" in log


RAW_0XFF_IN_TARGET = b"GET /ping?q=\xff HTTP/1.1\r\nHost: test\r\n\r\n"
DEL_IN_HEADER_VALUE = b"GET /ping HTTP/1.1\r\nHost: test\r\nIdempotency-Key: key\x7f\r\n\r\n"
NOT_HTTP = b"NOT HTTP AT ALL\r\n\r\n"


@pytest.mark.parametrize(
    ("http", "request_bytes"),
    [
        ("httptools", RAW_0XFF_IN_TARGET),
        ("httptools", DEL_IN_HEADER_VALUE),
        ("httptools", NOT_HTTP),
        ("h11", NOT_HTTP),  # h11 lets the other two through to the app
    ],
    ids=["raw-0xff-in-target", "del-in-header-value", "not-http", "h11-not-http"],
)
def test_requests_the_parser_refuses_get_a_problem_400(
    tmp_path: Path, http: str, request_bytes: bytes
) -> None:
    with _serve(tmp_path, drain_seconds=0, http=http) as served:
        connection = served.connect()
        connection.sendall(request_bytes)
        answer = _read_answer(connection)
        assert answer.status == 400
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json() == {
            "type": "about:blank",
            "title": "Bad Request",
            "status": 400,
            "detail": "The request is not valid HTTP/1.1.",
        }
        assert answer.headers["connection"] == "close"
        assert _closed_by_server(connection)
