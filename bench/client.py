"""Talking to the running system to prepare load: accounts, tokens, sessions and seed tasks."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD = "bench-password-1234"
WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
)
STATUSES = ("todo", "doing", "done")


def task_body(index: int) -> dict[str, Any]:
    """Seed task `index`: a tenth of the titles hold each word."""
    return {
        "title": f"task {index} {WORDS[index % 10]}",
        "description": f"about {WORDS[(index // 10) % 10]} and {WORDS[(index // 100) % 10]}",
        "priority": 1 + index % 5,
    }


@dataclass
class User:
    """A bench account and a fresh-enough access token for it."""

    auth_url: str
    email: str
    id: str = ""
    token: str = ""
    issued: float = 0.0
    lifetime: float = 600.0
    cookie: str = field(default="", repr=False)

    def bearer(self) -> dict[str, str]:
        """Authorization header with a token that has at least half its life left."""
        if time.monotonic() - self.issued > self.lifetime / 2:
            self.login()
        return {"Authorization": f"Bearer {self.token}"}

    def login(self) -> None:
        """Log in through auth and keep the access token."""
        response = httpx.post(
            f"{self.auth_url}/v1/sessions",
            json={"email": self.email, "password": PASSWORD},
            timeout=30,
        )
        response.raise_for_status()
        pair = response.json()
        self.token = pair["access_token"]
        self.lifetime = float(pair.get("expires_in", 600))
        self.issued = time.monotonic()
        self.id = _claims(self.token)["sub"]


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def register(auth_url: str, label: str) -> User:
    """A new account (unique email) with a token."""
    email = f"bench-{label}-{uuid.uuid4().hex[:10]}@example.com"
    response = httpx.post(
        f"{auth_url}/v1/users",
        json={"email": email, "display_name": f"Bench {label}", "password": PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    user = User(auth_url=auth_url, email=email)
    user.login()
    return user


def seed_tasks(tasks_url: str, user: User, count: int, *, start: int = 0) -> None:
    """Create `count` tasks through the API, then spread them over the three statuses."""
    headers = user.bearer()

    def create(index: int) -> None:
        with_status = index % 3
        response = client.post(f"{tasks_url}/v1/tasks", json=task_body(index), headers=headers)
        response.raise_for_status()
        if with_status:
            number = response.json()["number"]
            update = client.patch(
                f"{tasks_url}/v1/tasks/{number}",
                json={"status": STATUSES[with_status]},
                headers=headers | {"If-Match": response.headers["ETag"]},
            )
            update.raise_for_status()

    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(start + 1, start + count + 1)))


def task_versions(tasks_url: str, user: User, count: int) -> dict[int, int]:
    """The current version of (up to) `count` of the user's tasks, by number."""
    versions: dict[int, int] = {}
    cursor: str | None = None
    with httpx.Client(timeout=30) as client:
        while len(versions) < count:
            params: dict[str, Any] = {"limit": 100, "sort": "created"}
            if cursor:
                params["cursor"] = cursor
            response = client.get(f"{tasks_url}/v1/tasks", params=params, headers=user.bearer())
            response.raise_for_status()
            page = response.json()
            versions.update({item["number"]: item["version"] for item in page["items"]})
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return dict(list(versions.items())[:count])


def cursor_for_page(tasks_url: str, user: User, query: str, page: int) -> str:
    """The cursor that opens page `page` (1-based) of a list query, walked through next_cursor."""
    cursor = ""
    with httpx.Client(timeout=30) as client:
        for _ in range(page - 1):
            url = f"{tasks_url}/v1/tasks?{query}" + (f"&cursor={cursor}" if cursor else "")
            response = client.get(url, headers=user.bearer())
            response.raise_for_status()
            cursor = response.json().get("next_cursor") or ""
            if not cursor:
                raise RuntimeError(f"{query} has fewer than {page} pages")
    return cursor


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def web_cookie(web_url: str, user: User) -> str:
    """A signed-in web session, as a Cookie header value."""
    with httpx.Client(base_url=web_url, timeout=30, follow_redirects=False) as client:
        page = client.get("/signin")
        page.raise_for_status()
        match = _CSRF.search(page.text)
        form = {"email": user.email, "password": PASSWORD}
        if match:
            form["csrf_token"] = match.group(1)
        response = client.post("/signin", data=form)
        if response.status_code not in (302, 303):
            raise RuntimeError(f"web sign-in answered {response.status_code}")
        board = client.get("/")
        if board.status_code != 200:
            raise RuntimeError(f"web board answered {board.status_code} after sign-in")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())
