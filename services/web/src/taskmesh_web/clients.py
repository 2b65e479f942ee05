"""One small typed HTTP client for the auth, tasks and activity APIs."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from taskmesh_common.logging import request_id_var

logger = logging.getLogger("taskmesh.web.clients")

Model = TypeVar("Model", bound=BaseModel)

_RETRYABLE_STATUS = frozenset({502, 503, 504})


class User(BaseModel):
    """A Taskmesh account as auth returns it."""

    id: str
    email: str
    display_name: str
    roles: list[str] = []
    created_at: datetime | None = None
    version: int = 0


class TokenPair(BaseModel):
    """An access token and the refresh token that renews it."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int | None = None


class Task(BaseModel):
    """A task as the tasks service returns it."""

    id: str
    number: int
    title: str
    description: str = ""
    priority: int = 3
    status: str = "todo"
    due: date | None = None
    tags: list[str] = []
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int


class TaskPage(BaseModel):
    """One page of tasks and the cursor of the next one."""

    items: list[Task]
    next_cursor: str | None = None


class Counts(BaseModel):
    """How many of the caller's tasks are in each status."""

    todo: int = 0
    doing: int = 0
    done: int = 0
    total: int = 0


class ActivityItem(BaseModel):
    """One entry of the caller's activity feed."""

    id: str | int
    event_id: str | None = None
    type: str
    task_number: int | None = None
    title: str | None = None
    summary: str
    occurred_at: datetime


class ActivityPage(BaseModel):
    """One page of the activity feed, newest first."""

    items: list[ActivityItem]
    next_cursor: str | None = None


