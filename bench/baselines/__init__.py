"""The four same-run baselines: nginx static, Starlette floor, peer-style ORM, origin Flask."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from taskmesh import gateway
from taskmesh.processes import free_port, spawn, stop, wait_until

from bench.baselines.schema import create_tables

ROOT = Path(__file__).resolve().parents[2]

_NGINX_CONF = """
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
user nobody nogroup;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        location / {{ default_type application/json; }}
    }}
}}
"""

STATIC_BODY = (
    '{"id": 1, "number": 1, "title": "task 1 bravo", "description": "about alpha and alpha", '
    '"priority": 2, "status": "doing", "due": null, "tags": [], '
    '"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "version": 1}'
)


@dataclass(frozen=True)
class Baseline:
    """A running baseline server."""

    name: str
    url: str
    pid: int


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    def answers() -> bool:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}: {tail}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_until(answers, timeout=timeout):
        raise RuntimeError(f"{url} did not answer in {timeout:.0f}s")


@contextlib.contextmanager
def run_nginx_static(workers: int, directory: Path) -> Iterator[Baseline]:
    """nginx serving a static JSON file: the ceiling."""
    port = free_port()
    (directory / "www").mkdir(parents=True, exist_ok=True)
    (directory / "www" / "task.json").write_text(STATIC_BODY)
    directory.chmod(0o755)
    conf = directory / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(workers=workers, dir=directory, port=port))
    nginx = gateway.find_nginx()
    if nginx is None:
        raise RuntimeError("nginx is not installed")
    command = [nginx, "-e", str(directory / "error.log"), "-c", str(conf), "-g", "daemon off;"]
    with (directory / "nginx.out").open("ab") as log:
        process = spawn(command, cwd=directory, output=log)
    try:
        _wait_http(f"http://127.0.0.1:{port}/task.json", process, directory / "error.log")
        yield Baseline("nginx-static", f"http://127.0.0.1:{port}", process.pid)
    finally:
        stop(process, sig=signal.SIGQUIT)  # graceful for nginx


@contextlib.contextmanager
def run_python_app(
    name: str, command: list[str], database_url: str, directory: Path
) -> Iterator[Baseline]:
    """A baseline Python app run from the repository root with BENCH_DATABASE_URL set."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in command]
    env = os.environ | {"BENCH_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    with (directory / f"{name}.log").open("ab") as log:
        process = spawn(argv, env=env, cwd=ROOT, output=log)
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", process, directory / f"{name}.log")
        yield Baseline(name, f"http://127.0.0.1:{port}", process.pid)
    finally:
        stop(process)


def uvicorn_command(app: str, workers: int) -> list[str]:
    """uvicorn (uvloop + httptools) serving factory `app` with `workers` processes."""
    return [
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1",
        "--port", "{port}", "--workers", str(workers), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def gunicorn_command(app: str, workers: int) -> list[str]:
    """gunicorn sync workers serving `app`."""
    return [
        sys.executable, "-m", "gunicorn", app, "--bind", "127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "sync", "--log-level", "warning",
    ]  # fmt: skip


@contextlib.contextmanager
def start_baselines(database_url: str, workers: int, rows: int) -> Iterator[dict[str, Baseline]]:
    """Seed the baseline tables and run all four baselines with `workers` workers each."""
    create_tables(database_url, rows)
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        directory.chmod(0o755)  # nginx workers run as nobody and must reach the static file
        apps = {
            "nginx-static": stack.enter_context(run_nginx_static(workers, directory / "nginx")),
            "floor": stack.enter_context(
                run_python_app(
                    "floor",
                    uvicorn_command("bench.baselines.floor:create_app", workers),
                    database_url,
                    directory,
                )
            ),
            "peer": stack.enter_context(
                run_python_app(
                    "peer",
                    uvicorn_command("bench.baselines.peer:create_app", workers),
                    database_url,
                    directory,
                )
            ),
            "origin": stack.enter_context(
                run_python_app(
                    "origin",
                    gunicorn_command("bench.baselines.origin:create_app()", workers),
                    database_url,
                    directory,
                )
            ),
        }
        yield apps
