"""Sign up, sign in, sign out and profile pages against faked auth."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

PASSWORD = "correct horse battery"
FakeServices = Any


def test_signup_page_labels_every_input(client: FlaskClient) -> None:
    page = client.get("/signup").get_data(as_text=True)
    for name in ("email", "display_name", "password", "confirm"):
        assert f'<label for="{name}"' in page
    assert "Create your account" in page


def test_signup_creates_the_account_and_signs_in(
    client: FlaskClient, fake: FakeServices, csrf: Any
) -> None:
    token = csrf(client, "/signup")
    response = client.post(
        "/signup",
        data={
            "csrf_token": token,
            "email": "grace@example.com",
            "display_name": "Grace",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    board = client.get("/")
    assert board.status_code == 200
    page = board.get_data(as_text=True)
    assert "Welcome to Taskmesh, Grace!" in page
    assert "Your board" in page
    assert "grace@example.com" in fake.users


def test_signup_field_errors_stay_next_to_the_fields(
    client: FlaskClient, fake: FakeServices, csrf: Any
) -> None:
    token = csrf(client, "/signup")
    response = client.post(
        "/signup",
        data={
            "csrf_token": token,
            "email": "g@example.com",
            "display_name": "G",
            "password": "short",
            "confirm": "other",
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="password-error"' in page
    assert "Use at least 12 characters." in page
    assert 'id="confirm-error"' in page
    assert "The passwords differ." in page
    assert 'aria-invalid="true"' in page
    assert fake.calls("POST", "/v1/users") == []


def test_signup_with_a_taken_email_says_so(
    client: FlaskClient, fake: FakeServices, ada: dict[str, Any], csrf: Any
) -> None:
    token = csrf(client, "/signup")
    response = client.post(
        "/signup",
        data={
            "csrf_token": token,
            "email": ada["email"],
            "display_name": "X",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert response.status_code == 409
    assert "An account with this email already exists." in response.get_data(as_text=True)


def test_signup_maps_backend_validation_errors_to_fields(
    client: FlaskClient, fake: FakeServices, csrf: Any, make_problem: Any
) -> None:
    def refuse(request: Any) -> Any:
        return make_problem(
            422, "invalid", errors=[{"loc": ["body", "display_name"], "msg": "Name not allowed"}]
        )

    fake.overrides[("POST", "/v1/users")] = refuse
    token = csrf(client, "/signup")
    response = client.post(
        "/signup",
        data={
            "csrf_token": token,
            "email": "x@example.com",
            "display_name": "root",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert response.status_code == 422
    assert 'id="display_name-error">Name not allowed' in response.get_data(as_text=True)


def test_signin_with_a_wrong_password_shows_an_error(
    client: FlaskClient, ada: dict[str, Any], csrf: Any
) -> None:
    token = csrf(client)
    response = client.post(
        "/signin", data={"csrf_token": token, "email": ada["email"], "password": "nope nope nope"}
    )
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 303


def test_signin_when_throttled_says_when_to_retry(
    client: FlaskClient, fake: FakeServices, ada: dict[str, Any], csrf: Any, make_problem: Any
) -> None:
    def throttled(request: Any) -> Any:
        response = make_problem(429, "slow down")
        response.headers["Retry-After"] = "30"
        return response

    fake.overrides[("POST", "/v1/sessions")] = throttled
    token = csrf(client)
    response = client.post(
        "/signin", data={"csrf_token": token, "email": ada["email"], "password": PASSWORD}
    )
    assert response.status_code == 429
    assert "Try again in 30 seconds." in response.get_data(as_text=True)


def test_signin_returns_to_a_local_next_page_only(
    client: FlaskClient, ada: dict[str, Any], csrf: Any
) -> None:
    assert client.get("/activity").headers["Location"] == "/signin?next=/activity?"
    token = csrf(client, "/signin?next=/activity")
    response = client.post(
        "/signin",
        data={
            "csrf_token": token,
            "email": ada["email"],
            "password": PASSWORD,
            "next": "/activity",
        },
    )
    assert response.headers["Location"] == "/activity"
    other = client.application.test_client()
    token = csrf(other)
    response = other.post(
        "/signin",
        data={
            "csrf_token": token,
            "email": ada["email"],
            "password": PASSWORD,
            "next": "//evil.example/x",
        },
    )
    assert response.headers["Location"] == "/"


def test_signed_in_user_visiting_signin_goes_to_the_board(signed_in: FlaskClient) -> None:
    response = signed_in.get("/signin")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_signout_revokes_the_refresh_token_and_ends_the_session(
    signed_in: FlaskClient, fake: FakeServices, csrf: Any
) -> None:
    refresh_tokens = set(fake.refresh)
    token = csrf(signed_in, "/")
    response = signed_in.post("/signout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/signin"
    assert set(fake.revoked) == refresh_tokens
    assert "You are signed out." in signed_in.get("/signin").get_data(as_text=True)
    assert signed_in.get("/").status_code == 303


def test_signout_is_not_possible_with_a_get(signed_in: FlaskClient) -> None:
    assert signed_in.get("/signout").status_code == 405
    assert signed_in.get("/").status_code == 200


def test_profile_shows_the_account(signed_in: FlaskClient, ada: dict[str, Any]) -> None:
    page = signed_in.get("/profile").get_data(as_text=True)
    assert ada["email"] in page
    assert "Change password" in page
    assert "Delete account" in page


def test_changing_the_password_keeps_the_user_signed_in(
    signed_in: FlaskClient, post: Any, fake: FakeServices, ada: dict[str, Any]
) -> None:
    new = "a much better passphrase"
    response = post(
        "/profile/password",
        {"pw-current_password": PASSWORD, "pw-new_password": new, "pw-confirm": new},
    )
    assert response.status_code == 303
    assert fake.users[ada["email"]]["password"] == new
    page = signed_in.get("/profile").get_data(as_text=True)
    assert "Your password was changed." in page


def test_changing_the_password_with_a_wrong_current_one_fails(
    post: Any, fake: FakeServices, ada: dict[str, Any]
) -> None:
    new = "a much better passphrase"
    response = post(
        "/profile/password",
        {"pw-current_password": "wrong one!!!!", "pw-new_password": new, "pw-confirm": new},
    )
    assert response.status_code == 422
    assert "The current password is wrong." in response.get_data(as_text=True)
    assert fake.users[ada["email"]]["password"] == PASSWORD


def test_deleting_the_account_needs_confirmation_and_the_password(
    signed_in: FlaskClient, post: Any, fake: FakeServices, ada: dict[str, Any]
) -> None:
    response = post("/profile/delete", {"del-password": PASSWORD})
    assert response.status_code == 422
    assert "Tick the box to confirm." in response.get_data(as_text=True)
    response = post("/profile/delete", {"del-password": "wrong password", "del-confirm": "y"})
    assert response.status_code == 422
    assert "The password is wrong." in response.get_data(as_text=True)
    response = post("/profile/delete", {"del-password": PASSWORD, "del-confirm": "y"})
    assert response.status_code == 303
    assert ada["email"] not in fake.users
    assert "Your account and all its tasks were deleted." in signed_in.get("/signin").get_data(
        as_text=True
    )
    assert signed_in.get("/").status_code == 303


def test_expired_access_token_is_refreshed_transparently(
    signed_in: FlaskClient, fake: FakeServices
) -> None:
    fake.add_task("ada@example.com", "Water the plants")
    fake.expire_access_tokens()
    response = signed_in.get("/")
    assert response.status_code == 200
    assert "Water the plants" in response.get_data(as_text=True)
    assert len(fake.calls("POST", "/v1/sessions/refresh")) == 1
    fake.requests.clear()
    signed_in.get("/")
    assert fake.calls("POST", "/v1/sessions/refresh") == []


def test_a_revoked_session_sends_the_user_to_sign_in(
    signed_in: FlaskClient, fake: FakeServices
) -> None:
    fake.expire_access_tokens()
    fake.refresh.clear()
    response = signed_in.get("/")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/signin")
    assert "Your session has ended. Please sign in again." in signed_in.get("/signin").get_data(
        as_text=True
    )


def test_tokens_never_reach_the_browser(
    client: FlaskClient, fake: FakeServices, ada: dict[str, Any], csrf: Any
) -> None:
    token = csrf(client)
    response = client.post(
        "/signin", data={"csrf_token": token, "email": ada["email"], "password": PASSWORD}
    )
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie.startswith("taskmesh_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    page = client.get("/").get_data(as_text=True)
    for secret in [*fake.access, *fake.refresh]:
        assert secret not in cookie
        assert secret not in page


def test_sign_in_rotates_the_session_id(
    client: FlaskClient, ada: dict[str, Any], login: Any
) -> None:
    client.get("/signin")
    before = client.get_cookie("taskmesh_session")
    assert before is not None
    login(client, ada["email"])
    after = client.get_cookie("taskmesh_session")
    assert after is not None
    assert after.value != before.value


def test_https_deployments_get_secure_host_prefixed_cookies(
    settings: Any, fake: FakeServices, ada: dict[str, Any]
) -> None:
    from taskmesh_web import create_app

    app = create_app(
        settings.model_copy(update={"public_url": "https://tasks.example"}),
        transport=fake.transport(),
    )
    client = app.test_client()
    response = client.get("/signin", base_url="https://tasks.example")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-taskmesh=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


def test_session_survives_without_cookie_replay_after_signout(
    client: FlaskClient, ada: dict[str, Any], csrf: Any, login: Any
) -> None:
    login(client, ada["email"])
    cookie = client.get_cookie("taskmesh_session")
    assert cookie is not None
    stolen = cookie.value
    token = csrf(client, "/")
    client.post("/signout", data={"csrf_token": token})
    replay = client.application.test_client()
    replay.set_cookie("taskmesh_session", stolen)
    assert replay.get("/").status_code == 303


def test_signup_shows_the_password_policy_next_to_the_field(client: FlaskClient, csrf: Any) -> None:
    token = csrf(client, "/signup")
    weak = "passwordpassword"
    response = client.post(
        "/signup",
        data={
            "csrf_token": token,
            "email": "w@example.com",
            "display_name": "W",
            "password": weak,
            "confirm": weak,
        },
    )
    assert response.status_code == 422
    assert 'id="password-error">This password is too common.' in response.get_data(as_text=True)


def test_changing_to_a_weak_password_explains_why(
    post: Any, fake: FakeServices, ada: dict[str, Any]
) -> None:
    weak = "passwordpassword"
    response = post(
        "/profile/password",
        {"pw-current_password": PASSWORD, "pw-new_password": weak, "pw-confirm": weak},
    )
    assert response.status_code == 422
    assert 'id="pw-new_password-error">This password is too common.' in response.get_data(
        as_text=True
    )
    assert fake.users[ada["email"]]["password"] == PASSWORD
    assert fake.calls("POST", "/v1/sessions/refresh") == []
