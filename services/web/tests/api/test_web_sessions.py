"""Server-side sessions: concurrent token refresh and session storage in Redis."""

from __future__ import annotations

import threading
from typing import Any

import redis
from flask.testing import FlaskClient

COOKIE = "taskmesh_session"


def test_concurrent_requests_of_one_session_refresh_once(
    signed_in: FlaskClient, app: Any, fake: Any
) -> None:
    fake.add_task("ada@example.com", "Shared")
    fake.expire_access_tokens()
    cookie = signed_in.get_cookie(COOKIE)
    assert cookie is not None
    clients = [app.test_client() for _ in range(6)]
    for client in clients:
        client.set_cookie(COOKIE, cookie.value)
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def load(client: FlaskClient) -> None:
        start.wait()
        statuses.append(client.get("/").status_code)

    threads = [threading.Thread(target=load, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Refresh tokens rotate: a second refresh with the old one would end the session.
    assert statuses == [200] * len(clients)
    assert len(fake.calls("POST", "/v1/sessions/refresh")) == 1


def test_sessions_live_in_redis_under_a_hash_of_the_cookie(
    signed_in: FlaskClient, redis_url: str
) -> None:
    cookie = signed_in.get_cookie(COOKIE)
    assert cookie is not None
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key.decode() for key in client.scan_iter("taskmesh:web:session:*")]
        assert keys
        assert all(cookie.value not in key for key in keys)
        ttl = client.ttl(keys[0])
        assert 0 < ttl <= 14 * 24 * 3600
    finally:
        client.close()


def test_a_forged_or_unknown_session_cookie_is_a_new_anonymous_session(
    client: FlaskClient,
) -> None:
    client.set_cookie(COOKIE, "made-up-session-id")
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/signin")
    client.set_cookie(COOKIE, "x" * 1000)
    assert client.get("/signin").status_code == 200
