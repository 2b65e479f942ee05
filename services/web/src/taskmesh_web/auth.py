"""Sign up, sign in, sign out and the profile page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import Form

from taskmesh_web import access
from taskmesh_web.access import SignInRequired, current_account, with_token
from taskmesh_web.clients import (
    BackendError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    RateLimited,
)
from taskmesh_web.context import web
from taskmesh_web.forms import (
    DeleteAccountForm,
    PasswordForm,
    SignInForm,
    SignOutForm,
    SignUpForm,
)

auth = Blueprint("auth", __name__)

View = TypeVar("View", bound=Callable[..., Any])


def signed_in(view: View) -> View:
    """Let only signed-in users through; others go to the sign-in page."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if current_account() is None:
            raise SignInRequired
        return view(*args, **kwargs)

    return cast(View, guarded)


def field_errors(form: Form, error: BackendError) -> bool:
    """Put a backend's validation errors next to the matching fields; False if none matched."""
    matched = False
    for item in error.errors:
        location = item.get("loc") or []
        name = str(location[-1]) if location else ""
        field = form._fields.get(name)
        if field is not None:
            cast(list[str], field.errors).append(str(item.get("msg") or "Invalid value."))
            matched = True
    return matched


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would make our sign-in page a phishing tool.
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and "\\" not in target:
            return target
    return url_for("board.index")


@auth.route("/signup", methods=["GET", "POST"])
def signup() -> str | Response | tuple[str, int]:
    """Create an account, then sign in with it."""
    form = SignUpForm()
    if not form.validate_on_submit():
        return _render_form("auth/signup.html", form)
    email = (form.email.data or "").strip()
    password = form.password.data or ""
    try:
        user = web().backend.register(
            email=email, display_name=(form.display_name.data or "").strip(), password=password
        )
        pair = web().backend.login(email=email, password=password)
    except Conflict:
        form.email.errors = ["An account with this email already exists."]
        return render_template("auth/signup.html", form=form), 409
    except InvalidInput as exc:
        if not field_errors(form, exc):
            # Auth's password policy answers with a plain detail ("Weak password").
            form.password.errors = [exc.detail or "Please choose another password."]
        return render_template("auth/signup.html", form=form), 422
    access.start(user, pair)
    flash(f"Welcome to Taskmesh, {user.display_name}!", "success")
    return redirect(url_for("board.index"), code=303)


@auth.route("/signin", methods=["GET", "POST"])
def signin() -> str | Response | tuple[str, int]:
    """Sign in with email and password."""
    form = SignInForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        if current_account() is not None:
            return redirect(_safe_next(form.next.data), code=303)
    if not form.validate_on_submit():
        return _render_form("auth/signin.html", form)
    backend = web().backend
    try:
        pair = backend.login(
            email=(form.email.data or "").strip(), password=form.password.data or ""
        )
        user = backend.me(token=pair.access_token)
    except (NotAuthenticated, InvalidInput):
        form.password.errors = ["Wrong email or password."]
        return render_template("auth/signin.html", form=form), 401
    except RateLimited as exc:
        wait = f" in {exc.retry_after} seconds" if exc.retry_after else " later"
        form.password.errors = [f"Too many attempts. Try again{wait}."]
        return render_template("auth/signin.html", form=form), 429
    access.start(user, pair)
    flash(f"Signed in as {user.display_name}.", "success")
    return redirect(_safe_next(form.next.data), code=303)


@auth.post("/signout")
def signout() -> Response:
    """Sign out and revoke the refresh token."""
    form = SignOutForm()
    if form.validate_on_submit():
        access.end()
        flash("You are signed out.", "success")
    return redirect(url_for("auth.signin"), code=303)


@auth.get("/profile")
@signed_in
def profile() -> str:
    """The account page: details, password change, account deletion."""
    user = with_token(lambda token: web().backend.me(token=token))
    return render_template(
        "auth/profile.html",
        user=user,
        password_form=PasswordForm(prefix="pw"),
        delete_form=DeleteAccountForm(prefix="del"),
    )


@auth.post("/profile/password")
@signed_in
def change_password() -> Response | tuple[str, int]:
    """Change the password; auth ends other sessions, so this one signs in afresh."""
    form = PasswordForm(prefix="pw")
    account = current_account()
    assert account is not None
    if not form.validate_on_submit():
        return _profile_with(password_form=form), 422
    new_password = form.new_password.data or ""
    try:
        with_token(
            lambda token: web().backend.change_password(
                token=token,
                current_password=form.current_password.data or "",
                new_password=new_password,
            ),
            retry_refused=False,
        )
    except InvalidInput as exc:
        if not field_errors(form, exc):
            form.new_password.errors = [exc.detail or "Please choose another password."]
        return _profile_with(password_form=form), 422
    except (NotAuthenticated, Forbidden):
        form.current_password.errors = ["The current password is wrong."]
        return _profile_with(password_form=form), 422
    try:
        pair = web().backend.login(email=account.email, password=new_password)
        access.replace_tokens(pair)
    except (BackendError, SignInRequired):
        access.end()
        flash("Your password was changed. Please sign in with the new one.", "success")
        return redirect(url_for("auth.signin"), code=303)
    flash("Your password was changed. Other devices were signed out.", "success")
    return redirect(url_for("auth.profile"), code=303)


@auth.post("/profile/delete")
@signed_in
def delete_account() -> Response | tuple[str, int]:
    """Delete the account and all its tasks."""
    form = DeleteAccountForm(prefix="del")
    if not form.validate_on_submit():
        return _profile_with(delete_form=form), 422
    try:
        with_token(
            lambda token: web().backend.delete_account(
                token=token, password=form.password.data or ""
            )
        )
    except (InvalidInput, NotAuthenticated, Forbidden):
        form.password.errors = ["The password is wrong."]
        return _profile_with(delete_form=form), 422
    access.end()
    flash("Your account and all its tasks were deleted.", "success")
    return redirect(url_for("auth.signin"), code=303)


def _render_form(template: str, form: Form) -> str | tuple[str, int]:
    page = render_template(template, form=form)
    return (page, 422) if request.method == "POST" else page


def _profile_with(
    *, password_form: PasswordForm | None = None, delete_form: DeleteAccountForm | None = None
) -> str:
    user = with_token(lambda token: web().backend.me(token=token))
    return render_template(
        "auth/profile.html",
        user=user,
        password_form=password_form or PasswordForm(prefix="pw", formdata=None),
        delete_form=delete_form or DeleteAccountForm(prefix="del", formdata=None),
    )
