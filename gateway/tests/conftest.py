"""Real nginx in front of small stand-in upstreams, all on free loopback ports."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from taskmesh import gateway
from taskmesh.processes import free_port, port_in_use, stop, wait_until

STANDIN = Path(__file__).with_name("standin_upstream.py")


@dataclass
class Standin:
    """One stand-in upstream process answering as replica `name`."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Die abruptly, as a crashed replica does."""
        self.process.kill()
        self.process.wait()

    def restart(self, *, down: float) -> None:
        """Die, stay away for `down` seconds (connections are refused), then serve again."""
        self.kill()
        time.sleep(down)
        self.process = _spawn_standin(self.port, self.name)
        assert wait_until(lambda: port_in_use(self.port), timeout=10), f"{self.name} is not back"


@dataclass
class Gateway:
    """A running nginx rendered from the gateway template."""

    port: int
    process: subprocess.Popen[bytes]
    access_log: Path
    upstreams: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, source: str = "127.0.0.1", **kwargs: Any) -> httpx.Client:
        """A client connecting from loopback address `source` (its own rate-limit key)."""
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, transport=transport, timeout=10, **kwargs)

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON access-log lines written so far."""
        lines = self.access_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture(scope="session")
def nginx(require_program: Callable[..., str]) -> str:
    """The nginx executable (skip without it; fail under CI=true)."""
    return require_program("nginx", finder=gateway.find_nginx)


@pytest.fixture
def start_standin() -> Iterator[Callable[[str], Standin]]:
    """Start stand-in upstreams on free ports; all of them stop after the test."""
    started: list[Standin] = []

    def start(name: str) -> Standin:
        port = free_port()
        standin = Standin(name, port, _spawn_standin(port, name))
        started.append(standin)
        assert wait_until(lambda: port_in_use(port), timeout=10), f"stand-in {name} did not start"
        return standin

    yield start
    for standin in started:
        stop(standin.process, timeout=5)


@pytest.fixture
def standins(start_standin: Callable[[str], Standin]) -> dict[str, list[Standin]]:
    """One replica of web, auth and activity, two of tasks."""
    return {
        "web": [start_standin("web")],
        "auth": [start_standin("auth")],
        "tasks": [start_standin("tasks-a"), start_standin("tasks-b")],
        "activity": [start_standin("activity")],
    }


@pytest.fixture
def start_gateway(nginx: str, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start nginx with a freshly rendered configuration; it stops after the test."""
    started: list[Gateway] = []

    def start(
        upstreams: Mapping[str, Sequence[str]],
        limits: gateway.Limits | None = None,
        resolver: str | None = None,
        tls: gateway.Tls | None = None,
    ) -> Gateway:
        port = free_port()
        prefix = tmp_path / f"gateway-{port}"
        argv = gateway.prepare(
            prefix,
            upstreams=upstreams,
            listen=f"127.0.0.1:{port}",
            limits=limits or gateway.Limits(),
            resolver=resolver,
            tls=tls,
            nginx=nginx,
        )
        access_log = prefix / "access.log"
        with access_log.open("wb") as output:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output)
        running = Gateway(port, process, access_log, upstreams)
        started.append(running)
        assert wait_until(lambda: _healthy(running.url), timeout=10), "nginx did not start"
        return running

    yield start
    for running in started:
        stop(running.process, sig=signal.SIGTERM, timeout=5)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key for localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def standin_addresses(standins: dict[str, list[Standin]]) -> dict[str, list[str]]:
    """Upstream addresses of the stand-ins, per service, for `gateway.render`."""
    return {name: [s.address for s in replicas] for name, replicas in standins.items()}


@pytest.fixture
def running(
    start_gateway: Callable[..., Gateway], standin_addresses: dict[str, list[str]]
) -> Gateway:
    """The gateway with production limits in front of the stand-ins."""
    return start_gateway(standin_addresses)


def _spawn_standin(port: int, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(STANDIN), str(port), name], stdin=subprocess.DEVNULL
    )


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
