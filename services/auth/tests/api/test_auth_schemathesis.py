"""Schemathesis (all phases, all checks) against a live auth service on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SERVICE_DIR = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_auth(auth_database: str, auth_redis_url: str, tmp_path: Path) -> Iterator[str]:
    """A uvicorn-served auth service (fast argon2, generous login budgets); yields its URL."""
    port = _free_port()
    env = {
        **os.environ,
        "TASKMESH_ENV": "test",
        "AUTH_DATABASE_URL": auth_database,
        "AUTH_REDIS_URL": auth_redis_url,
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_KIB": "64",
        "AUTH_LOGIN_ACCOUNT_LIMITS": "10000/minute",
        "AUTH_LOGIN_IP_LIMITS": "10000/minute",
        "AUTH_CLIENTS": '[{"id": "fuzz-client", "secret": "fuzz-client-secret-0123456789",'
        ' "audiences": {"taskmesh-tasks": ["tasks:read"]}}]',
    }
    log = (tmp_path / "auth.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "taskmesh_auth.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (tmp_path / "auth.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


@pytest.mark.slow
def test_schemathesis_all_phases_all_checks(live_auth: str, tmp_path: Path) -> None:
    email = f"fuzz-{time.time_ns()}@example.com"
    password = "fuzzing passphrase 2026"
    httpx.post(
        f"{live_auth}/v1/users",
        json={"email": email, "display_name": "Fuzz", "password": password},
        timeout=10,
    ).raise_for_status()
    login = httpx.post(
        f"{live_auth}/v1/sessions", json={"email": email, "password": password}, timeout=10
    )
    assert login.status_code == 200
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "auth_schemathesis_hooks",
        "PYTHONPATH": str(Path(__file__).parent),
        "AUTH_FUZZ_URL": live_auth,
        "AUTH_FUZZ_EMAIL": email,
        "AUTH_FUZZ_PASSWORD": password,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(SERVICE_DIR / "schemathesis.toml"),
            "run",
            f"{live_auth}/openapi.json",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            "all",
            "--max-examples",
            os.environ.get("AUTH_SCHEMATHESIS_EXAMPLES", "40"),
            "--seed",
            os.environ.get("AUTH_SCHEMATHESIS_SEED", "20261123"),
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
