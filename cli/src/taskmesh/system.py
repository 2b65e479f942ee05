"""Run the whole system: backing servers, migrations, every service process and the gateway.

`taskmesh up`, the end-to-end tests and the browser tests all start Taskmesh through
:func:`run_system`, so they exercise exactly the same wiring.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from taskmesh.backing import Backing, Source, start_backing
from taskmesh.manifest import Context, ProcessSpec, Secrets, Service, discover_services, render
from taskmesh.manifest import render_env as render_service_env
from taskmesh.printer import LogPrinter as LogPrinter  # re-exported: tests build one for run_system
from taskmesh.processes import free_port, port_in_use, spawn, stop

MARKER = ".taskmesh-data"
STATE_FILE = "running.json"
GATEWAY_PORT = 8000


class StartupError(RuntimeError):
    """The system could not start; the message is one line naming the culprit."""


def workspace_root() -> Path:
    """The workspace root: the nearest parent of the current directory with a ``services`` dir."""
    for directory in [Path.cwd(), *Path.cwd().parents]:
        if (directory / "services").is_dir() and (directory / "pyproject.toml").is_file():
            return directory
    return Path(__file__).resolve().parents[3]


@dataclass
class RunningProcess:
    """A started process, its address and the last lines it printed."""

    name: str
    service: Service
    spec: ProcessSpec
    port: int | None
    process: subprocess.Popen[bytes]
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    pump: threading.Thread | None = None
    log_file: Path | None = None

    @property
    def url(self) -> str | None:
        """Base URL when the process serves HTTP."""
        return f"http://127.0.0.1:{self.port}" if self.port else None

    def last_line(self) -> str:
        """The last non-empty line of output, to explain a failure."""
        lines = list(self.tail)
        if self.log_file is not None and self.log_file.exists():
            with self.log_file.open("rb") as stream:
                stream.seek(max(0, stream.seek(0, os.SEEK_END) - 4096))
                lines = stream.read().decode(errors="replace").splitlines()
        return next((line for line in reversed(lines) if line.strip()), "no output")


@dataclass
class System:
    """A running Taskmesh: where everything is."""

    data_dir: Path
    backing: Backing
    urls: dict[str, str]
    public_url: str
    gateway_url: str | None
    processes: list[RunningProcess]

    def exited(self) -> RunningProcess | None:
        """The first process that has stopped on its own, if any."""
        return next((p for p in self.processes if p.process.poll() is not None), None)


@dataclass(frozen=True)
class _Planned:
    name: str
    service: Service
    spec: ProcessSpec
    port: int | None


def default_data_dir() -> Path:
    """Where `taskmesh up` keeps its data unless told otherwise."""
    import platformdirs

    return platformdirs.user_data_path("taskmesh")


def prepare_data_dir(data_dir: Path, *, fresh: bool) -> None:
    """Create the data directory; with `fresh`, empty it first (only if it is ours)."""
    if fresh and data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise StartupError(f"refusing to empty {data_dir}: it is not a Taskmesh data directory")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).touch()


def _plan(
    services: list[Service], *, ports: Literal["manifest", "free"], replicas: Mapping[str, int]
) -> list[_Planned]:
    planned = []
    for service in services:
        for spec in service.processes:
            count = max(1, replicas.get(spec.name, 1))
            for index in range(count):
                name = spec.name if count == 1 else f"{spec.name}.{index + 1}"
                port = None
                if spec.port is not None:
                    port = spec.port if ports == "manifest" and index == 0 else free_port()
                planned.append(_Planned(name, service, spec, port))
    return planned


@contextlib.contextmanager
def run_system(
    data_dir: Path,
    *,
    root: Path | None = None,
    ports: Literal["manifest", "free"] = "manifest",
    replicas: Mapping[str, int] | None = None,
    gateway: bool | None = None,
    gateway_port: int | None = None,
    fresh: bool = False,
    printer: LogPrinter | None = None,
    ready_timeout: float = 60.0,
    durable: bool = True,
    source: Source | None = None,
    log_dir: Path | None = None,
) -> Iterator[System]:
    """Start everything, yield a :class:`System`, and stop it all in reverse order on exit.

    `ports="free"` picks unused ports (tests); `replicas` maps a process name to a count;
    `gateway=None` runs nginx in front when it is installed, `True` requires it, `False` skips it.
    `log_dir` sends each process's output straight to `<log_dir>/<name>.log` instead of through
    `printer`: a load generator in this process then shares its interpreter with no log pumps.
    """
    printer = printer or LogPrinter()
    root = root or workspace_root()
    services = discover_services(root)
    planned = _plan(services, ports=ports, replicas=replicas or {})
    nginx = _find_gateway(gateway, planned, printer)
    if nginx is not None and gateway_port is None:
        gateway_port = GATEWAY_PORT if ports == "manifest" else free_port()
    _check_ports(planned, gateway_port if nginx else None)
    prepare_data_dir(data_dir, fresh=fresh)

    urls: dict[str, str] = {}
    for item in planned:
        if item.port is not None:
            urls.setdefault(item.spec.name, f"http://127.0.0.1:{item.port}")
    gateway_url = f"http://127.0.0.1:{gateway_port}" if nginx else None
    public_url = gateway_url or urls.get("web") or next(iter(urls.values()), "")

    with contextlib.ExitStack() as stack:
        printer.info(f"starting PostgreSQL and Redis (data in {data_dir})")
        backing = stack.enter_context(start_backing(data_dir, source=source, durable=durable))
        printer.info(f"PostgreSQL and Redis ready ({backing.origin})")
        databases = {
            service.database: backing.create_database(service.database, replace=False)
            for service in services
            if service.database
        }
        context = Context(
            urls=urls,
            secrets=Secrets(data_dir / "secrets.env"),
            databases=databases,
            redis_url=backing.redis_url_for(0),
            public_url=public_url,
            data_dir=data_dir,
        )
        migrate_all(services, context, printer)
        running: list[RunningProcess] = []
        for service in services:
            started = [
                _start(item, context, printer, stack, log_dir)
                for item in planned
                if item.service.name == service.name
            ]
            running += started
            for process in started:
                _wait_ready(process, timeout=ready_timeout)
                printer.info(
                    f"{process.name} ready" + (f" at {process.url}" if process.url else "")
                )
        if nginx is not None and gateway_port is not None:
            front = _start_gateway(nginx, data_dir, running, gateway_port, printer, stack, log_dir)
            _wait_ready(front, timeout=ready_timeout)
            running.append(front)
        _write_state(data_dir, backing, public_url, stack)
        try:
            yield System(data_dir, backing, urls, public_url, gateway_url, running)
        finally:
            printer.info("stopping")


def _write_state(
    data_dir: Path, backing: Backing, public_url: str, stack: contextlib.ExitStack
) -> None:
    """Tell one-off commands (create-admin, ...) where this run's servers are, while it runs."""
    state = data_dir / STATE_FILE
    payload = {
        "postgres_url": backing.postgres_url,
        "redis_url": backing.redis_url,
        "public_url": public_url,
    }
    state.write_text(json.dumps(payload))
    stack.callback(state.unlink, missing_ok=True)


