"""The system under fault: started exactly as `taskmesh up` starts it, plus the levers to break it.

Every process this module stops or restarts was started by this Python process (through
`run_system`); they are found by PID from its own records, never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs; the taskmesh CLI depends on it
from taskmesh.backing import (
    UNPRIVILEGED_USER,
    backing_source,
    find_postgres,
    find_redis,
    run_postgres,
    run_redis,
)
from taskmesh.printer import LogPrinter
from taskmesh.processes import spawn, wait_until
from taskmesh.system import RunningProcess, System, run_system

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "reliability suite password 42"


@dataclass(frozen=True)
class Recipe:
    """What it takes to start a process again: its argv, environment and directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: str

    @classmethod
    def of(cls, pid: int) -> Recipe:
        """Read the recipe of live process `pid` from /proc."""
        process = psutil.Process(pid)
        return cls(process.cmdline(), process.environ(), process.cwd())


@dataclass
class Server:
    """A backing server (PostgreSQL or Redis) this suite can stop and start again.

    Restarts go through `taskmesh.backing`'s own `run_postgres`/`run_redis` with the original
    port and data directory, so the server comes back exactly as `taskmesh up` runs it.
    """

    name: str
    port: int
    again: Callable[[], AbstractContextManager[str]]
    stack: contextlib.ExitStack

    @property
    def pid(self) -> int:
        """The server process listening on its port (one of this process's children)."""
        pid = _listener(self.port)
        if pid is None:
            raise ProcessLookupError(f"{self.name} is not running")
        return pid

    def alive(self) -> bool:
        """Whether a child of ours listens on the server's port."""
        return _listener(self.port) is not None

    def start(self) -> None:
        """Start the server again and wait until it answers."""
        self.stack.enter_context(self.again())


@dataclass
class Harness:
    """A running Taskmesh (gateway, two tasks replicas) and the handles to hurt it."""

    system: System
    work_dir: Path
    log_path: Path
    recipes: dict[str, Recipe] = field(default_factory=dict)
    postgres: Server | None = None
    redis: Server | None = None
    # Children get a parent-death signal when the *thread* that spawned them ends, so every
    # restart runs on this one thread, which lives as long as the system does.
    spawner: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="reliability-spawner")
    )

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking lever (restart, stop, start) on the spawner thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.spawner, functools.partial(function, *args))

    @property
    def url(self) -> str:
        assert self.system.gateway_url is not None
        return self.system.gateway_url

    def process(self, name: str) -> RunningProcess:
        """The running process called `name` (e.g. `tasks.1`)."""
        return next(p for p in self.system.processes if p.name == name)

    def replicas(self, process: str = "tasks") -> list[RunningProcess]:
        """Every replica of `process`, in start order."""
        return [p for p in self.system.processes if p.spec.name == process]

    def restart(self, name: str, sig: signal.Signals, *, timeout: float = 60) -> float:
        """Stop process `name` with `sig`, start it again with the same argv/env, wait until ready.

        The new Popen replaces the old one in the system's record, so `run_system` stops it on
        exit. Returns how long the process was unavailable (seconds).
        """
        running = self.process(name)
        recipe = self.recipes[name]
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            running.process.send_signal(sig)
        try:
            running.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()
        with (running.log_file or self.work_dir / f"{name}.restarts.log").open("ab") as output:
            running.process = spawn(
                recipe.argv, env=recipe.env, cwd=Path(recipe.cwd), output=output
            )
        ready = f"{running.url}{running.spec.ready}" if running.spec.ready else None
        if ready and not wait_until(lambda: _answers(ready), timeout=timeout, interval=0.05):
            raise RuntimeError(f"{name} did not become ready after a restart")
        return time.monotonic() - began

    def database_url(self, name: str) -> str:
        """Plain URL of one service database."""
        return self.system.backing.database_url(name)

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each service process and its children."""
        sizes = {}
        for running in self.system.processes:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(running.process.pid)
                tree = [root, *root.children(recursive=True)]
                sizes[running.name] = sum(p.memory_info().rss for p in tree)
        return sizes


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _listener(port: int) -> int | None:
    """The child process of ours listening on TCP `port`, if any."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            for connection in child.net_connections("tcp"):
                if connection.status == "LISTEN" and connection.laddr.port == port:
                    return int(child.pid)
    return None


