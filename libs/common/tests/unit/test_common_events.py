"""Events: round trip, forward compatibility within a major version, other majors refused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from taskmesh_common.events import (
    EventError,
    TaskCreated,
    TaskSnapshot,
    TaskUpdated,
    encode_event,
    parse_event,
)


def _snapshot(**changes: Any) -> TaskSnapshot:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "number": 1,
        "owner_id": uuid.uuid4(),
        "title": "Write tests",
        "priority": 3,
        "status": "todo",
        "version": 1,
    }
    values.update(changes)
    return TaskSnapshot(**values)


def _created() -> TaskCreated:
    task = _snapshot()
    return TaskCreated(
        id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        owner_id=task.owner_id,
        actor=str(task.owner_id),
        task=task,
    )


def test_round_trip() -> None:
    event = _created()
    assert parse_event(encode_event(event)) == event


def test_updated_event_round_trip() -> None:
    before = _snapshot()
    after = before.model_copy(update={"status": "done", "version": 2})
    event = TaskUpdated(
        id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        owner_id=before.owner_id,
        actor="someone",
        before=before,
        after=after,
        changed=["status"],
    )
    parsed = parse_event(encode_event(event))
    assert isinstance(parsed, TaskUpdated)
    assert parsed.after.status == "done"


def test_newer_minor_version_with_extra_fields_is_accepted() -> None:
    raw = json.loads(encode_event(_created()))
    raw["schema_version"] = "1.7"
    raw["future_field"] = {"anything": True}
    raw["task"]["colour"] = "blue"
    parsed = parse_event(json.dumps(raw))
    assert isinstance(parsed, TaskCreated)
    assert parsed.schema_version == "1.7"


@pytest.mark.parametrize("version", ["2.0", "0.9", "x"])
def test_other_major_versions_are_refused(version: str) -> None:
    raw = json.loads(encode_event(_created()))
    raw["schema_version"] = version
    with pytest.raises(EventError, match="unsupported schema version"):
        parse_event(json.dumps(raw))


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{}", b'{"type": "task.exploded"}', b"[]"],
    ids=["garbage", "empty", "unknown-type", "wrong-shape"],
)
def test_malformed_events_are_refused(raw: bytes) -> None:
    with pytest.raises(EventError):
        parse_event(raw)


def test_missing_required_field_is_refused() -> None:
    raw = json.loads(encode_event(_created()))
    del raw["task"]["title"]
    with pytest.raises(EventError):
        parse_event(json.dumps(raw))
