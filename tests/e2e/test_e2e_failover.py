"""A tasks replica dies: the gateway takes it out of rotation and reads keep succeeding."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from taskmesh.processes import wait_until

if TYPE_CHECKING:
    from conftest import Running

pytestmark = pytest.mark.e2e


def test_killed_replica_leaves_rotation(disposable_taskmesh: Running) -> None:
    taskmesh = disposable_taskmesh
    replicas = {p.name: p for p in taskmesh.system.processes if p.service.name == "tasks"}
    assert len(replicas) == 2
    victim, survivor = sorted(replicas)
    tag = uuid.uuid4().hex[:8]

    with taskmesh.client("127.0.0.51") as client:
        account = taskmesh.register(client, "failover")
        made = client.post(
            "/api/tasks/v1/tasks", json={"title": "survives"}, headers=account.headers
        )
        assert made.status_code == 201
        number = made.json()["number"]
        for _ in range(6):  # both replicas hold pooled connections now
            assert client.get("/api/tasks/v1/tasks", headers=account.headers).status_code == 200

        replicas[victim].process.kill()  # a crash: no graceful shutdown
        replicas[victim].process.wait()
        mark = taskmesh.log.mark()
        reads = [
            client.get(
                f"/api/tasks/v1/tasks/{number}",
                headers=account.headers | {"X-Request-ID": f"failover-{tag}-{n}"},
            )
            for n in range(30)
        ]
        write = client.post("/api/tasks/v1/tasks", json={"title": "after"}, headers=account.headers)

    assert [r.status_code for r in reads] == [200] * 30
    assert {r.json()["title"] for r in reads} == {"survives"}
    assert write.status_code == 201  # never sent to the dead replica: nothing to retry

    def served() -> Counter[str]:
        return Counter(
            name
            for name, entry in taskmesh.log.entries(mark)
            if str(entry.get("request_id", "")).startswith(f"failover-{tag}-")
            and name.startswith("tasks")
            and entry.get("msg") == "request"
        )

    # The log pumps copy each process's lines a moment after it prints them.
    assert wait_until(lambda: sum(served().values()) >= 30, timeout=5), served()
    assert served() == Counter({survivor: 30})
