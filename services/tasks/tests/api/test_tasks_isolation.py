"""Owner isolation: every endpoint x every kind of caller, with the expected status per cell.

Each cell starts from an owner with one task (#1, titled "mine"). A caller that is not the owner
(nor an admin naming the owner) must get 404 for the owner's task, never 403, and must leave the
owner's task untouched.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

CALLERS = ("owner", "other", "admin", "service", "anonymous")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: Any = None
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    # Expected status per caller; "owner_changed" says whether the owner's task is changed by
    # a successful owner/admin call.
    expected: dict[str, int] | None = None
    changes_task: bool = False


USER_DEFAULT = {"owner": 200, "other": 200, "admin": 200, "service": 403, "anonymous": 401}
ENDPOINTS = {
    "create": Endpoint("POST", "/v1/tasks", body={"title": "new"},
                       expected={**USER_DEFAULT, "owner": 201, "other": 201, "admin": 201}),
    "list": Endpoint("GET", "/v1/tasks", expected=USER_DEFAULT),
    "counts": Endpoint("GET", "/v1/tasks/counts", expected=USER_DEFAULT),
    "get": Endpoint("GET", "/v1/tasks/1", expected={**USER_DEFAULT, "other": 404}),
    "update": Endpoint("PATCH", "/v1/tasks/1", body={"title": "changed"},
                       headers={"If-Match": '"1"'}, expected={**USER_DEFAULT, "other": 404},
                       changes_task=True),
    "delete": Endpoint("DELETE", "/v1/tasks/1", headers={"If-Match": '"1"'},
                       expected={**USER_DEFAULT, "owner": 204, "other": 404, "admin": 204},
                       changes_task=True),
    "delete_by_title": Endpoint("DELETE", "/v1/tasks", params={"title": "mine"},
                                expected=USER_DEFAULT, changes_task=True),
    "bulk_status": Endpoint("POST", "/v1/tasks/bulk-status",
                            body={"numbers": [1], "status": "done"},
                            expected=USER_DEFAULT, changes_task=True),
    "reset": Endpoint("POST", "/v1/tasks/reset", expected=USER_DEFAULT, changes_task=True),
    "admin_reset": Endpoint("POST", "/v1/admin/tasks/reset",
                            expected={**USER_DEFAULT, "owner": 403, "other": 403},
                            changes_task=True),
    "purge": Endpoint("DELETE", "/v1/internal/owners/{owner}/tasks",
                      expected={"owner": 403, "other": 403, "admin": 403, "service": 200,
                                "anonymous": 401},
                      changes_task=True),
}  # fmt: skip
# What the caller sees of the owner's data, for reads that succeed.
VISIBLE = {"owner": True, "admin": True, "other": False}


@pytest.mark.parametrize(
    ("name", "caller"), list(itertools.product(ENDPOINTS, CALLERS)), ids=lambda v: str(v)
)
async def test_isolation_matrix(
    client: httpx.AsyncClient,
    make_user: Callable[..., Any],
    make_service: Callable[..., Any],
    name: str,
    caller: str,
) -> None:
    endpoint = ENDPOINTS[name]
    assert endpoint.expected is not None
    owner = make_user()
    created = await client.post("/v1/tasks", json={"title": "mine"}, headers=owner.headers)
    assert created.status_code == 201
    headers = {
        "owner": owner.headers,
        "other": make_user().headers,
        "admin": make_user(admin=True).headers,
        "service": make_service().headers,
        "anonymous": {},
    }[caller]
    params = dict(endpoint.params or {})
    if caller == "admin" and not endpoint.path.startswith(("/v1/admin", "/v1/internal")):
        params["owner"] = str(owner.id)
    response = await client.request(
        endpoint.method,
        endpoint.path.format(owner=owner.id),
        json=endpoint.body,
        params=params,
        headers={**headers, **(endpoint.headers or {})},
    )
    expected = endpoint.expected[caller]
    assert response.status_code == expected, response.text
    if expected >= 400:
        assert response.headers["content-type"] == "application/problem+json"

    succeeded = expected < 400
    if name == "list" and succeeded:
        titles = [t["title"] for t in response.json()["items"]]
        assert titles == (["mine"] if VISIBLE[caller] else [])
    if name == "counts" and succeeded:
        assert response.json()["total"] == (1 if VISIBLE[caller] else 0)
    if name in ("delete_by_title", "reset") and succeeded:
        assert response.json()["deleted"] == (1 if VISIBLE[caller] else 0)
    if name == "bulk_status" and succeeded:
        assert response.json()["updated"] == (1 if VISIBLE[caller] else 0)

    after = await client.get("/v1/tasks/1", headers=owner.headers)
    if endpoint.changes_task and succeeded and caller != "other":
        assert after.status_code == 404 or after.json()["version"] == 2
    else:
        assert after.status_code == 200
        assert after.json() == created.json()
