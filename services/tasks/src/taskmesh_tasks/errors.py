"""What can go wrong with a task request, independent of HTTP (routes map these to problems)."""

from __future__ import annotations


class TasksError(Exception):
    """Base of every expected failure of a task operation."""


class TaskNotFoundError(TasksError):
    """No such task for this owner (another owner's task is indistinguishable from none)."""


class VersionMismatchError(TasksError):
    """The task changed since the client read it (`If-Match` did not match)."""

    def __init__(self, current_version: int) -> None:
        super().__init__(f"the task is at version {current_version}")
        self.current_version = current_version


class IdempotencyKeyReusedError(TasksError):
    """The idempotency key was already used with a different request body."""


class IdempotencyKeyInFlightError(TasksError):
    """A request with the same idempotency key is still being processed."""


class InvalidCursorError(TasksError):
    """The pagination cursor is malformed or belongs to another sort order."""


class InvalidTaskError(TasksError):
    """The task would break a database rule the request validation did not catch."""


class ConflictError(TasksError):
    """A concurrent change won; retrying the request is safe."""
