"""A Hypothesis state machine driving two users against the real service over HTTP.

Invariants: users only ever see their own tasks, versions only increase, numbers are unique per
owner, ETags and idempotency keys behave as documented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

USERS = (0, 1)
TITLES = st.sampled_from(["alpha", "beta", "gamma"])
KEYS = st.sampled_from(["k1", "k2", "k3"])


@dataclass
class Model:
    """What each user should see: number -> (task id, version), and used idempotency keys."""

    tasks: dict[int, tuple[str, int]] = field(default_factory=dict)
    keys: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    max_version: dict[str, int] = field(default_factory=dict)


class TasksMachine(RuleBasedStateMachine):
    def __init__(self, http: httpx.Client, make_user: Callable[..., Any]) -> None:
        super().__init__()
        self.http = http
        self.make_user = make_user

    @initialize()
    def users(self) -> None:
        self.accounts = [self.make_user() for _ in USERS]
        self.models = [Model() for _ in USERS]

    def _headers(self, user: int, **extra: str) -> dict[str, str]:
        return {**self.accounts[user].headers, **extra}

    def _seen(self, user: int, task: dict[str, Any]) -> None:
        model = self.models[user]
        previous = model.max_version.get(task["id"], 0)
        assert task["version"] >= previous, "versions must never go back"
        model.max_version[task["id"]] = task["version"]

    @rule(user=st.sampled_from(USERS), title=TITLES, key=st.none() | KEYS)
    def create(self, user: int, title: str, key: str | None) -> None:
        model = self.models[user]
        headers = self._headers(user, **({"Idempotency-Key": key} if key else {}))
        response = self.http.post("/v1/tasks", json={"title": title}, headers=headers)
        if key is not None and key in model.keys:
            first_title, first_body = model.keys[key]
            if title == first_title:
                assert response.status_code == 201
                assert response.headers["idempotent-replayed"] == "true"
                assert response.content == first_body
            else:
                assert response.status_code == 422
            return
        assert response.status_code == 201, response.text
        task = response.json()
        assert task["number"] not in model.tasks, "numbers must be unique per owner"
        assert task["version"] == 1
        model.tasks[task["number"]] = (task["id"], 1)
        self._seen(user, task)
        if key is not None:
            model.keys[key] = (title, response.content)

    @rule(user=st.sampled_from(USERS), number=st.integers(1, 8))
    def get(self, user: int, number: int) -> None:
        response = self.http.get(f"/v1/tasks/{number}", headers=self._headers(user))
        expected = self.models[user].tasks.get(number)
        if expected is None:
            assert response.status_code == 404
            return
        assert response.status_code == 200
        task = response.json()
        assert (task["id"], task["version"]) == expected
        assert response.headers["etag"] == f'"{expected[1]}"'
        self._seen(user, task)
        cached = self.http.get(
            f"/v1/tasks/{number}",
            headers=self._headers(user, **{"If-None-Match": f'"{expected[1]}"'}),
        )
        assert cached.status_code == 304

    @rule(user=st.sampled_from(USERS), number=st.integers(1, 8), stale=st.booleans(), title=TITLES)
    def update(self, user: int, number: int, stale: bool, title: str) -> None:
        model = self.models[user]
        expected = model.tasks.get(number)
        version = (expected[1] if expected else 1) - (1 if stale else 0)
        response = self.http.patch(
            f"/v1/tasks/{number}",
            json={"title": title},
            headers=self._headers(user, **{"If-Match": f'"{version}"'}),
        )
        if expected is None:
            assert response.status_code == 404
        elif stale:
            assert response.status_code == 412
            assert response.headers["etag"] == f'"{expected[1]}"'
        else:
            assert response.status_code == 200
            task = response.json()
            assert task["version"] == expected[1] + 1
            model.tasks[number] = (expected[0], task["version"])
            self._seen(user, task)

    @rule(user=st.sampled_from(USERS), number=st.integers(1, 8))
    def delete(self, user: int, number: int) -> None:
        model = self.models[user]
        expected = model.tasks.get(number)
        version = expected[1] if expected else 1
        response = self.http.delete(
            f"/v1/tasks/{number}", headers=self._headers(user, **{"If-Match": f'"{version}"'})
        )
        assert response.status_code == (404 if expected is None else 204)
        model.tasks.pop(number, None)

    @precondition(lambda self: any(m.tasks for m in self.models))
    @rule(user=st.sampled_from(USERS))
    def reset(self, user: int) -> None:
        response = self.http.post("/v1/tasks/reset", headers=self._headers(user))
        assert response.status_code == 200
        assert response.json() == {"deleted": len(self.models[user].tasks)}
        self.models[user].tasks.clear()

    @invariant()
    def users_see_exactly_their_own_tasks(self) -> None:
        if not hasattr(self, "accounts"):
            return
        for user in USERS:
            response = self.http.get(
                "/v1/tasks", params={"limit": 100}, headers=self._headers(user)
            )
            assert response.status_code == 200
            items = response.json()["items"]
            numbers = [t["number"] for t in items]
            assert len(numbers) == len(set(numbers)), "numbers must be unique per owner"
            seen = {t["number"]: (t["id"], t["version"]) for t in items}
            assert seen == self.models[user].tasks
            for task in items:
                self._seen(user, task)


@pytest.mark.slow
def test_tasks_state_machine(live_server: Any, make_user: Callable[..., Any]) -> None:
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        run_state_machine_as_test(
            lambda: TasksMachine(http, make_user),
            settings=settings(
                max_examples=40,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