def service_env(service: Service, context: Context, port: int | None = None) -> dict[str, str]:
    """The full environment a process of `service` runs with."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(render_service_env(context, service, port=port))
    return env


def migrate_all(services: list[Service], context: Context, printer: LogPrinter) -> None:
    """Run every service's migrations; they touch separate databases, so concurrently."""
    for service in services:
        (context.data_dir / "services" / service.name).mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = [pool.submit(migrate, service, context, printer) for service in services]
    for result in results:
        result.result()  # the first failure, in start order


def migrate(service: Service, context: Context, printer: LogPrinter) -> None:
    """Run the service's `migrate` command, if it has one; raise StartupError if it fails."""
    if not service.migrate:
        return
    command = [render(part, context, service) for part in service.migrate]
    printer.info(f"migrating {service.name}: {' '.join(command)}")
    result = subprocess.run(
        command,
        cwd=service.directory,
        env=service_env(service, context),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    if result.returncode != 0:
        for line in lines:
            printer.line(f"{service.name}-migrate", line)
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise StartupError(
            f"{service.name}: migration failed (exit {result.returncode}): {last.strip()}"
        )


def _find_gateway(wanted: bool | None, planned: list[_Planned], printer: LogPrinter) -> str | None:
    """nginx's path when the gateway should run: asked for, or (by default) possible."""
    if wanted is False:
        return None
    from taskmesh import gateway

    nginx = gateway.find_nginx()
    names = {item.spec.name for item in planned}
    missing = [name for name in gateway.SERVICES if name not in names]
    problem = (
        "nginx is not installed (not found on PATH)"
        if nginx is None
        else f"no process for {', '.join(missing)} in services/*"
        if missing
        else None
    )
    if problem is None:
        return nginx
    if wanted:
        raise StartupError(f"gateway: {problem}")
    printer.info(f"running without the gateway: {problem}")
    return None


def _check_ports(planned: list[_Planned], gateway_port: int | None) -> None:
    owners = [(item.name, item.port) for item in planned if item.port is not None]
    if gateway_port is not None:
        owners.append(("gateway", gateway_port))
    for name, port in owners:
        if port_in_use(port):
            raise StartupError(f"{name}: port {port} is already in use by another program")


def _start(
    item: _Planned,
    context: Context,
    printer: LogPrinter,
    stack: contextlib.ExitStack,
    log_dir: Path | None,
) -> RunningProcess:
    command = [render(part, context, item.service, port=item.port) for part in item.spec.command]
    env = service_env(item.service, context, item.port)
    try:
        process, log_file = _spawn_logged(
            item.name, command, env=env, cwd=item.service.directory, log_dir=log_dir
        )
    except OSError as error:
        raise StartupError(f"{item.name}: cannot start {command[0]!r}: {error.strerror}") from error
    running = RunningProcess(item.name, item.service, item.spec, item.port, process)
    _follow(running, printer, log_file)
    stack.callback(_stop, running, printer)
    return running


def _spawn_logged(
    name: str,
    command: list[str],
    *,
    cwd: Path,
    log_dir: Path | None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], Path | None]:
    """Start `command` with its output on a pipe, or appended to `<log_dir>/<name>.log`."""
    if log_dir is None:
        return spawn(command, env=env, cwd=cwd, output=subprocess.PIPE), None
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{name}.log"
    with log_file.open("ab") as output:
        return spawn(command, env=env, cwd=cwd, output=output), log_file


