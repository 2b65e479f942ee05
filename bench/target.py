"""The system under test: started here (free ports, fresh data) or a running one given by URLs."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from taskmesh import gateway
from taskmesh.manifest import discover_services
from taskmesh.printer import LogPrinter
from taskmesh.processes import free_port, stop, wait_until
from taskmesh.system import run_system

from bench import procs

ROOT = Path(__file__).resolve().parents[1]
# The gateway's production limits would answer most of a load test with 429; raise them for it.
BENCH_LIMITS = gateway.Limits(
    api_rate=1_000_000,
    api_burst=1_000_000,
    web_rate=1_000_000,
    web_burst=1_000_000,
    credential_rate=1_000_000,
    credential_burst=1_000_000,
    connections_per_client=60_000,
)


@dataclass
class Target:
    """Where the running system is and which processes serve each part of it."""

    urls: dict[str, str]  # auth, tasks, web, activity (direct) and gateway
    postgres_url: str
    pids: dict[str, set[int]] = field(default_factory=dict)  # root pids per process name

    def database_url(self, name: str) -> str:
        """URL of database `name` on the system's PostgreSQL server."""
        parts = urlsplit(self.postgres_url)
        return parts._replace(path=f"/{name}").geturl()

    def service_pids(self, name: str) -> set[int]:
        """Every live process of service `name` (its roots and their children)."""
        roots = self.pids.get(name)
        if not roots:
            port = urlsplit(self.urls[name]).port
            roots = procs.listeners(port) if port else set()
        return procs.tree(roots)

    def postgres_pids(self) -> set[int]:
        """The PostgreSQL server and its backends."""
        return postgres_pids(self.postgres_url)


def postgres_pids(url: str) -> set[int]:
    """The PostgreSQL server listening at `url` and its backends."""
    port = urlsplit(url).port
    return procs.tree(procs.listeners(port) if port else set())


def tasks_workers() -> int:
    """The tasks service's worker count as its manifest runs it (so baselines use the same)."""
    for service in discover_services(ROOT):
        for spec in service.processes:
            if spec.name == "tasks" and "--workers" in spec.command:
                return int(spec.command[spec.command.index("--workers") + 1])
    return 1


@contextlib.contextmanager
def run_bench_gateway(urls: dict[str, str], directory: Path) -> Iterator[tuple[str, int]]:
    """The project's gateway configuration with load-test rate limits, in front of `urls`."""
    port = free_port()
    upstreams = {name: [urlsplit(urls[name]).netloc] for name in gateway.SERVICES}
    command = gateway.prepare(
        directory, upstreams=upstreams, listen=f"127.0.0.1:{port}", limits=BENCH_LIMITS
    )
    with (directory / "gateway.err").open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        ok = wait_until(lambda: _answers(f"{url}/healthz"), timeout=20)
        if not ok:
            raise RuntimeError(f"bench gateway did not start: see {directory / 'gateway.err'}")
        yield url, process.pid
    finally:
        stop(process, sig=signal.SIGQUIT)  # graceful


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def start_system(log_path: Path, *, durable: bool = True) -> Iterator[Target]:
    """Start the whole system on free ports in a fresh data dir, plus the bench gateway."""
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-system-")))
        log = stack.enter_context(log_path.open("a"))
        system = stack.enter_context(
            run_system(
                data_dir / "data",
                root=ROOT,
                ports="free",
                gateway=False,
                fresh=True,
                printer=LogPrinter(log, colour=False),
                durable=durable,
                # Straight to files: pumping every access log line through this process would
                # spend the measured machine's CPU on the harness.
                log_dir=log_path.parent / "services",
            )
        )
        urls = dict(system.urls)
        pids: dict[str, set[int]] = {}
        for running in system.processes:
            pids.setdefault(running.name, set()).add(running.process.pid)
        gateway_dir = data_dir / "bench-gateway"
        gateway_dir.mkdir()
        urls["gateway"], gateway_pid = stack.enter_context(run_bench_gateway(urls, gateway_dir))
        pids["gateway"] = {gateway_pid}
        yield Target(urls=urls, postgres_url=system.backing.postgres_url, pids=pids)


def attach(urls: dict[str, str], postgres_url: str) -> Target:
    """A running system given its URLs (processes are found by their listening ports)."""
    return Target(urls=urls, postgres_url=postgres_url)
