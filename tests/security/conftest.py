"""Taskmesh started as `taskmesh up` starts it (all services behind nginx) for security suites."""

from __future__ import annotations

import itertools
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

PASSWORD = "security suite passphrase 2026"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Account:
    """A registered user, its tokens and its user id."""

    email: str
    user_id: str
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Gateway:
    """The running system's entry point, with clients that each come from their own address.

    nginx rate-limits per direct peer address, so every client gets a fresh loopback source
    address (127.0.0.0/8 is all loopback on Linux) and no case is refused for its neighbours.
    """

    def __init__(self, system: System) -> None:
        assert system.gateway_url is not None
        self.system = system
        self.url = system.gateway_url
        self._addresses = (
            f"127.{a}.{b}.{c}"
            for a, b, c in itertools.product(range(10, 250), range(256), range(1, 255))
        )

    def address(self) -> str:
        """A loopback address no client has used yet."""
        return next(self._addresses)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client of the gateway connecting from a fresh loopback address."""
        transport = httpx.HTTPTransport(local_address=self.address())
        kwargs.setdefault("timeout", 20)
        return httpx.Client(base_url=self.url, transport=transport, **kwargs)

    def register(self, name: str = "sec") -> Account:
        """Sign up a fresh user through the gateway and sign in."""
        email = f"{name}-{uuid.uuid4().hex[:10]}@example.com"
        with self.client() as client:
            created = client.post(
                "/api/auth/v1/users",
                json={"email": email, "display_name": name, "password": PASSWORD},
            )
            assert created.status_code == 201, created.text
            session = client.post(
                "/api/auth/v1/sessions", json={"email": email, "password": PASSWORD}
            )
            assert session.status_code == 200, session.text
        pair = session.json()
        return Account(email, created.json()["id"], pair["access_token"], pair["refresh_token"])

    def web_client(self, account: Account) -> httpx.Client:
        """A browser-like client signed in to the web UI as `account` (through the form)."""
        client = self.client(follow_redirects=False)
        form = client.get("/signin")
        found = CSRF.search(form.text)
        assert found, "no csrf_token on the sign-in page"
        fields = {"email": account.email, "password": PASSWORD, "csrf_token": found.group(1)}
        signed_in = client.post("/signin", data=fields)
        assert signed_in.status_code in (302, 303), signed_in.text[:500]
        return client

    def csrf_token(self, client: httpx.Client, path: str = "/") -> str:
        """A CSRF token from a page the client can see."""
        found = CSRF.search(client.get(path).text)
        assert found, f"no csrf_token on {path}"
        return found.group(1)


@pytest.fixture(scope="session")
def nginx(require_program: Callable[..., str]) -> str:
    """The nginx executable (skip without it; fail under CI=true)."""
    return require_program("nginx", finder=gateway.find_nginx)


@pytest.fixture(scope="session")
def secured(nginx: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One Taskmesh for the session's security tests, started exactly as `taskmesh up` does."""
    del nginx  # run_system finds it the same way; the fixture only decides skip or fail
    directory: Path = tmp_path_factory.mktemp("security")
    with ExitStack() as stack:
        log = stack.enter_context((directory / "system.log").open("w", encoding="utf-8"))
        system = stack.enter_context(
            run_system(
                directory / "data",
                ports="free",
                gateway=True,
                durable=False,
                printer=LogPrinter(log, colour=False),
            )
        )
        yield Gateway(system)


@pytest.fixture(scope="session")
def alice(secured: Gateway) -> Account:
    """The first user of the session."""
    return secured.register("alice")


@pytest.fixture(scope="session")
def bob(secured: Gateway) -> Account:
    """The second user of the session."""
    return secured.register("bob")
