"""Pure functions: ETag parsing, cursors, events built from outbox rows, input models."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from taskmesh_common.events import TaskCreated, TaskDeleted, TasksReset, TaskUpdated, parse_event
from taskmesh_tasks.errors import InvalidCursorError
from taskmesh_tasks.outbox import to_event
from taskmesh_tasks.schemas import TaskCreate, TaskPatch
from taskmesh_tasks.service import decode_cursor, encode_cursor, if_match_versions, none_match


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        ('"3"', [3]),
        (' "3" , "5"', [3, 5]),
        ("*", None),
        ('W/"3"', []),
        ("3", []),
        ("", []),
        ('"99999999999"', []),
        ('"x"', []),
    ],
)
def test_if_match_uses_strong_comparison(header: str, versions: list[int] | None) -> None:
    assert if_match_versions(header) == versions


@pytest.mark.parametrize(
    ("header", "matches"),
    [('"2"', True), ('W/"2"', True), ('"1", "2"', True), ("*", True), ('"3"', False), ("", False)],
)
def test_if_none_match_uses_weak_comparison(header: str, matches: bool) -> None:
    assert none_match(header, 2) is matches


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("created", "2030-01-01 10:00:00.123456+00"),
        ("-priority", "5"),
        ("due", "infinity"),
        ("-due", "2030-02-28"),
    ],
)
def test_cursors_round_trip(sort: Any, key: str) -> None:
    cursor = encode_cursor(sort, key, 42)
    assert "=" not in cursor
    assert decode_cursor(cursor, sort) == (key, 42)


def _cursor(data: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("created", "%%%"),
        ("created", _cursor([1])),
        ("created", _cursor({"s": "created", "k": "yesterday", "n": 1})),
        ("created", _cursor({"s": "created", "k": "2030-01-01 10:00:00", "n": 1})),  # naive
        ("priority", _cursor({"s": "priority", "k": "6", "n": 1})),
        ("priority", _cursor({"s": "priority", "k": 3, "n": 1})),
        ("due", _cursor({"s": "due", "k": "2030-02-30", "n": 1})),
        ("due", _cursor({"s": "due", "k": "2030-01-01", "n": True})),
        ("due", _cursor({"s": "due", "k": "2030-01-01", "n": 2**31})),
        ("-due", _cursor({"s": "due", "k": "2030-01-01", "n": 1})),
    ],
)
def test_bad_cursors_are_refused(sort: Any, cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, sort)


def _snapshot(**changes: Any) -> str:
    task = {
        "id": "5f1c8f0e-1f7a-4a52-9a3c-6d7f1e2b3c4d",
        "owner_id": "0b7c1f7e-0000-4000-8000-000000000001",
        "number": 4,
        "title": "t",
        "description": "",
        "priority": 3,
        "status": "todo",
        "due": None,
        "tags": [],
        "version": 1,
        "created_at": "2030-01-01T00:00:00+00:00",
        "updated_at": "2030-01-01T00:00:00+00:00",
    }
    return orjson.dumps({**task, **changes}).decode()


def _row(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "type": kind,
        "owner_id": uuid.UUID("0b7c1f7e-0000-4000-8000-000000000001"),
        "actor": "someone",
        "request_id": "req-1",
        "occurred_at": datetime(2030, 1, 1, tzinfo=UTC),
        "before": None,
        "after": None,
        "deleted": None,
        **fields,
    }


def test_events_from_outbox_rows() -> None:
    created = to_event(_row("task.created", after=_snapshot()))
    assert isinstance(created, TaskCreated)
    assert created.task.number == 4
    assert created.request_id == "req-1"
    updated = to_event(
        _row("task.updated", before=_snapshot(), after=_snapshot(title="u", tags=["a"], version=2))
    )
    assert isinstance(updated, TaskUpdated)
    assert updated.changed == ["title", "tags"]
    deleted = to_event(_row("task.deleted", before=_snapshot()))
    assert isinstance(deleted, TaskDeleted)
    reset = to_event(_row("tasks.reset", deleted=7))
    assert isinstance(reset, TasksReset)
    assert reset.deleted == 7
    assert parse_event(orjson.dumps(reset.model_dump(mode="json"))) == reset


def test_inputs_never_carry_server_fields() -> None:
    for field in ("id", "owner_id", "owner", "number", "version", "created_at"):
        with pytest.raises(ValidationError):
            TaskCreate.model_validate({"title": "t", field: 1})
        with pytest.raises(ValidationError):
            TaskPatch.model_validate({"title": "t", field: 1})
    assert TaskCreate.model_validate({"title": "t", "priority": 4.0}).priority == 4
    assert TaskPatch.model_validate({"due": None, "tags": ["a", "a"]}).changes() == {
        "due": None,
        "tags": ["a"],
    }
