"""The real nginx in front of stand-in upstreams: routing, limits, failover, errors and headers."""

from __future__ import annotations

import gzip
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from taskmesh import gateway
from taskmesh.processes import free_port, wait_until

if TYPE_CHECKING:
    from conftest import Gateway, Standin

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-opener-policy": "same-origin",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def assert_secure(response: httpx.Response, *, csp: str = CSP) -> None:
    """The gateway's security headers, once each, and no server version."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get_list(name) == [value], name
    assert response.headers.get_list("content-security-policy") == [csp]
    assert "strict-transport-security" not in response.headers  # plain HTTP
    assert response.headers["server"] == "nginx"
    assert len(response.headers.get_list("x-request-id")) == 1


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """A problem+json body from the gateway with this status."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str)
    assert_secure(response)
    return body


def test_each_prefix_reaches_its_service_stripped(running: Gateway) -> None:
    with running.client(headers={"X-Forwarded-Prefix": "/evil"}) as client:
        for path, service, upstream_path, prefix in [
            ("/api/auth/v1/me", "auth", "/v1/me", "/api/auth"),
            ("/api/tasks/v1/tasks?status=todo", "tasks", "/v1/tasks?status=todo", "/api/tasks"),
            ("/api/activity/v1/activity", "activity", "/v1/activity", "/api/activity"),
            ("/board?page=2", "web", "/board?page=2", None),
        ]:
            response = client.get(path)

            assert response.status_code == 200, path
            echo = response.json()
            assert echo["replica"].startswith(service)
            assert echo["path"] == upstream_path
            assert echo["headers"].get("x-forwarded-prefix") == prefix
            assert_secure(response)


def test_forwarded_headers_come_from_the_gateway_only(running: Gateway) -> None:
    spoofed = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Real-IP": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "Forwarded": "for=203.0.113.9",
    }
    with running.client("127.0.0.5", headers=spoofed) as client:
        echo = client.get("/api/tasks/v1/tasks").json()["headers"]

    assert echo["x-forwarded-for"] == "127.0.0.5"
    assert echo["x-real-ip"] == "127.0.0.5"
    assert echo["x-forwarded-proto"] == "http"
    assert echo["x-forwarded-host"] == f"127.0.0.1:{running.port}"
    assert echo["host"] == f"127.0.0.1:{running.port}"
    assert "forwarded" not in echo


def test_client_request_id_is_kept_when_well_formed_and_replaced_otherwise(
    running: Gateway,
) -> None:
    with running.client() as client:
        kept = client.get("/api/tasks/v1/tasks", headers={"X-Request-ID": "trace-42.a:b_c"})
        bad = client.get("/api/tasks/v1/tasks", headers={"X-Request-ID": "no spaces <script>"})
        long = client.get("/api/tasks/v1/tasks", headers={"X-Request-ID": "a" * 129})
        none = client.get("/api/tasks/v1/tasks")
        own = client.get("/api/tasks/v1/own-headers", headers={"X-Request-ID": "mine"})

    assert kept.headers["x-request-id"] == "trace-42.a:b_c"
    assert kept.json()["headers"]["x-request-id"] == "trace-42.a:b_c"
    for response in (bad, long, none):
        minted = response.headers["x-request-id"]
        assert HEX_ID.match(minted)
        assert response.json()["headers"]["x-request-id"] == minted
    assert len({bad.headers["x-request-id"], long.headers["x-request-id"]}) == 2
    # The upstream's own echo is replaced by the gateway's id, never duplicated.
    assert own.headers.get_list("x-request-id") == ["mine"]


def test_access_log_is_json_with_request_id_and_upstream(running: Gateway) -> None:
    with running.client() as client:
        client.get("/api/tasks/v1/tasks", headers={"X-Request-ID": "log-check-1"})
        client.post("/api/tasks/v1/nope", content=b"x" * (2 * 1024 * 1024))

    # nginx logs a request when it is finished, the rejected one after its connection closed.
    assert wait_until(
        lambda: {200, 413} <= {line["status"] for line in running.log_lines()}, timeout=5
    )
    lines = running.log_lines()
    proxied = next(line for line in lines if line["request_id"] == "log-check-1")
    assert proxied["service"] == "gateway"
    assert proxied["method"] == "GET"
    assert proxied["path"] == "/api/tasks/v1/tasks"
    assert proxied["status"] == 200
    assert proxied["upstream"] in running.upstreams["tasks"]
    assert float(proxied["upstream_time"]) >= 0
    assert isinstance(proxied["request_time"], float | int)
    rejected = next(line for line in lines if line["status"] == 413)
    assert rejected["method"] == "POST"  # the original request, not the error page's redirect
    assert rejected["path"] == "/api/tasks/v1/nope"
    assert rejected["upstream"] == ""


