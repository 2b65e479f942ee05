"""RFC 9457 problem details: one error shape for every Taskmesh API."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):  # noqa: N818 - it is the RFC's name for the thing
    """An error that maps to an `application/problem+json` response."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions
        super().__init__(detail or self.title)

    def to_dict(self, *, instance: str | None = None) -> dict[str, Any]:
        """The JSON body of this problem."""
        return problem_body(
            self.status,
            title=self.title,
            detail=self.detail,
            type_=self.type,
            instance=instance,
            **self.extensions,
        )


def problem_body(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """Build a problem details object; `title` defaults to the HTTP reason phrase."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return body
