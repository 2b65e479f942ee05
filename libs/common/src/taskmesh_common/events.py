"""Versioned domain events published by the tasks service and consumed by others.

Compatibility: consumers accept any 1.x event and ignore fields they do not know, so producers may
add fields in a minor version; removing or changing a field needs a new major version.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

SCHEMA_MAJOR = 1
SCHEMA_VERSION = "1.0"
TASK_EVENTS_STREAM = "taskmesh:tasks:events"
EVENT_FIELD = "event"


class EventError(ValueError):
    """The event could not be parsed or is of an unsupported version."""


class _Contract(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TaskSnapshot(_Contract):
    """A task as it was at the time of the event."""

    id: UUID
    number: int
    owner_id: UUID
    title: str
    description: str = ""
    priority: int
    status: Literal["todo", "doing", "done"]
    due: date | None = None
    tags: list[str] = Field(default_factory=list)
    version: int


class _Event(_Contract):
    id: UUID
    schema_version: str = SCHEMA_VERSION
    occurred_at: datetime
    owner_id: UUID
    actor: str
    request_id: str | None = None

    @field_validator("schema_version")
    @classmethod
    def _same_major(cls, value: str) -> str:
        major, _, _ = value.partition(".")
        if major != str(SCHEMA_MAJOR):
            raise ValueError(f"unsupported schema version {value}")
        return value


class TaskCreated(_Event):
    """A task was created."""

    type: Literal["task.created"] = "task.created"
    task: TaskSnapshot


class TaskUpdated(_Event):
    """A task changed; `changed` names the fields that differ between `before` and `after`."""

    type: Literal["task.updated"] = "task.updated"
    before: TaskSnapshot
    after: TaskSnapshot
    changed: list[str]


class TaskDeleted(_Event):
    """A task was deleted."""

    type: Literal["task.deleted"] = "task.deleted"
    task: TaskSnapshot


class TasksReset(_Event):
    """All of an owner's tasks were removed and numbering restarted."""

    type: Literal["tasks.reset"] = "tasks.reset"
    deleted: int


TaskEvent = Annotated[
    TaskCreated | TaskUpdated | TaskDeleted | TasksReset, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[TaskEvent] = TypeAdapter(TaskEvent)


def encode_event(event: TaskCreated | TaskUpdated | TaskDeleted | TasksReset) -> bytes:
    """Serialise an event for the stream."""
    return orjson.dumps(event.model_dump(mode="json"))


def parse_event(raw: bytes | str) -> TaskCreated | TaskUpdated | TaskDeleted | TasksReset:
    """Parse and validate an event from the stream, or raise :class:`EventError`."""
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise EventError(str(exc.errors(include_url=False, include_input=False))) from exc