def test_healthz_is_the_gateways_own(running: Gateway) -> None:
    response = httpx.get(f"{running.url}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_secure(response)


def test_operational_and_internal_paths_are_not_exposed(running: Gateway) -> None:
    with running.client() as client:
        for path in [
            "/api/tasks/metrics",
            "/api/auth/metrics",
            "/api/tasks/v1/internal/owners/1/tasks",
        ]:
            body = assert_problem(client.get(path), 404)
            assert body["title"] == "Not Found"
        unknown = assert_problem(client.get("/api/unknown/v1/things"), 404)
        page = client.get("/metrics")

    assert unknown["status"] == 404
    assert page.status_code == 404
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert_secure(page)


def test_api_rate_limit_is_per_client_address(
    start_gateway: Callable[..., Gateway], standin_addresses: dict[str, list[str]]
) -> None:
    limited = start_gateway(standin_addresses, gateway.Limits(api_rate=2, api_burst=5))

    with limited.client("127.0.0.2") as noisy, limited.client("127.0.0.3") as quiet:
        statuses = Counter(noisy.get("/api/tasks/v1/tasks").status_code for _ in range(12))
        # A spoofed X-Forwarded-For does not give the noisy client a fresh key.
        spoofed = [
            noisy.get("/api/tasks/v1/tasks", headers={"X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(5)
        ]
        other = quiet.get("/api/tasks/v1/tasks")
        web = noisy.get("/")  # the web zone is separate

    assert statuses[200] >= 5
    assert statuses[429] >= 5
    assert set(statuses) == {200, 429}
    rejected = [r for r in spoofed if r.status_code == 429]
    assert len(rejected) >= 4
    body = assert_problem(rejected[0], 429)
    assert body["title"] == "Too Many Requests"
    assert rejected[0].headers["retry-after"] == "1"
    assert other.status_code == 200
    assert "retry-after" not in other.headers
    assert web.status_code == 200


def test_credential_posts_share_a_strict_zone(running: Gateway) -> None:
    with running.client("127.0.0.6") as client, running.client("127.0.0.7") as other:
        logins = [client.post("/api/auth/v1/sessions", json={}).status_code for _ in range(11)]
        signup = client.post("/api/auth/v1/users", json={})
        form = client.post("/sign-in", data={"email": "a@example.com"})
        reads = [client.get("/api/auth/v1/me").status_code for _ in range(5)]
        elsewhere = other.post("/api/auth/v1/sessions", json={})

    assert logins == [200] * 11  # one plus a burst of ten
    assert_problem(signup, 429)
    assert signup.headers["retry-after"] == "6"  # 10 per minute
    assert form.status_code == 429
    assert form.headers["content-type"] == "text/html; charset=utf-8"
    assert "Too Many Requests" in form.text
    assert form.headers["retry-after"] == "6"
    assert_secure(form)
    assert reads == [200] * 5  # reading is not signing in
    assert elsewhere.status_code == 200


def test_connection_limit_per_client(
    start_gateway: Callable[..., Gateway], standin_addresses: dict[str, list[str]]
) -> None:
    limited = start_gateway(standin_addresses, gateway.Limits(connections_per_client=1))

    with (
        limited.client("127.0.0.8") as first,
        limited.client("127.0.0.8") as second,
        limited.client("127.0.0.9") as third,
        ThreadPoolExecutor(1) as pool,
    ):
        slow = pool.submit(first.get, "/api/tasks/v1/slow")
        time.sleep(0.5)  # the slow request now holds its connection
        refused = second.get("/api/tasks/v1/tasks")
        other = third.get("/api/tasks/v1/tasks")
        assert slow.result().status_code == 200
        after = second.get("/api/tasks/v1/tasks")

    assert_problem(refused, 429)
    assert other.status_code == 200
    assert after.status_code == 200


def test_oversized_body_is_413_problem(running: Gateway) -> None:
    with running.client() as client:
        response = client.post("/api/tasks/v1/tasks", content=b"{" + b" " * (1024 * 1024) + b"}")
        fits = client.post("/api/tasks/v1/tasks", content=b"x" * (512 * 1024))
        page = client.post("/tasks", content=b"x" * (2 * 1024 * 1024))

    body = assert_problem(response, 413)
    assert body["title"] == "Content Too Large"
    assert fits.status_code == 200
    assert fits.json()["body_bytes"] == 512 * 1024
    assert page.status_code == 413
    assert page.headers["content-type"] == "text/html; charset=utf-8"


def test_methods_nginx_refuses_itself_are_405_problems_with_allow(running: Gateway) -> None:
    with running.client() as client:
        api = client.request("TRACE", "/api/tasks/v1/tasks")
        page = client.request("TRACE", "/tasks")

    body = assert_problem(api, 405)
    assert body["title"] == "Method Not Allowed"
    assert api.headers.get_list("allow") == ["GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"]
    assert page.status_code == 405
    assert page.headers["content-type"] == "text/html; charset=utf-8"


def test_header_and_uri_size_limits(running: Gateway) -> None:
    with running.client() as client:
        big_header = client.get("/api/tasks/v1/tasks", headers={"X-Big": "x" * 9000})
        long_uri = client.get("/api/tasks/v1/tasks?q=" + "x" * 40000)
        long_page = client.get("/board?q=" + "x" * 40000)

    assert_problem(big_header, 400)
    assert assert_problem(long_uri, 414)["title"] == "URI Too Long"
    assert long_page.status_code == 414
    assert long_page.headers["content-type"] == "text/html; charset=utf-8"
    assert_secure(long_page)


def send_raw(gateway: Gateway, payload: bytes) -> httpx.Response:
    """Send bytes no HTTP client would and parse nginx's answer (it closes the connection)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as connection:
        connection.sendall(payload)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, content = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(name, value) for name, _, value in (line.partition(": ") for line in lines)]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=content)


END = b" HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        pytest.param(b"GET /api/tasks/v1/tasks?q=" + b"x" * 10_000 + END, 414, id="long-line"),
        pytest.param(b"GET /api/tasks/v1/tasks/1%00" + END, 400, id="decoded-nul"),
        pytest.param(b"GET /api/tasks/v1/tasks/\x00" + END, 400, id="raw-nul"),
        pytest.param(b"GET /api/tasks/%zz" + END, 400, id="bad-escape"),
        pytest.param(b"GET /api/../../etc/passwd" + END, 400, id="above-root"),
        pytest.param(b"get /api/tasks/v1/tasks" + END, 400, id="lower-case-method"),
        pytest.param(b"GET /api/tasks/v1/tasks HTTP/9.9\r\nHost: gw\r\n\r\n", 400, id="505"),
        pytest.param(
            b"POST /api/tasks/v1/tasks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
            id="501",
        ),
        # Without a path nginx cannot tell; no browser sends these, so they are API-shaped.
        pytest.param(b"GET api/tasks" + END, 400, id="no-slash"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, id="tls-hello"),
    ],
)
def test_requests_refused_before_the_path_is_known_are_problems(
    running: Gateway, payload: bytes, status: int
) -> None:
    body = assert_problem(send_raw(running, payload), status)

    assert body["title"] == ("URI Too Long" if status == 414 else "Bad Request")


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        pytest.param(b"GET /board?q=" + b"x" * 10_000 + END, 414, id="long-line"),
        pytest.param(b"GET /tasks/1%00" + END, 400, id="decoded-nul"),
        pytest.param(b"GET /tasks HTTP/9.9\r\nHost: gw\r\n\r\n", 400, id="505"),
    ],
)
def test_pages_refused_before_the_path_is_known_are_pages(
    running: Gateway, payload: bytes, status: int
) -> None:
    page = send_raw(running, payload)

    assert page.status_code == status
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>" in page.text
    assert_secure(page)


def test_requests_spread_over_replicas(running: Gateway) -> None:
    with running.client() as client:
        replicas = Counter(client.get("/api/tasks/v1/tasks").json()["replica"] for _ in range(20))

    assert set(replicas) == {"tasks-a", "tasks-b"}
    assert min(replicas.values()) >= 5


def test_killed_replica_leaves_rotation_and_gets_keep_succeeding(
    running: Gateway, standins: dict[str, list[Standin]]
) -> None:
    with running.client() as client:
        assert client.get("/api/tasks/v1/tasks").status_code == 200  # warm the keepalive pool
        standins["tasks"][1].kill()
        responses = [client.get("/api/tasks/v1/tasks") for _ in range(20)]

    assert [r.status_code for r in responses] == [200] * 20
    assert {r.json()["replica"] for r in responses} == {"tasks-a"}


def test_rolling_restart_a_second_apart_never_leaves_no_live_upstream(
    start_gateway: Callable[..., Gateway], standins: dict[str, list[Standin]]
) -> None:
    upstreams = {name: [s.address for s in replicas] for name, replicas in standins.items()}
    unlimited = start_gateway(upstreams, gateway.Limits(api_rate=100_000, api_burst=100_000))
    statuses: Counter[int] = Counter()
    rolling = threading.Event()

    def read_continuously() -> None:
        with unlimited.client() as client:
            while not rolling.is_set():
                statuses[client.get("/api/tasks/v1/tasks").status_code] += 1

    with ThreadPoolExecutor(2) as pool:
        readers = [pool.submit(read_continuously) for _ in range(2)]
        time.sleep(0.5)
        for replica in standins["tasks"]:
            # Refused while down, so marked failed even after it is back: the next one goes
            # half a second later (about a second after the previous one went).
            replica.restart(down=0.5)
            time.sleep(0.5)
        rolling.set()
        for reader in readers:
            reader.result()

    assert statuses[200] > 50  # requests kept arriving during both restarts
    assert set(statuses) == {200}, statuses


def test_upstream_timeout_is_504_problem_and_a_page_for_browsers(
    start_gateway: Callable[..., Gateway], standin_addresses: dict[str, list[str]]
) -> None:
    impatient = start_gateway(standin_addresses, gateway.Limits(upstream_timeout=1))

    with impatient.client() as client:
        read = client.get("/api/tasks/v1/hang", headers={"X-Request-ID": "hang-get"})
        write = client.post("/api/tasks/v1/hang", json={}, headers={"X-Request-ID": "hang-post"})
        page = client.get("/hang")

    assert assert_problem(read, 504)["title"] == "Gateway Timeout"
    assert_problem(write, 504)
    assert page.status_code == 504
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Gateway Timeout</h1>" in page.text
    assert_secure(page)
    assert wait_until(lambda: len(impatient.log_lines()) >= 3, timeout=5)
    upstreams = {line["request_id"]: line["upstream"] for line in impatient.log_lines()}
    # A read is tried on the other replica too (and again as a backup); a write that was sent never.
    assert set(upstreams["hang-get"].split(", ")) == set(standin_addresses["tasks"])
    assert upstreams["hang-post"] in standin_addresses["tasks"]


def test_upstream_503_is_retried_for_gets_but_never_for_posts(
    running: Gateway,
) -> None:
    with running.client() as client:
        posts = [client.post("/api/tasks/v1/fail-on/tasks-a", json={}) for _ in range(2)]
    # Both replicas were tried once by the POSTs; tasks-a is now out for fail_timeout.

    assert sorted(r.status_code for r in posts) == [200, 503]
    failed = next(r for r in posts if r.status_code == 503)
    assert failed.json()["replica"] == "tasks-a"  # the upstream's own answer, passed through


def test_gets_hide_a_failing_replica(running: Gateway) -> None:
    with running.client() as client:
        responses = [client.get("/api/tasks/v1/fail-on/tasks-a") for _ in range(6)]

    assert [r.status_code for r in responses] == [200] * 6
    assert {r.json()["replica"] for r in responses} == {"tasks-b"}


def test_all_replicas_down_is_502_problem_and_a_page_for_browsers(
    running: Gateway, standins: dict[str, list[Standin]]
) -> None:
    for replica in standins["tasks"] + standins["web"]:
        replica.kill()

    with running.client() as client:
        api = client.get("/api/tasks/v1/tasks")
        page = client.get("/board", headers={"Accept": "text/html"})

    body = assert_problem(api, 502)
    assert body["title"] == "Bad Gateway"
    assert page.status_code == 502
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Bad Gateway</h1>" in page.text
    assert_secure(page)


def test_upstream_security_policy_wins_and_other_headers_are_the_gateways(
    running: Gateway,
) -> None:
    with running.client() as client:
        response = client.get("/api/tasks/v1/own-headers")

    assert_secure(response, csp="default-src 'none'")


def test_text_responses_are_gzipped_but_not_web_pages(running: Gateway) -> None:
    gzip_please = {"Accept-Encoding": "gzip"}
    with running.client() as client:
        with client.stream("GET", "/api/tasks/v1/big", headers=gzip_please) as response:
            raw = b"".join(response.iter_raw())
        small = client.get("/api/tasks/v1/tasks", headers=gzip_please)
        asset = client.get("/static/big", headers=gzip_please)
        page = client.get("/big", headers=gzip_please)

    assert response.headers["content-encoding"] == "gzip"
    assert b"taskmesh taskmesh" in gzip.decompress(raw)
    assert "accept-encoding" in response.headers["vary"].lower()
    assert "content-encoding" not in small.headers  # below gzip_min_length
    assert asset.headers["content-encoding"] == "gzip"
    assert asset.json()["path"] == "/static/big"
    assert "content-encoding" not in page.headers  # pages hold CSRF tokens: no BREACH
    assert page.json()["path"] == "/big"


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
def test_security_headers_on_every_method(running: Gateway, method: str) -> None:
    with running.client() as client:
        response = client.request(method, "/api/tasks/v1/tasks/1")

    assert response.status_code == 200
    assert_secure(response)


def test_resolver_mode_routes_strips_and_limits_the_same(
    start_gateway: Callable[..., Gateway], standins: dict[str, list[Standin]]
) -> None:
    # IP literals need no DNS, so the re-resolving form runs here exactly as in compose.
    single = {name: [replicas[0].address] for name, replicas in standins.items()}
    resolving = start_gateway(single, resolver="127.0.0.1:9")

    with resolving.client("127.0.0.10") as client:
        tasks = client.get("/api/tasks/v1/tasks/a%20b?q=x%26y")
        web = client.get("/board")
        logins = [client.post("/api/auth/v1/sessions", json={}).status_code for _ in range(12)]
        missing = client.get("/api/tasks/metrics")

    assert tasks.json()["path"] == "/v1/tasks/a%20b?q=x%26y"
    assert tasks.json()["headers"]["x-forwarded-prefix"] == "/api/tasks"
    assert_secure(tasks)
    assert web.json()["path"] == "/board"
    assert "x-forwarded-prefix" not in web.json()["headers"]
    assert logins[:11] == [200] * 11
    assert logins[11] == 429
    assert_problem(missing, 404)


def test_hsts_only_over_tls(
    start_gateway: Callable[..., Gateway],
    standin_addresses: dict[str, list[str]],
    certificate: tuple[Path, Path],
) -> None:
    tls_port = free_port()
    cert, key = certificate
    tls = gateway.Tls(listen=f"127.0.0.1:{tls_port}", certificate=cert, certificate_key=key)
    both = start_gateway(standin_addresses, tls=tls)

    with httpx.Client(verify=False) as client:  # a self-signed test certificate
        secure = client.get(f"https://127.0.0.1:{tls_port}/api/tasks/v1/tasks")
        failed = client.get(f"https://127.0.0.1:{tls_port}/api/nothing")
        plain = client.get(f"{both.url}/api/tasks/v1/tasks")
        plain_to_tls = client.get(f"http://127.0.0.1:{tls_port}/api/tasks/v1/tasks")

    for response in (secure, failed):
        assert response.headers["strict-transport-security"].startswith("max-age=")
    assert secure.json()["headers"]["x-forwarded-proto"] == "https"
    assert "strict-transport-security" not in plain.headers
    # nginx's 497 (plain HTTP on the TLS port) is a 400 problem, not its stock page.
    assert plain_to_tls.status_code == 400
    assert plain_to_tls.headers["content-type"] == "application/problem+json"
