"""Operational endpoints and request ids."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def test_healthz_needs_no_dependency(client: FlaskClient, fake: Any) -> None:
    fake.down.update({"auth", "tasks", "activity"})
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_each_dependency(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json is not None
    assert {name: check["status"] for name, check in response.json["checks"].items()} == {
        "redis": "ok",
        "auth": "ok",
        "tasks": "ok",
        "activity": "ok",
    }


def test_readyz_fails_without_a_required_backend(client: FlaskClient, fake: Any) -> None:
    fake.down.add("tasks")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["checks"]["tasks"]["status"] == "fail"


def test_readyz_stays_ready_without_activity(client: FlaskClient, fake: Any) -> None:
    fake.down.add("activity")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json is not None
    assert response.json["checks"]["activity"]["status"] == "fail"


def test_metrics_count_requests_by_route(client: FlaskClient) -> None:
    client.get("/signin")
    body = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{method="GET",route="/signin",status="200"}' in body
    assert "http_request_duration_seconds_bucket" in body


def test_request_id_is_minted_or_kept_and_sent_to_backends(
    signed_in: FlaskClient, fake: Any
) -> None:
    minted = signed_in.get("/").headers["X-Request-ID"]
    assert len(minted) == 32
    fake.requests.clear()
    response = signed_in.get("/", headers={"X-Request-ID": "trace-abc.123"})
    assert response.headers["X-Request-ID"] == "trace-abc.123"
    assert fake.requests
    assert all(r.headers["X-Request-ID"] == "trace-abc.123" for r in fake.requests)
    bad = signed_in.get("/", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert bad != "bad id with spaces"
    assert len(bad) == 32