def _backing_servers(
    system: System, data_dir: Path, durable: bool, stack: contextlib.ExitStack
) -> tuple[Server, Server]:
    """PostgreSQL and Redis as `start_backing` ran them, with a way to start each again."""
    source = backing_source()
    pg_port = urlsplit(system.backing.postgres_url).port
    redis_port = urlsplit(system.backing.redis_url).port
    assert pg_port is not None
    assert redis_port is not None
    binaries = find_postgres(source)
    redis_server, _ = find_redis(source)
    postgres = Server(
        "postgres",
        pg_port,
        lambda: run_postgres(binaries, data_dir / "postgres", durable=durable, port=pg_port),
        stack,
    )
    redis = Server(
        "redis",
        redis_port,
        lambda: run_redis(redis_server, data_dir / "redis", durable=durable, port=redis_port),
        stack,
    )
    return postgres, redis


@contextlib.contextmanager
def start(work_dir: Path | None = None, *, durable: bool = True) -> Iterator[Harness]:
    """Start Taskmesh as `taskmesh up` does (free ports, 2 tasks replicas, nginx) in a temp dir."""
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reliability-")))
        work_dir.mkdir(parents=True, exist_ok=True)
        log_path = work_dir / "system.log"
        stream = stack.enter_context(log_path.open("w", encoding="utf-8"))
        # Entered before run_system: restarted backing servers stop after the services do.
        spawner = stack.enter_context(contextlib.ExitStack())
        restarted = stack.enter_context(contextlib.ExitStack())
        system = stack.enter_context(
            run_system(
                work_dir / "data",
                root=ROOT,
                ports="free",
                replicas={"tasks": 2},
                gateway=True,
                fresh=True,
                printer=LogPrinter(stream, colour=False),
                durable=durable,
                # Straight to files: log pumps in this process would take the GIL from the load
                # generator hundreds of times a second and their waits would read as latency.
                log_dir=work_dir / "logs",
            )
        )
        harness = Harness(system, work_dir, log_path)
        spawner.callback(harness.spawner.shutdown)
        for running in system.processes:
            harness.recipes[running.name] = Recipe.of(running.process.pid)
        harness.postgres, harness.redis = _backing_servers(
            system, work_dir / "data", durable, restarted
        )
        yield harness


def stop_postgres_immediately(harness: Harness) -> None:
    """`pg_ctl stop -m immediate` as the server's own (unprivileged) user: a crash."""
    server = harness.postgres
    assert server is not None
    pgdata = harness.work_dir / "data" / "postgres"
    command = ["pg_ctl", "stop", "-D", str(pgdata), "-m", "immediate", "-w", "-t", "30"]
    if os.geteuid() == 0:  # the server runs as the unprivileged user, as backing.py starts it
        command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
    subprocess.run(command, check=True, capture_output=True, cwd="/")
    if not wait_until(lambda: not server.alive(), timeout=10):
        raise RuntimeError("PostgreSQL still runs after pg_ctl stop -m immediate")


def start_postgres(harness: Harness) -> None:
    """Start PostgreSQL again (crash recovery runs) and wait until it answers."""
    server = harness.postgres
    assert server is not None
    server.start()


def stop_redis(harness: Harness) -> None:
    """Stop Redis cleanly (SIGTERM: it saves its data set, as a maintenance stop would)."""
    server = harness.redis
    assert server is not None
    os.kill(server.pid, signal.SIGTERM)
    if not wait_until(lambda: not server.alive(), timeout=30):
        raise RuntimeError("Redis still runs after SIGTERM")


def start_redis(harness: Harness) -> None:
    """Start Redis again with its first command (same port, same data dir)."""
    server = harness.redis
    assert server is not None
    server.start()


def unique(prefix: str) -> str:
    """A short unique name for this run's data."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