class BackendError(Exception):
    """A backend answered with a problem (or not at all)."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        errors: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail or f"backend error {status}")
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after


class BackendUnavailable(BackendError):  # noqa: N818 - reads as a state, like the HTTP phrase
    """The backend could not be reached, timed out, or said it is unavailable."""


class NotAuthenticated(BackendError):  # noqa: N818
    """The token (or the credentials) were not accepted: 401."""


class Forbidden(BackendError):  # noqa: N818
    """The caller may not do this: 403."""


class NotFound(BackendError):  # noqa: N818
    """No such resource for this caller: 404."""


class Conflict(BackendError):  # noqa: N818
    """The resource already exists or its state forbids this: 409."""


class PreconditionFailed(BackendError):  # noqa: N818
    """The version sent in `If-Match` is stale: 412."""


class InvalidInput(BackendError):  # noqa: N818
    """The backend rejected the input (400/422); `errors` says which fields."""


class RateLimited(BackendError):  # noqa: N818
    """Too many requests: 429, with `retry_after` seconds when known."""


_BY_STATUS: Mapping[int, type[BackendError]] = {
    400: InvalidInput,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: InvalidInput,
    429: RateLimited,
}


def _problem(response: httpx.Response) -> BackendError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    retry_after = response.headers.get("retry-after")
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = BackendUnavailable if response.status_code >= 500 else BackendError
    return kind(
        response.status_code,
        detail,
        errors=errors,
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Backend:
    """Calls the Taskmesh APIs through one pooled `httpx.Client`.

    Every call carries `X-Request-ID`. A connection that was never made is retried for any
    method; timeouts and 502/503/504 are retried only for calls that are safe to repeat (reads,
    and creates carrying an `Idempotency-Key`). Problems become typed :class:`BackendError`s.
    """

    def __init__(
        self,
        *,
        auth_url: str,
        tasks_url: str,
        activity_url: str,
        timeout: float = 5.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.auth_url = auth_url.rstrip("/")
        self.tasks_url = tasks_url.rstrip("/")
        self.activity_url = activity_url.rstrip("/")
        self.retries = retries
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            transport=transport,
            headers={"User-Agent": "taskmesh-web"},
        )

    def close(self) -> None:
        """Release pooled connections."""
        self.http.close()

    def _send(
        self,
        method: str,
        url: str,
        *,
        safe: bool,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        request_id = request_id_var.get()
        if request_id:
            all_headers["X-Request-ID"] = request_id
        attempt = 0
        while True:
            try:
                response = self.http.request(method, url, headers=all_headers, **kwargs)
            except httpx.ConnectError as exc:
                failure: Exception = exc
                retryable = True
            except httpx.TransportError as exc:
                failure = exc
                retryable = safe
            else:
                if response.status_code < 400:
                    return response
                if not (safe and response.status_code in _RETRYABLE_STATUS):
                    raise _problem(response)
                failure = _problem(response)
                retryable = True
            if not retryable or attempt >= self.retries:
                logger.warning(
                    "backend call failed",
                    extra={"method": method, "url": url, "error": type(failure).__name__},
                )
                if isinstance(failure, BackendError):
                    raise failure
                raise BackendUnavailable(503, "The service could not be reached.") from failure
            attempt += 1
            # Full jitter keeps a crowd of workers from retrying in lockstep.
            time.sleep(random.uniform(0, 0.1 * 2**attempt))  # noqa: S311 - not cryptographic

    @staticmethod
    def _parse(model: type[Model], response: httpx.Response) -> Model:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise BackendUnavailable(502, "A service answered with an unexpected body.") from exc

    # --- auth -------------------------------------------------------------------------------

    def register(self, *, email: str, display_name: str, password: str) -> User:
        """Create an account."""
        body = {"email": email, "display_name": display_name, "password": password}
        response = self._send("POST", f"{self.auth_url}/v1/users", safe=False, json=body)
        return self._parse(User, response)

    def login(self, *, email: str, password: str) -> TokenPair:
        """Exchange credentials for a token pair."""
        body = {"email": email, "password": password}
        response = self._send("POST", f"{self.auth_url}/v1/sessions", safe=False, json=body)
        return self._parse(TokenPair, response)

    def refresh(self, *, refresh_token: str) -> TokenPair:
        """Rotate the refresh token into a fresh pair (never retried: rotation is one-shot)."""
        response = self._send(
            "POST",
            f"{self.auth_url}/v1/sessions/refresh",
            safe=False,
            json={"refresh_token": refresh_token},
        )
        return self._parse(TokenPair, response)

    def logout(self, *, refresh_token: str) -> None:
        """Revoke the refresh token."""
        self._send(
            "POST",
            f"{self.auth_url}/v1/sessions/logout",
            safe=True,
            json={"refresh_token": refresh_token},
        )

    def me(self, *, token: str) -> User:
        """The signed-in user's account."""
        response = self._send("GET", f"{self.auth_url}/v1/me", safe=True, headers=_bearer(token))
        return self._parse(User, response)

    def change_password(self, *, token: str, current_password: str, new_password: str) -> None:
        """Change the password (auth ends every other session)."""
        body = {"current_password": current_password, "new_password": new_password}
        self._send(
            "POST", f"{self.auth_url}/v1/me/password", safe=False, headers=_bearer(token), json=body
        )

    def delete_account(self, *, token: str, password: str) -> None:
        """Delete the account; auth purges its tasks."""
        self._send(
            "DELETE",
            f"{self.auth_url}/v1/me",
            safe=False,
            headers=_bearer(token),
            json={"password": password},
        )

    # --- tasks ------------------------------------------------------------------------------

    def create_task(self, *, token: str, fields: Mapping[str, Any], idempotency_key: str) -> Task:
        """Create a task; the key makes a retried create happen once."""
        headers = {**_bearer(token), "Idempotency-Key": idempotency_key}
        response = self._send(
            "POST", f"{self.tasks_url}/v1/tasks", safe=True, headers=headers, json=dict(fields)
        )
        return self._parse(Task, response)

    def list_tasks(self, *, token: str, params: Mapping[str, str | int]) -> TaskPage:
        """One page of the caller's tasks, filtered and sorted by `params`."""
        response = self._send(
            "GET",
            f"{self.tasks_url}/v1/tasks",
            safe=True,
            headers=_bearer(token),
            params=dict(params),
        )
        return self._parse(TaskPage, response)

    def counts(self, *, token: str) -> Counts:
        """How many tasks the caller has in each status."""
        response = self._send(
            "GET", f"{self.tasks_url}/v1/tasks/counts", safe=True, headers=_bearer(token)
        )
        return self._parse(Counts, response)

    def get_task(self, *, token: str, number: int) -> Task:
        """One task by its number."""
        response = self._send(
            "GET", f"{self.tasks_url}/v1/tasks/{number}", safe=True, headers=_bearer(token)
        )
        return self._parse(Task, response)

    def update_task(
        self, *, token: str, number: int, version: int, changes: Mapping[str, Any]
    ) -> Task:
        """Change fields of a task, provided it is still at `version`."""
        headers = {**_bearer(token), "If-Match": f'"{version}"'}
        response = self._send(
            "PATCH",
            f"{self.tasks_url}/v1/tasks/{number}",
            safe=False,
            headers=headers,
            json=dict(changes),
        )
        return self._parse(Task, response)

    def delete_task(self, *, token: str, number: int, version: int) -> None:
        """Delete a task, provided it is still at `version`."""
        headers = {**_bearer(token), "If-Match": f'"{version}"'}
        self._send("DELETE", f"{self.tasks_url}/v1/tasks/{number}", safe=False, headers=headers)

    def delete_by_title(self, *, token: str, title: str) -> int:
        """Delete every task of the caller with exactly this title; returns how many."""
        response = self._send(
            "DELETE",
            f"{self.tasks_url}/v1/tasks",
            safe=True,
            headers=_bearer(token),
            params={"title": title},
        )
        return int(response.json().get("deleted", 0))

    def reset(self, *, token: str) -> int:
        """Remove all the caller's tasks and restart numbering; returns how many went."""
        response = self._send(
            "POST", f"{self.tasks_url}/v1/tasks/reset", safe=False, headers=_bearer(token)
        )
        return int(response.json().get("deleted", 0))

    # --- activity ---------------------------------------------------------------------------

    def activity(
        self, *, token: str, limit: int, cursor: str | None = None, task: int | None = None
    ) -> ActivityPage:
        """The caller's activity feed, newest first."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if task is not None:
            params["task"] = task
        response = self._send(
            "GET",
            f"{self.activity_url}/v1/activity",
            safe=True,
            headers=_bearer(token),
            params=params,
        )
        return self._parse(ActivityPage, response)

    # --- operations -------------------------------------------------------------------------

    def ping(self, base_url: str) -> None:
        """Raise unless `base_url`'s liveness endpoint answers 200."""
        response = self.http.get(f"{base_url}/healthz", timeout=2.0)
        response.raise_for_status()


def new_idempotency_key() -> str:
    """A fresh key for one create."""
    return uuid.uuid4().hex
