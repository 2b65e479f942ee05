"""A user's journey through the gateway of a running stack; standard library only, no browser.

    smoke_journey.py journey http://127.0.0.1        # API + web pages; prints the state as JSON
    smoke_journey.py tasks URL TOKEN                  # the caller's task titles, as JSON
    smoke_journey.py create URL TOKEN TITLE           # create one task
    smoke_journey.py spread URL TOKEN --requests 60   # the X-Request-ID prefix of a burst
    smoke_journey.py tls https://localhost CERT       # HTTPS, verified against CERT, with HSTS

Exits non-zero with a message on the first step that does not behave.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT = 10.0


class JourneyError(Exception):
    """A step of the journey did not behave."""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Let the journey see 3xx responses instead of following them."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """A tiny HTTP client with a cookie jar, against one base URL."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        data = None
        all_headers = {"Accept": "application/json, text/html", **(headers or {})}
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            all_headers.setdefault("Origin", self.base)
        request = urllib.request.Request(  # noqa: S310 - the URL is the stack under test
            self.base + path, data=data, method=method, headers=all_headers
        )
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        status, _, payload = self.request(method, path, **kwargs)
        if status != expect:
            raise JourneyError(f"{method} {path}: {status} (want {expect}): {payload[:300]!r}")
        return json.loads(payload) if payload else None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf_token(html: bytes) -> str:
    match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        rb'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    if match is None:
        raise JourneyError("no csrf_token field on the form")
    return match.group(1).decode()


def journey(base: str) -> dict[str, Any]:
    """Register, sign in, create and list tasks over the API; follow the feed; see the web board."""
    api = Client(base)
    status, _, _ = api.request("GET", "/healthz")
    if status != 200:
        raise JourneyError(f"gateway /healthz: {status}")

    email = f"smoke-{secrets.token_hex(4)}@example.com"
    password = f"Smoke-{secrets.token_urlsafe(12)}"
    api.json(
        "POST",
        "/api/auth/v1/users",
        201,
        body={"email": email, "display_name": "Smoke Test", "password": password},
    )
    credentials = {"email": email, "password": password}
    pair = api.json("POST", "/api/auth/v1/sessions", 200, body=credentials)
    token = pair["access_token"]
    me = api.json("GET", "/api/auth/v1/me", 200, headers=bearer(token))
    if me["email"] != email:
        raise JourneyError(f"/me is someone else: {me}")

    title = f"smoke task {secrets.token_hex(3)}"
    created = api.json(
        "POST",
        "/api/tasks/v1/tasks",
        201,
        body={"title": title, "description": "made by the compose smoke test", "priority": 4},
        headers={**bearer(token), "Idempotency-Key": secrets.token_hex(16)},
    )
    listed = api.json("GET", "/api/tasks/v1/tasks", 200, headers=bearer(token))
    if [item["title"] for item in listed["items"]] != [title]:
        raise JourneyError(f"the task list is not [the new task]: {listed}")

    # The event travels tasks -> outbox -> Redis stream -> activity worker -> feed.
    deadline = time.monotonic() + 30
    while True:
        feed = api.json("GET", "/api/activity/v1/activity", 200, headers=bearer(token))
        if any(item.get("task_number") == created["number"] for item in feed["items"]):
            break
        if time.monotonic() > deadline:
            raise JourneyError(f"no activity for task #{created['number']} after 30 s: {feed}")
        time.sleep(0.5)

    # The browser's path, without a browser: sign in on the form and find the task on the board.
    browser = Client(base)
    status, _, page = browser.request("GET", "/signin")
    if status != 200:
        raise JourneyError(f"GET /signin: {status}")
    status, _, page = browser.request(
        "POST",
        "/signin",
        form={"email": email, "password": password, "next": "", "csrf_token": csrf_token(page)},
    )
    if status != 303:
        raise JourneyError(f"POST /signin: {status} (want 303): {page[:300]!r}")
    status, _, page = browser.request("GET", "/")
    if status != 200 or title.encode() not in page:
        raise JourneyError(f"GET / after sign-in: {status}, title shown: {title.encode() in page}")

    # Static files ship inside the package: every script and stylesheet the board links must load.
    assets = {m.decode() for m in re.findall(rb'(?:src|href)="(/static/[^"?#]+)', page)}
    if not assets:
        raise JourneyError("the board links no static assets")
    for asset in sorted(assets):
        status, _, _ = browser.request("GET", asset)
        if status != 200:
            raise JourneyError(f"GET {asset}: {status}")

    return {"email": email, "password": password, "token": token, "title": title}


def titles(base: str, token: str) -> list[str]:
    """The caller's task titles."""
    listed = Client(base).json("GET", "/api/tasks/v1/tasks", 200, headers=bearer(token))
    return sorted(item["title"] for item in listed["items"])


def create(base: str, token: str, title: str) -> int:
    """Create a task; return its number."""
    created = Client(base).json(
        "POST", "/api/tasks/v1/tasks", 201, body={"title": title}, headers=bearer(token)
    )
    return int(created["number"])


def spread(base: str, token: str, requests: int) -> str:
    """Send a burst of task list requests tagged with one X-Request-ID prefix; return the prefix."""
    prefix = f"spread-{secrets.token_hex(4)}"
    client = Client(base)
    for number in range(requests):
        client.json(
            "GET",
            "/api/tasks/v1/tasks",
            200,
            headers={**bearer(token), "X-Request-ID": f"{prefix}-{number}"},
        )
    return prefix


def tls(base: str, certificate: str) -> str:
    """Fetch the sign-in page over HTTPS, verifying the gateway against `certificate`; want HSTS."""
    context = ssl.create_default_context(cafile=certificate)
    request = urllib.request.Request(base.rstrip("/") + "/signin")  # noqa: S310 - the stack under test
    with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:  # noqa: S310
        hsts = response.headers.get("Strict-Transport-Security", "")
        if response.status != 200 or "max-age=" not in hsts:
            raise JourneyError(f"HTTPS /signin: {response.status}, HSTS {hsts!r}")
        return str(response.headers.get("X-Request-ID"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("journey").add_argument("base")
    tasks_command = commands.add_parser("tasks")
    tasks_command.add_argument("base")
    tasks_command.add_argument("token")
    create_command = commands.add_parser("create")
    create_command.add_argument("base")
    create_command.add_argument("token")
    create_command.add_argument("title")
    spread_command = commands.add_parser("spread")
    spread_command.add_argument("base")
    spread_command.add_argument("token")
    spread_command.add_argument("--requests", type=int, default=60)
    tls_command = commands.add_parser("tls")
    tls_command.add_argument("base")
    tls_command.add_argument("certificate")
    arguments = parser.parse_args()
    try:
        if arguments.command == "journey":
            result: Any = journey(arguments.base)
        elif arguments.command == "tasks":
            result = titles(arguments.base, arguments.token)
        elif arguments.command == "tls":
            result = tls(arguments.base, arguments.certificate)
        elif arguments.command == "create":
            result = create(arguments.base, arguments.token, arguments.title)
        else:
            result = spread(arguments.base, arguments.token, arguments.requests)
    except (JourneyError, OSError, KeyError, ValueError) as error:
        print(f"journey: FAILED: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
