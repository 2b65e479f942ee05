"""The whole system started as `taskmesh up` starts it, nginx in front, for tests through it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from taskmesh import gateway
from taskmesh.system import LogPrinter, System, run_system

PASSWORD = "correct horse battery staple 42"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Account:
    """A registered user and its bearer token."""

    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class SystemLog:
    """Every line each process printed, as `taskmesh up` prints them (`name | line`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """A position to read from later: only lines printed after it."""
        return self.path.stat().st_size

    def entries(self, since: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """(process name, JSON object) for each JSON line printed after `since`."""
        with self.path.open("rb") as stream:
            stream.seek(since)
            text = stream.read().decode(errors="replace")
        entries = []
        for line in text.splitlines():
            name, separator, payload = line.partition(" | ")
            if separator and payload.startswith("{"):
                try:
                    entries.append((name.strip(), json.loads(payload)))
                except json.JSONDecodeError:
                    continue
        return entries


@dataclass
class Running:
    """A running Taskmesh behind nginx, and its combined log."""

    system: System
    log: SystemLog

    @property
    def url(self) -> str:
        assert self.system.gateway_url is not None
        return self.system.gateway_url

    def client(self, source: str = "127.0.0.1", **kwargs: Any) -> httpx.Client:
        """A client connecting from loopback address `source`: its own rate-limit key."""
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, transport=transport, timeout=15, **kwargs)

    def register(self, client: httpx.Client, name: str = "e2e") -> Account:
        """Sign up a fresh user through the gateway and sign in."""
        email = f"{name}-{uuid.uuid4().hex[:10]}@example.com"
        created = client.post(
            "/api/auth/v1/users",
            json={"email": email, "display_name": name, "password": PASSWORD},
        )
        assert created.status_code == 201, created.text
        session = client.post("/api/auth/v1/sessions", json={"email": email, "password": PASSWORD})
        assert session.status_code == 200, session.text
        return Account(email, session.json()["access_token"])

    def sign_in_web(self, client: httpx.Client, account: Account) -> httpx.Response:
        """Sign in through the web's form (with its CSRF token), as a browser does."""
        form = client.get("/signin")
        found = CSRF.search(form.text)
        assert found, "no csrf_token on the sign-in page"
        fields = {"email": account.email, "password": PASSWORD, "csrf_token": found.group(1)}
        return client.post("/signin", data=fields)

    def processes(self, service: str) -> list[str]:
        """Names of the running processes of `service` (e.g. `tasks.1`, `tasks.2`)."""
        return [p.name for p in self.system.processes if p.service.name == service]


@pytest.fixture(scope="session")
def nginx(require_program: Callable[..., str]) -> str:
    """The nginx executable (skip without it; fail under CI=true)."""
    return require_program("nginx", finder=gateway.find_nginx)


def start_system(directory: Path, nginx: str, stack: ExitStack) -> Running:
    """Start Taskmesh the way `taskmesh up` does: free ports, two tasks replicas, nginx in front."""
    del nginx  # run_system finds it the same way; the fixture only decides skip or fail
    log_path = directory / "system.log"
    stream = stack.enter_context(log_path.open("w", encoding="utf-8"))
    system = stack.enter_context(
        run_system(
            directory / "data",
            ports="free",
            replicas={"tasks": 2},
            gateway=True,
            printer=LogPrinter(stream, colour=False),
            durable=False,
        )
    )
    return Running(system, SystemLog(log_path))


@pytest.fixture(scope="session")
def taskmesh(nginx: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One Taskmesh for the session's e2e tests (tests never stop its processes)."""
    with ExitStack() as stack:
        yield start_system(tmp_path_factory.mktemp("e2e"), nginx, stack)


@pytest.fixture(scope="module")
def disposable_taskmesh(nginx: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A Taskmesh of its own for tests that break part of it."""
    with ExitStack() as stack:
        yield start_system(tmp_path_factory.mktemp("e2e-disposable"), nginx, stack)
