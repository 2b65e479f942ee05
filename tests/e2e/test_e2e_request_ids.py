"""One request id from the gateway through every service it touches, on every log line for it."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from taskmesh.processes import wait_until

if TYPE_CHECKING:
    from conftest import Running

pytestmark = pytest.mark.e2e

SERVICE_PROCESSES = ("web", "auth", "tasks", "activity")


def lines_for(
    taskmesh: Running, since: int, request_id: str, expect: set[str]
) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
    """(the lines carrying `request_id` by service, every service line printed since `since`).

    Waits until each service in `expect` has logged the id: the log pumps copy lines a moment late.
    """

    def tagged() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for name, entry in taskmesh.log.entries(since):
            if entry.get("request_id") == request_id:
                found.setdefault(name.split(".")[0], []).append(entry)
        return found

    assert wait_until(lambda: expect <= set(tagged()), timeout=5), tagged().keys()
    time.sleep(0.3)  # and the stragglers
    entries = taskmesh.log.entries(since)
    service_lines = [(n, e) for n, e in entries if n.split(".")[0] in SERVICE_PROCESSES]
    return tagged(), service_lines


def test_api_request_id_reaches_the_service_log(taskmesh: Running) -> None:
    with taskmesh.client("127.0.0.41") as client:
        account = taskmesh.register(client, "rid")
        mark = taskmesh.log.mark()
        request_id = f"e2e-{uuid.uuid4().hex}"
        created = client.post(
            "/api/tasks/v1/tasks",
            json={"title": "traced"},
            headers=account.headers | {"X-Request-ID": request_id},
        )
    assert created.status_code == 201
    assert created.headers["x-request-id"] == request_id

    tagged, service_lines = lines_for(taskmesh, mark, request_id, {"gateway", "tasks"})

    (gateway_line,) = tagged["gateway"]
    assert gateway_line["path"] == "/api/tasks/v1/tasks"
    assert gateway_line["status"] == 201
    # Every tasks line about this request (its access line) carries the id.
    creates = [
        e for n, e in service_lines if n.startswith("tasks") and e.get("path") == "/v1/tasks"
    ]
    assert creates
    assert all(e.get("request_id") == request_id for e in creates), creates


def test_browser_request_id_reaches_web_and_the_services_it_calls(taskmesh: Running) -> None:
    with taskmesh.client("127.0.0.42") as client:
        account = taskmesh.register(client, "webrid")
        signed_in = taskmesh.sign_in_web(client, account)
        assert signed_in.status_code in {302, 303}, signed_in.text
        mark = taskmesh.log.mark()
        # Lines of the sign-in may still reach the log after the mark (its access line is
        # written once the response is out): the page's lines are those stamped after this
        # instant (same clock, the services' `ts` format) and not carrying the sign-in's id.
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        started = f"{stamp}.{int(now % 1 * 1000):03d}Z"
        sign_in_id = signed_in.headers["x-request-id"]
        request_id = f"e2e-web-{uuid.uuid4().hex}"
        board = client.get("/", headers={"X-Request-ID": request_id})
    assert board.status_code == 200
    assert board.headers["x-request-id"] == request_id

    tagged, service_lines = lines_for(taskmesh, mark, request_id, {"gateway", "web", "tasks"})
    assert any(e.get("path") == "/" and e.get("msg") == "request" for e in tagged["web"])
    assert any(
        e.get("path") == "/v1/tasks" for e in tagged["tasks"]
    )  # the web's call for the board

    # Every service line printed for this page view names the page's request id: the web
    # service's own lines and the lines of every service it called on the page's behalf.
    untagged = [
        (name, entry)
        for name, entry in service_lines
        if entry.get("msg") == "request"
        and str(entry.get("ts", "")) >= started
        and entry.get("request_id") not in {request_id, sign_in_id}
    ]
    assert untagged == []
