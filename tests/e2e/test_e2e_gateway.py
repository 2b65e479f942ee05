"""The gateway's promises checked against the real services behind it."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING

import httpx
import pytest
from taskmesh import gateway
from taskmesh.processes import wait_until

if TYPE_CHECKING:
    from conftest import Running

pytestmark = pytest.mark.e2e

GATEWAY_429 = json.loads((gateway.GATEWAY_DIR / "errors" / "429.json").read_text())
SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "referrer-policy")


def assert_secure(response: httpx.Response) -> None:
    """Every response carries the security headers (once) and a request id; no HSTS over HTTP."""
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert response.headers.get_list("x-frame-options") == ["DENY"]
    assert response.headers.get_list("referrer-policy") == ["strict-origin-when-cross-origin"]
    policies = response.headers.get_list("content-security-policy")
    assert len(policies) == 1
    assert "frame-ancestors 'none'" in policies[0]
    assert "default-src" in policies[0]
    assert "strict-transport-security" not in response.headers
    assert len(response.headers.get_list("x-request-id")) == 1
    assert response.headers["server"] == "nginx"


def test_every_prefix_reaches_its_service(taskmesh: Running) -> None:
    with taskmesh.client("127.0.0.31") as client:
        jwks = client.get("/api/auth/.well-known/jwks.json")
        tasks = client.get("/api/tasks/v1/tasks")
        activity = client.get("/api/activity/v1/activity")
        board = client.get("/")
        signin = client.get("/signin")
        ready = {name: client.get(f"/api/{name}/readyz") for name in ("auth", "tasks", "activity")}

    assert jwks.status_code == 200
    assert jwks.json()["keys"][0]["alg"] == "EdDSA"
    for response in (tasks, activity):  # the services' own 401s: the prefix was stripped
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    assert board.status_code == 303
    assert board.headers["location"].startswith("/signin")
    assert signin.status_code == 200
    assert "<form" in signin.text
    for name, response in ready.items():
        assert response.status_code == 200, name
    for response in (jwks, tasks, activity, board, signin, *ready.values()):
        assert_secure(response)


def test_one_client_is_limited_while_another_is_not(taskmesh: Running) -> None:
    rate, burst = gateway.Limits().api_rate, gateway.Limits().api_burst
    with taskmesh.client("127.0.0.32") as noisy, taskmesh.client("127.0.0.33") as quiet:
        started = time.monotonic()
        statuses = Counter(noisy.get("/api/tasks/healthz").status_code for _ in range(300))
        flood = time.monotonic() - started
        # Spoofing X-Forwarded-For does not buy the noisy client a new rate-limit key.
        started = time.monotonic()
        spoofed = [
            noisy.get("/api/tasks/healthz", headers={"X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(20)
        ]
        spoofing = time.monotonic() - started
        other = quiet.get("/api/tasks/healthz")

    # At most the burst plus what the rate refilled meanwhile got through, whatever the speed.
    assert statuses[429] >= 1
    assert statuses[200] <= 1 + burst + rate * flood + 2
    assert set(statuses) == {200, 429}
    limited = [r for r in spoofed if r.status_code == 429]
    assert limited
    assert len(spoofed) - len(limited) <= 1 + rate * spoofing + 1
    response = limited[0]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == GATEWAY_429
    assert response.headers["retry-after"] == "1"
    assert_secure(response)
    assert other.status_code == 200


def test_sign_in_and_sign_up_have_a_much_stricter_limit(taskmesh: Running) -> None:
    with taskmesh.client("127.0.0.34") as client:
        attempts = [
            client.post(
                "/api/auth/v1/sessions",
                json={"email": f"nobody-{n}@example.com", "password": "wrong password"},
            )
            for n in range(12)
        ]
        form = client.post("/signin", data={"email": "x@example.com", "password": "y"})
        reads = client.get("/api/auth/.well-known/jwks.json")

    assert [r.status_code for r in attempts[:11]] == [401] * 11
    assert attempts[11].status_code == 429
    assert attempts[11].json() == GATEWAY_429
    assert attempts[11].headers["retry-after"] == "6"
    assert form.status_code == 429  # the web's sign-in form shares the zone
    assert form.headers["content-type"] == "text/html; charset=utf-8"
    assert "Too Many Requests" in form.text
    assert reads.status_code == 200


def test_oversized_body_is_rejected_by_the_gateway(taskmesh: Running) -> None:
    with taskmesh.client("127.0.0.35") as client:
        account = taskmesh.register(client, "big")
        huge = {"title": "big", "description": "x" * (2 * 1024 * 1024)}
        response = client.post("/api/tasks/v1/tasks", json=huge, headers=account.headers)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert_secure(response)


def test_requests_spread_over_both_tasks_replicas(taskmesh: Running) -> None:
    replicas = taskmesh.processes("tasks")
    assert len(replicas) == 2
    mark = taskmesh.log.mark()
    tag = uuid.uuid4().hex[:8]
    with taskmesh.client("127.0.0.36") as client:
        account = taskmesh.register(client, "spread")
        for n in range(20):
            response = client.get(
                "/api/tasks/v1/tasks",
                headers=account.headers | {"X-Request-ID": f"spread-{tag}-{n}"},
            )
            assert response.status_code == 200

    def served() -> Counter[str]:
        return Counter(
            name
            for name, entry in taskmesh.log.entries(mark)
            if str(entry.get("request_id", "")).startswith(f"spread-{tag}-")
            and name.startswith("tasks")
            and entry.get("msg") == "request"  # the access line: one per request served
        )

    # The log pumps copy each process's lines a moment after it prints them.
    assert wait_until(lambda: sum(served().values()) >= 20, timeout=5), served()
    served_by = served()
    assert set(served_by) == set(replicas)
    assert min(served_by.values()) >= 5
    assert sum(served_by.values()) == 20


def test_gateway_errors_for_unknown_and_internal_paths(taskmesh: Running) -> None:
    with taskmesh.client("127.0.0.37") as client:
        unknown = client.get("/api/nothing/here")
        metrics = client.get("/api/tasks/metrics")
        internal = client.delete(f"/api/tasks/v1/internal/owners/{uuid.uuid4()}/tasks")
        page = client.get("/metrics")

    for response in (unknown, metrics, internal):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert_secure(response)
    assert page.status_code == 404
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert_secure(page)


def test_web_pages_and_assets_come_through_with_the_webs_own_policy(taskmesh: Running) -> None:
    from taskmesh_web.ops import CONTENT_SECURITY_POLICY

    with taskmesh.client("127.0.0.38") as client:
        page = client.get("/signin")
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        fetched = [client.get(path, headers={"Accept-Encoding": "gzip"}) for path in assets]

    assert page.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]
    assert assets, "the sign-in page links no static assets"
    for response in fetched:
        assert response.status_code == 200, response.url
        assert_secure(response)
    stylesheet = next(r for r in fetched if r.url.path.endswith(".css"))
    if len(stylesheet.content) > 1024:
        assert stylesheet.headers["content-encoding"] == "gzip"
