"""Bodies of the tasks API; requests never carry owner, id, number or version."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

Status = Literal["todo", "doing", "done"]
STATUSES: tuple[Status, ...] = ("todo", "doing", "done")
MAX_NUMBER = 2**31 - 1
MIN_PRIORITY, MAX_PRIORITY = 1, 5
TAG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
# Titles are one line of printable text; descriptions may span lines. Neither may hold NUL,
# which PostgreSQL cannot store.
TITLE_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
DESCRIPTION_PATTERN = r"^[^\x00]*$"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: Any) -> Any:
    """Accept only `YYYY-MM-DD` strings (or real dates), never numbers or datetimes."""
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    raise ValueError("must be a date in YYYY-MM-DD form")


def _integral(value: Any) -> Any:
    """Accept JSON numbers that are whole (JSON Schema counts 4.0 as an integer), not strings."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _encodable(value: Any) -> Any:
    """Reject strings that cannot be stored as UTF-8 (lone surrogates)."""
    if isinstance(value, str):
        value.encode("utf-8")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
# Constraints come before a BeforeValidator so that they stay in the JSON schema.
Title = Annotated[
    StrictStr,
    Field(min_length=1, max_length=200, pattern=TITLE_PATTERN, examples=["Write the report"]),
    BeforeValidator(_encodable),
]
Description = Annotated[
    StrictStr, Field(max_length=2000, pattern=DESCRIPTION_PATTERN), BeforeValidator(_encodable)
]
Priority = Annotated[
    StrictInt,
    Field(ge=MIN_PRIORITY, le=MAX_PRIORITY, description="1 (low) to 5 (urgent)"),
    BeforeValidator(_integral),
]
Tag = Annotated[StrictStr, Field(pattern=TAG_PATTERN, description="a lowercase word")]
Tags = Annotated[
    list[Tag],
    Field(max_length=10, description="up to 10 lowercase words; duplicates are dropped"),
]
TaskNumber = Annotated[StrictInt, Field(ge=1, le=MAX_NUMBER), BeforeValidator(_integral)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskCreate(_Input):
    """A new task; the server assigns id, number, owner and version."""

    title: Title
    description: Description = ""
    priority: Priority = 3
    status: Status = "todo"
    due: IsoDate | None = None
    tags: Tags = Field(default_factory=list)


class TaskPatch(_Input):
    """A partial update: only the fields present change."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    # SkipJsonSchema: null is not a documented value (only `due` may be cleared with null).
    title: Title | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    priority: Priority | SkipJsonSchema[None] = None
    status: Status | SkipJsonSchema[None] = None
    due: IsoDate | None = None
    tags: Tags | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _something_to_change(self) -> TaskPatch:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        for name in ("title", "description", "priority", "status", "tags"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, ready for the database."""
        values = {name: getattr(self, name) for name in sorted(self.model_fields_set)}
        if values.get("tags") is not None:
            values["tags"] = unique(values["tags"])
        return values


class BulkStatus(_Input):
    """Move several tasks to one status."""

    numbers: list[TaskNumber] = Field(min_length=1, max_length=100)
    status: Status


def unique(tags: list[str]) -> list[str]:
    """Tags in first-seen order without repeats."""
    return list(dict.fromkeys(tags))


class Task(BaseModel):
    """A task as the API returns it."""

    id: UUID
    number: int = Field(description="the per-owner #N shown to users and used in URLs")
    title: str
    description: str
    priority: int
    status: Status
    due: date | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="increases with every change; the ETag is its quoted value")


class TaskPage(BaseModel):
    """One page of tasks; pass `next_cursor` back as `cursor` for the next page."""

    items: list[Task]
    next_cursor: str | None


class Counts(BaseModel):
    """How many of the owner's tasks are in each status."""

    todo: int
    doing: int
    done: int
    total: int


class Deleted(BaseModel):
    """How many tasks were removed."""

    deleted: int


class Updated(BaseModel):
    """How many tasks changed."""

    updated: int
