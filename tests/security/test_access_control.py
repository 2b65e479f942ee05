"""Object, property and function level authorization through the gateway (OWASP API1, API3, API5).

Two users and an anonymous client try every way into each other's data that the APIs offer.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Account, Gateway

pytestmark = pytest.mark.e2e

TASK_FIELDS = {
    "id",
    "number",
    "title",
    "description",
    "priority",
    "status",
    "due",
    "tags",
    "created_at",
    "updated_at",
    "version",
}
USER_FIELDS = {"id", "email", "display_name", "roles", "created_at", "version"}


def test_one_user_never_reaches_another_users_tasks(
    secured: Gateway, alice: Account, bob: Account
) -> None:
    with (
        secured.client(headers=alice.headers) as mine,
        secured.client(headers=bob.headers) as other,
    ):
        created = mine.post("/api/tasks/v1/tasks", json={"title": "alice's secret plan"})
        assert created.status_code == 201, created.text
        number = created.json()["number"]
        path = f"/api/tasks/v1/tasks/{number}"
        # Bob's own task with the same number must not be what he touches either.
        other.post("/api/tasks/v1/tasks", json={"title": "bob's"})
        bobs = {t["number"]: t for t in other.get("/api/tasks/v1/tasks").json()["items"]}
        seen = other.get(path)
        assert seen.status_code == 404 or seen.json()["id"] != created.json()["id"]
        assert bobs.get(number, {}).get("title") != "alice's secret plan"
        foreign = {"owner": alice.user_id}
        assert other.get(path, params=foreign).status_code == 403
        assert other.get("/api/tasks/v1/tasks", params=foreign).status_code == 403
        assert (
            other.patch(
                path, params=foreign, json={"title": "mine now"}, headers={"If-Match": "*"}
            ).status_code
            == 403
        )
        assert other.delete(path, params=foreign, headers={"If-Match": "*"}).status_code == 403
        assert other.delete(
            "/api/tasks/v1/tasks", params={"title": "alice's secret plan"}
        ).json() == {"deleted": 0}
        searched = other.get("/api/tasks/v1/tasks", params={"q": "secret plan"}).json()
        assert searched["items"] == []
        assert other.post("/api/tasks/v1/tasks/reset", params=foreign).status_code == 403
        # Alice's task is untouched.
        again = mine.get(path)
        assert again.status_code == 200
        assert again.json()["title"] == "alice's secret plan"
        assert again.json()["version"] == created.json()["version"]


def test_one_user_never_reads_another_users_activity(
    secured: Gateway, alice: Account, bob: Account
) -> None:
    with secured.client(headers=bob.headers) as other:
        feed = other.get("/api/activity/v1/activity")
        assert feed.status_code == 200
        assert all("alice" not in item["title"] for item in feed.json()["items"])
        spoofed = other.get("/api/activity/v1/activity", params={"owner": alice.user_id})
        assert spoofed.status_code in (200, 403, 422)
        if spoofed.status_code == 200:
            assert all("alice" not in item["title"] for item in spoofed.json()["items"])


def test_properties_cannot_be_mass_assigned_and_none_leak(secured: Gateway, alice: Account) -> None:
    with secured.client(headers=alice.headers) as client:
        for extra in [
            {"owner_id": str(uuid.uuid4())},
            {"id": str(uuid.uuid4())},
            {"version": 99},
            {"number": 77},
            {"created_at": "2000-01-01T00:00:00Z"},
        ]:
            refused = client.post("/api/tasks/v1/tasks", json={"title": "x", **extra})
            assert refused.status_code == 422, (extra, refused.text)
        created = client.post("/api/tasks/v1/tasks", json={"title": "fields"})
        assert set(created.json()) == TASK_FIELDS
        me = client.get("/api/auth/v1/me")
        assert set(me.json()) == USER_FIELDS
        assert me.json()["roles"] == ["user"]
        for extra in [{"roles": ["admin"]}, {"email": "taken@example.com"}, {"id": "x"}]:
            refused = client.patch(
                "/api/auth/v1/me", json={"display_name": "A", **extra}, headers={"If-Match": "*"}
            )
            assert refused.status_code in (412, 422), (extra, refused.text)
        assert client.get("/api/auth/v1/me").json()["roles"] == ["user"]
    with secured.client() as anonymous:
        email = f"sneaky-{uuid.uuid4().hex[:8]}@example.com"
        sneaky = anonymous.post(
            "/api/auth/v1/users",
            json={
                "email": email,
                "display_name": "S",
                "password": "a long passphrase 9",
                "roles": ["admin"],
            },
        )
        assert sneaky.status_code == 422, sneaky.text


def test_admin_and_service_functions_refuse_users(secured: Gateway, alice: Account) -> None:
    with secured.client(headers=alice.headers) as client:
        assert client.post("/api/tasks/v1/admin/tasks/reset").status_code == 403
        internal = f"/api/tasks/v1/internal/owners/{alice.user_id}/tasks"
        assert client.delete(internal).status_code == 404  # not even routed by the gateway
        assert (
            client.delete(f"/api/activity/v1/internal/owners/{alice.user_id}/activity").status_code
            == 404
        )
    with secured.client() as anonymous:
        for method, path in [
            ("GET", "/api/tasks/v1/tasks"),
            ("POST", "/api/tasks/v1/tasks/reset"),
            ("GET", "/api/activity/v1/activity"),
            ("GET", "/api/auth/v1/me"),
            ("POST", "/api/auth/v1/sessions/logout-all"),
            ("POST", "/api/tasks/v1/admin/tasks/reset"),
        ]:
            answer = anonymous.request(method, path)
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert answer.headers["content-type"].startswith("application/problem+json")
