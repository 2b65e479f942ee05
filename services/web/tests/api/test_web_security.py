"""CSRF on every state-changing form, escaping, headers, and plain-words error pages."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

EMAIL = "ada@example.com"

# Every state-changing form of the UI, with data that would succeed given a valid token.
FORMS = [
    (
        "/signup",
        {
            "email": "new@example.com",
            "display_name": "N",
            "password": "p" * 12,
            "confirm": "p" * 12,
        },
    ),
    ("/signin", {"email": EMAIL, "password": "correct horse battery"}),
    ("/signout", {}),
    (
        "/profile/password",
        {
            "pw-current_password": "correct horse battery",
            "pw-new_password": "n" * 12,
            "pw-confirm": "n" * 12,
        },
    ),
    ("/profile/delete", {"del-password": "correct horse battery", "del-confirm": "y"}),
    ("/tasks", {"title": "Injected", "priority": "3"}),
    ("/tasks/1", {"title": "Changed", "priority": "3", "status": "todo", "version": "1"}),
    ("/tasks/1/status", {"status": "done", "version": "1"}),
    ("/tasks/1/delete", {"version": "1"}),
    ("/tasks/delete-by-number", {"del-number": "1"}),
    ("/tasks/delete-by-title", {"del-title": "Target"}),
    ("/reset", {"confirm": "y"}),
]


def _unchanged(fake: Any) -> None:
    [task] = fake.user_tasks(EMAIL)
    assert (task["title"], task["status"], task["version"]) == ("Target", "todo", 1)
    assert "new@example.com" not in fake.users
    assert fake.users[EMAIL]["password"] == "correct horse battery"
    assert fake.calls("POST", "/v1/sessions/logout") == []


@pytest.fixture
def victim(signed_in: FlaskClient, fake: Any) -> FlaskClient:
    fake.add_task(EMAIL, "Target")
    return signed_in


@pytest.mark.parametrize(("path", "data"), FORMS, ids=[path for path, _ in FORMS])
def test_form_without_a_csrf_token_is_refused(
    victim: FlaskClient, fake: Any, path: str, data: dict[str, str]
) -> None:
    response = victim.post(path, data=data)
    assert response.status_code == 403
    assert "did not come from this site" in response.get_data(as_text=True)
    _unchanged(fake)


@pytest.mark.parametrize(("path", "data"), FORMS, ids=[path for path, _ in FORMS])
def test_form_with_another_sessions_token_is_refused(
    victim: FlaskClient, app: Any, fake: Any, csrf: Any, path: str, data: dict[str, str]
) -> None:
    attacker = app.test_client()
    their_token = csrf(attacker)
    response = victim.post(path, data={**data, "csrf_token": their_token})
    assert response.status_code == 403
    _unchanged(fake)


@pytest.mark.parametrize(("path", "data"), FORMS, ids=[path for path, _ in FORMS])
@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}],
    ids=["foreign-origin", "fetch-metadata", "opaque-origin"],
)
def test_cross_site_form_is_refused_even_with_a_valid_token(
    victim: FlaskClient,
    fake: Any,
    csrf: Any,
    path: str,
    data: dict[str, str],
    headers: dict[str, str],
) -> None:
    token = csrf(victim, "/")
    response = victim.post(path, data={**data, "csrf_token": token}, headers=headers)
    assert response.status_code == 403
    _unchanged(fake)


def test_same_origin_form_with_a_valid_token_goes_through(
    victim: FlaskClient, fake: Any, csrf: Any
) -> None:
    token = csrf(victim, "/")
    response = victim.post(
        "/tasks/1/status",
        data={"status": "done", "version": "1", "csrf_token": token},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303
    assert fake.user_tasks(EMAIL)[0]["status"] == "done"


def test_htmx_requests_may_send_the_token_as_a_header(
    victim: FlaskClient, fake: Any, csrf: Any
) -> None:
    token = csrf(victim, "/")
    response = victim.post(
        "/tasks/1/status",
        data={"status": "doing", "version": "1"},
        headers={"X-CSRFToken": token, "HX-Request": "true", "HX-Boosted": "true"},
    )
    assert response.status_code == 303
    assert fake.user_tasks(EMAIL)[0]["status"] == "doing"
    page = victim.get("/").get_data(as_text=True)
    assert (
        "hx-headers='{&#34;X-CSRFToken&#34;: &#34;" in page
        or 'hx-headers=\'{"X-CSRFToken": "' in page
    )


@pytest.mark.parametrize(
    "path",
    ["/signout", "/tasks/1/status", "/tasks/1/delete", "/tasks/delete-by-title", "/profile/delete"],
)
def test_state_changing_routes_refuse_get(victim: FlaskClient, fake: Any, path: str) -> None:
    assert victim.get(path).status_code == 405
    _unchanged(fake)


def test_script_in_a_title_renders_inert(signed_in: FlaskClient, post: Any, fake: Any) -> None:
    evil = '<script>alert("owned")</script><img src=x onerror=alert(1)>'
    post("/tasks", {"title": evil, "description": evil, "tags": "", "priority": "3"})
    assert fake.user_tasks(EMAIL)[0]["title"] == evil
    for path in ("/", "/tasks/1/edit", "/activity"):
        page = signed_in.get(path).get_data(as_text=True)
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in page


def test_pages_carry_a_strict_content_security_policy(signed_in: FlaskClient) -> None:
    response = signed_in.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert "<script>" not in page
    assert "style=" not in page
    assert "<style" not in page
    assert "onclick" not in page


def test_htmx_is_served_locally(client: FlaskClient) -> None:
    page = client.get("/signin").get_data(as_text=True)
    assert 'src="/static/vendor/htmx-2.0.11.min.js"' in page
    for path, needle in [("vendor/htmx-2.0.11.min.js", b"htmx"), ("taskmesh.css", b":root")]:
        with client.get(f"/static/{path}") as response:
            assert response.status_code == 200
            assert needle in response.data


def test_unknown_page_is_a_friendly_404(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Page not found" in page
    assert "Traceback" not in page


def test_backend_down_gives_a_plain_words_503(signed_in: FlaskClient, fake: Any) -> None:
    fake.down.add("tasks")
    response = signed_in.get("/")
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Taskmesh is unavailable right now" in page
    assert "Traceback" not in page
    assert "ConnectError" not in page
    # A connection that was never made is retried, then given up on.
    assert len(fake.calls("GET", "/v1/tasks")) == 2


def test_backend_errors_on_writes_are_not_retried(post: Any, fake: Any, make_problem: Any) -> None:
    fake.add_task(EMAIL, "Target")
    fake.overrides[("PATCH", "/v1/tasks/1")] = lambda request: make_problem(503, "busy")
    response = post("/tasks/1/status", {"status": "done", "version": "1"})
    assert response.status_code == 503
    assert len(fake.calls("PATCH", "/v1/tasks/1")) == 1


def test_reads_are_retried_on_a_transient_503(
    signed_in: FlaskClient, fake: Any, make_problem: Any
) -> None:
    fails = iter([make_problem(503, "busy")])

    def flaky(request: Any) -> Any:
        response = next(fails, None)
        if response is not None:
            return response
        return fake._tasks(request)

    fake.overrides[("GET", "/v1/tasks/counts")] = flaky
    assert signed_in.get("/").status_code == 200
    assert len(fake.calls("GET", "/v1/tasks/counts")) == 2


def test_redis_down_gives_a_503_not_a_crash(
    fake: Any, settings: Any, ada: Any, csrf: Any, login: Any
) -> None:
    from taskmesh_web import create_app

    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/4"})
    client = create_app(broken, transport=fake.transport()).test_client()
    client.set_cookie("taskmesh_session", "some-session-id")
    response = client.get("/")
    assert response.status_code == 503
    assert "Taskmesh is unavailable right now" in response.get_data(as_text=True)
    assert client.get("/signin").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_rate_limited_backend_gives_a_429_page(
    signed_in: FlaskClient, fake: Any, make_problem: Any
) -> None:
    def limited(request: Any) -> Any:
        response = make_problem(429, "slow down")
        response.headers["Retry-After"] = "7"
        return response

    fake.overrides[("GET", "/v1/tasks")] = limited
    response = signed_in.get("/")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert "Slow down" in response.get_data(as_text=True)


def test_forbidden_backend_gives_a_403_page(
    signed_in: FlaskClient, fake: Any, make_problem: Any
) -> None:
    fake.overrides[("GET", "/v1/tasks/3")] = lambda request: make_problem(403, "no")
    response = signed_in.get("/tasks/3/edit")
    assert response.status_code == 403
    assert "Not allowed" in response.get_data(as_text=True)


def test_unexpected_errors_give_a_500_page_without_details(
    signed_in: FlaskClient, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(**_: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["taskmesh_web"].backend, "counts", explode)
    response = signed_in.get("/")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong" in page
    assert "secret internals" not in page


def test_malformed_backend_bodies_are_a_503_not_a_crash(signed_in: FlaskClient, fake: Any) -> None:
    import httpx

    fake.overrides[("GET", "/v1/tasks/counts")] = lambda request: httpx.Response(
        200, json={"todo": "many"}
    )
    assert signed_in.get("/").status_code == 503


def test_errors_inside_htmx_fragments_are_fragments(signed_in: FlaskClient, fake: Any) -> None:
    fake.overrides[("GET", "/v1/tasks/5")] = lambda request: (_ for _ in ()).throw(
        RuntimeError("x")
    )
    fake.down.add("activity")
    response = signed_in.get("/activity/panel", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Activity is unavailable right now." in response.get_data(as_text=True)
    assert "<html" not in response.get_data(as_text=True)


def test_expired_session_in_an_htmx_fragment_redirects_the_page(client: FlaskClient) -> None:
    response = client.get("/activity/panel", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/signin")


def test_an_unexpected_backend_refusal_is_a_400_page(
    signed_in: FlaskClient, fake: Any, make_problem: Any
) -> None:
    fake.overrides[("GET", "/v1/tasks")] = lambda request: make_problem(422, "no")
    response = signed_in.get("/")
    assert response.status_code == 400
    assert "That request did not make sense" in response.get_data(as_text=True)
    response = signed_in.get("/?q=x")
    assert response.status_code == 303
    del fake.overrides[("GET", "/v1/tasks")]
    assert "Those filters could not be applied" in signed_in.get("/").get_data(as_text=True)