def _start_gateway(
    nginx: str,
    data_dir: Path,
    running: list[RunningProcess],
    port: int,
    printer: LogPrinter,
    stack: contextlib.ExitStack,
    log_dir: Path | None,
) -> RunningProcess:
    from taskmesh import gateway

    upstreams: dict[str, list[str]] = {}
    for upstream in running:
        if upstream.port is not None and upstream.spec.name in gateway.SERVICES:
            upstreams.setdefault(upstream.spec.name, []).append(f"127.0.0.1:{upstream.port}")
    try:
        command = gateway.prepare(
            data_dir / "gateway", upstreams=upstreams, listen=f"127.0.0.1:{port}", nginx=nginx
        )
    except (gateway.GatewayConfigError, ValueError) as error:
        raise StartupError(f"gateway: {error}") from error
    spec = ProcessSpec(name="gateway", command=tuple(command), port=port, ready="/healthz")
    service = Service("gateway", data_dir / "gateway", 1000, None, None, {}, (spec,))
    process, log_file = _spawn_logged("gateway", command, cwd=data_dir / "gateway", log_dir=log_dir)
    result = RunningProcess("gateway", service, spec, port, process)
    _follow(result, printer, log_file)
    stack.callback(_stop, result, printer, signal.SIGQUIT)
    return result


def _follow(running: RunningProcess, printer: LogPrinter, log_file: Path | None) -> None:
    if log_file is not None:
        running.log_file = log_file
        printer.info(f"{running.name} logs to {log_file}")
        return
    stream = running.process.stdout
    assert stream is not None

    def pump() -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            running.tail.append(line)
            printer.line(running.name, line)
        stream.close()

    running.pump = threading.Thread(target=pump, name=f"log-{running.name}", daemon=True)
    running.pump.start()


def _wait_ready(running: RunningProcess, *, timeout: float) -> None:
    """Block until the process answers its readiness path, or raise a one-line StartupError."""
    deadline = time.monotonic() + timeout
    ready = running.spec.ready
    probe = _http_probe(running.url + ready if ready and running.url else None)
    problem: str | None = "not started"
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise StartupError(
                f"{running.name}: exited with code {running.process.returncode} before it was "
                f"ready: {_last_line(running)}"
            )
        problem = probe()
        if problem is None:
            if not running.spec.ready:
                time.sleep(0.5)  # give a process without a probe a moment to fail fast
                if running.process.poll() is not None:
                    continue
            return
        time.sleep(0.2)
    raise StartupError(f"{running.name}: not ready after {timeout:.0f}s ({problem})")


def _last_line(running: RunningProcess) -> str:
    if running.pump is not None:
        running.pump.join(timeout=2)  # let the pump read what the process printed last
    return running.last_line().strip()


def _http_probe(url: str | None) -> Callable[[], str | None]:
    """A check returning None when ready, else what is wrong; without a URL, alive is ready."""

    def probe() -> str | None:
        if url is None:
            return None
        try:
            response = httpx.get(url, timeout=2)
        except httpx.HTTPError as error:
            return f"GET {url}: {type(error).__name__}"
        return None if response.status_code == 200 else f"GET {url}: {response.status_code}"

    return probe


def _stop(
    running: RunningProcess, printer: LogPrinter, sig: signal.Signals = signal.SIGTERM
) -> None:
    if running.process.poll() is None:
        printer.info(f"stopping {running.name}")
    stop(running.process, sig=sig, timeout=20)
    if running.pump is not None:
        running.pump.join(timeout=5)
