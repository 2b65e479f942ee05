"""Graceful shutdown: a request in flight when the server is told to stop still completes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
from taskmesh_tasks.config import TasksSettings


def test_in_flight_request_finishes_during_shutdown(
    tasks_settings: TasksSettings, new_server: Callable[[], Any], make_user: Callable[..., Any]
) -> None:
    user = make_user()
    server = new_server()
    with server, httpx.Client(base_url=server.url, headers=user.headers, timeout=30) as http:
        assert http.post("/v1/tasks", json={"title": "slow"}).status_code == 201
        result: dict[str, httpx.Response] = {}
        with psycopg.connect(tasks_settings.database_url) as blocker:
            # Hold the task's row lock so the PATCH below is still in flight at shutdown.
            blocker.execute(
                "SELECT 1 FROM tasks WHERE owner_id = %s AND number = 1 FOR UPDATE", (user.id,)
            )

            def patch() -> None:
                result["patch"] = http.patch(
                    "/v1/tasks/1", json={"title": "done"}, headers={"If-Match": '"1"'}
                )

            writer = threading.Thread(target=patch)
            writer.start()
            time.sleep(0.5)
            server.server.should_exit = True
            time.sleep(0.5)
            assert writer.is_alive()
            blocker.rollback()
        writer.join(timeout=10)
        assert result["patch"].status_code == 200
        server.thread.join(timeout=15)
        assert not server.thread.is_alive()
