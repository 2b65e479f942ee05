"""Web API tests: the real app and real Redis, with the auth/tasks/activity APIs faked in memory."""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from taskmesh_web import create_app
from taskmesh_web.config import WebSettings

AUTH = "http://auth.test"
TASKS = "http://tasks.test"
ACTIVITY = "http://activity.test"
PASSWORD = "correct horse battery"
WEAK = "passwordpassword"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def problem(status: int, detail: str = "", **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": "Problem", "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@dataclass
class FakeServices:
    """In-memory stand-ins for the auth, tasks and activity APIs, following docs/architecture.md."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, str] = field(default_factory=dict)
    refresh: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_number: dict[str, int] = field(default_factory=dict)
    feed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    idempotent: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    overrides: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = field(
        default_factory=dict
    )
    revoked: list[str] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- helpers for tests --------------------------------------------------------------------

    def add_user(self, email: str, name: str = "Ada", password: str = PASSWORD) -> dict[str, Any]:
        user = {
            "id": str(uuid.uuid4()),
            "email": email,
            "display_name": name,
            "roles": ["user"],
            "created_at": datetime.now(UTC).isoformat(),
            "version": 1,
            "password": password,
        }
        self.users[email] = user
        return user

    def user_tasks(self, email: str) -> list[dict[str, Any]]:
        return self.tasks.setdefault(self.users[email]["id"], [])

    def add_task(self, email: str, title: str, **fields: Any) -> dict[str, Any]:
        owner = self.users[email]["id"]
        return self._create(owner, {"title": title, **fields})

    def expire_access_tokens(self) -> None:
        self.access.clear()

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    # --- the transport ------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            host = request.url.host.split(".")[0]
            if host in self.down:
                raise httpx.ConnectError("connection refused", request=request)
            override = self.overrides.get((request.method, request.url.path))
            if override is not None:
                return override(request)
            if request.url.path == "/healthz":
                return httpx.Response(200, json={"status": "ok"})
            route = {"auth": self._auth, "tasks": self._tasks, "activity": self._activity}[host]
            return route(request)

    def _token(self, request: httpx.Request) -> str | None:
        header = request.headers.get("authorization", "")
        return self.access.get(header.removeprefix("Bearer "))

    def _pair(self, user_id: str) -> httpx.Response:
        n = next(self.counter)
        access, refresh = f"access-{n}-{uuid.uuid4().hex}", f"refresh-{n}-{uuid.uuid4().hex}"
        self.access[access] = user_id
        self.refresh[refresh] = user_id
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 600,
            "refresh_token": refresh,
            "refresh_expires_in": 86400,
        }
        return httpx.Response(200, json=body)

    def _public(self, user: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in user.items() if k != "password"}

    def _auth(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        body = _json(request)
        if (method, path) == ("POST", "/v1/users"):
            if body["email"] in self.users:
                return problem(409, "email taken")
            if body["password"] == WEAK:
                return problem(422, "This password is too common.", title="Weak password")
            user = self.add_user(body["email"], body["display_name"], body["password"])
            return httpx.Response(201, json=self._public(user))
        if (method, path) == ("POST", "/v1/sessions"):
            user = self.users.get(body["email"])
            if user is None or user["password"] != body["password"]:
                return problem(401, "bad credentials")
            return self._pair(user["id"])
        if (method, path) == ("POST", "/v1/sessions/refresh"):
            user_id = self.refresh.pop(body["refresh_token"], None)
            if user_id is None:
                return problem(401, "refresh token invalid")
            return self._pair(user_id)
        if (method, path) == ("POST", "/v1/sessions/logout"):
            self.refresh.pop(body["refresh_token"], None)
            self.revoked.append(body["refresh_token"])
            return httpx.Response(204)
        owner = self._token(request)
        if owner is None:
            return problem(401, "token invalid")
        user = next(u for u in self.users.values() if u["id"] == owner)
        if (method, path) == ("GET", "/v1/me"):
            return httpx.Response(200, json=self._public(user), headers={"ETag": '"1"'})
        if (method, path) == ("POST", "/v1/me/password"):
            if body["current_password"] != user["password"]:
                return problem(401, "Invalid email or password.")
            if body["new_password"] == WEAK:
                return problem(422, "This password is too common.", title="Weak password")
            user["password"] = body["new_password"]
            self.access = {k: v for k, v in self.access.items() if v != owner}
            self.refresh = {k: v for k, v in self.refresh.items() if v != owner}
            return httpx.Response(204)
        if (method, path) == ("DELETE", "/v1/me"):
            if body["password"] != user["password"]:
                return problem(403, "wrong password")
            del self.users[user["email"]]
            self.tasks.pop(owner, None)
            return httpx.Response(204)
        return problem(404)

    def _create(self, owner: str, body: dict[str, Any]) -> dict[str, Any]:
        number = self.next_number.get(owner, 0) + 1
        self.next_number[owner] = number
        now = datetime.now(UTC).isoformat()
        task = {
            "id": str(uuid.uuid4()),
            "number": number,
            "title": body["title"],
            "description": body.get("description", ""),
            "priority": body.get("priority", 3),
            "status": body.get("status", "todo"),
            "due": body.get("due"),
            "tags": body.get("tags", []),
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        self.tasks.setdefault(owner, []).append(task)
        self._event(owner, "task.created", task, f"You created #{number} {task['title']}")
        return task

    def _event(self, owner: str, kind: str, task: dict[str, Any] | None, summary: str) -> None:
        self.feed.setdefault(owner, []).insert(
            0,
            {
                "id": next(self.counter),
                "event_id": uuid.uuid4().hex,
                "type": kind,
                "task_number": task["number"] if task else None,
                "title": task["title"] if task else None,
                "summary": summary,
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )

    def _tasks(self, request: httpx.Request) -> httpx.Response:
        owner = self._token(request)
        if owner is None:
            return problem(401, "token invalid")
        path, method = request.url.path, request.method
        mine = self.tasks.setdefault(owner, [])
        if (method, path) == ("POST", "/v1/tasks"):
            key = request.headers.get("idempotency-key")
            if key and key in self.idempotent:
                return httpx.Response(201, json=self.idempotent[key])
            body = _json(request)
            if not body.get("title"):
                return problem(
                    422, "invalid", errors=[{"loc": ["body", "title"], "msg": "required"}]
                )
            task = self._create(owner, body)
            if key:
                self.idempotent[key] = task
            return httpx.Response(201, json=task, headers={"ETag": f'"{task["version"]}"'})
        if (method, path) == ("GET", "/v1/tasks"):
            return self._list(mine, request.url.params)
        if (method, path) == ("GET", "/v1/tasks/counts"):
            counts = {s: sum(t["status"] == s for t in mine) for s in ("todo", "doing", "done")}
            return httpx.Response(200, json={**counts, "total": len(mine)})
        if (method, path) == ("DELETE", "/v1/tasks"):
            title = request.url.params["title"]
            gone = [t for t in mine if t["title"] == title]
            self.tasks[owner] = [t for t in mine if t["title"] != title]
            for task in gone:
                self._event(owner, "task.deleted", task, f"You deleted #{task['number']}")
            return httpx.Response(200, json={"deleted": len(gone)})
        if (method, path) == ("POST", "/v1/tasks/reset"):
            self.tasks[owner] = []
            self.next_number[owner] = 0
            self._event(owner, "tasks.reset", None, "You reset your board")
            return httpx.Response(200, json={"deleted": len(mine)})
        match = re.fullmatch(r"/v1/tasks/(\d+)", path)
        task = next((t for t in mine if match and t["number"] == int(match[1])), None)
        if task is None:
            return problem(404, "no such task")
        if method == "GET":
            return httpx.Response(200, json=task, headers={"ETag": f'"{task["version"]}"'})
        if_match = request.headers.get("if-match")
        if if_match is None:
            return problem(428, "If-Match required")
        if if_match != f'"{task["version"]}"':
            return problem(412, "stale")
        if method == "PATCH":
            task.update(_json(request))
            task["version"] += 1
            verb = "completed" if task["status"] == "done" else "updated"
            self._event(
                owner, f"task.{verb}", task, f"You {verb} #{task['number']} {task['title']}"
            )
            return httpx.Response(200, json=task, headers={"ETag": f'"{task["version"]}"'})
        if method == "DELETE":
            mine.remove(task)
            self._event(owner, "task.deleted", task, f"You deleted #{task['number']}")
            return httpx.Response(204)
        return problem(405)

    def _list(self, mine: list[dict[str, Any]], params: httpx.QueryParams) -> httpx.Response:
        items = list(mine)
        if "status" in params:
            items = [t for t in items if t["status"] == params["status"]]
        if "priority_min" in params:
            items = [t for t in items if t["priority"] >= int(params["priority_min"])]
        if "tag" in params:
            items = [t for t in items if params["tag"] in t["tags"]]
        if "q" in params:
            items = [t for t in items if params["q"].lower() in t["title"].lower()]
        sort = params.get("sort", "-created")
        key = {"created": "number", "priority": "priority", "due": "due"}[sort.lstrip("-")]
        items.sort(key=lambda t: (t[key] is None, t[key]), reverse=sort.startswith("-"))
        start = int(params.get("cursor", "0"))
        limit = int(params.get("limit", "50"))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return httpx.Response(
            200, json={"items": page, "next_cursor": str(start + limit) if more else None}
        )

    def _activity(self, request: httpx.Request) -> httpx.Response:
        owner = self._token(request)
        if owner is None:
            return problem(401, "token invalid")
        limit = int(request.url.params.get("limit", "50"))
        return httpx.Response(
            200, json={"items": self.feed.get(owner, [])[:limit], "next_cursor": None}
        )


def _json(request: httpx.Request) -> dict[str, Any]:
    import json

    return json.loads(request.content) if request.content else {}


@pytest.fixture
def fake() -> FakeServices:
    return FakeServices()


@pytest.fixture(scope="session")
def redis_url(backing: Any) -> str:
    url: str = backing.redis_url_for(4)
    return url


@pytest.fixture
def settings(redis_url: str) -> WebSettings:
    return WebSettings(
        auth_url=AUTH,
        tasks_url=TASKS,
        activity_url=ACTIVITY,
        redis_url=redis_url,
        public_url="http://localhost",
        backend_retries=1,
        TASKMESH_ENV="test",
    )


@pytest.fixture
def app(settings: WebSettings, fake: FakeServices, redis_url: str) -> Iterator[Flask]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return create_app(settings, transport=fake.transport())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/signin") -> str:
    """A CSRF token of `client`'s session, read from a page as a browser would."""
    page = client.get(path).get_data(as_text=True)
    match = _CSRF.search(page)
    assert match, f"no CSRF token on {path}"
    return match[1] or match[2]


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> None:
    token = csrf_token(client)
    response = client.post(
        "/signin", data={"csrf_token": token, "email": email, "password": password}
    )
    assert response.status_code == 303, response.get_data(as_text=True)


@pytest.fixture
def ada(fake: FakeServices) -> dict[str, Any]:
    return fake.add_user("ada@example.com", "Ada")


@pytest.fixture
def signed_in(client: FlaskClient, ada: dict[str, Any]) -> FlaskClient:
    sign_in(client, ada["email"])
    return client


@pytest.fixture
def post(signed_in: FlaskClient) -> Callable[..., Any]:
    """POST a form of the signed-in session with its CSRF token."""

    def send(path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        token = csrf_token(signed_in, "/")
        return signed_in.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)

    return send


@pytest.fixture
def csrf() -> Callable[..., str]:
    """`csrf(client, path="/signin")`: a CSRF token of that client's session."""
    return csrf_token


@pytest.fixture
def login() -> Callable[..., None]:
    """`login(client, email, password=PASSWORD)`: sign a client in through the form."""
    return sign_in


@pytest.fixture
def make_problem() -> Callable[..., httpx.Response]:
    """`make_problem(status, detail, **extra)`: a problem+json response."""
    return problem
