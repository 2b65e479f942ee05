"""Feed summaries, event parsing compatibility and pagination cursors."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import orjson
import pytest
from taskmesh_activity.feed import entry_for
from taskmesh_activity.repository import ActivityRow
from taskmesh_activity.service import InvalidCursorError, decode_cursor, encode_cursor
from taskmesh_common.events import EventError, TaskCreated, encode_event, parse_event

OWNER = uuid.UUID("00000000-0000-4000-8000-000000000001")


def test_created_summary_names_number_and_title(events: Any) -> None:
    entry = entry_for(events.created(OWNER, 12, title="Pay rent"))
    assert entry.summary == "You created #12 Pay rent"
    assert (entry.type, entry.task_number, entry.title) == ("task.created", 12, "Pay rent")
    assert entry.owner_id == OWNER


@pytest.mark.parametrize(
    ("before", "after", "summary"),
    [
        ({}, {"status": "done"}, "You completed #12 Pay rent"),
        ({"status": "done"}, {"status": "todo"}, "You reopened #12 Pay rent"),
        ({}, {"status": "doing"}, "You started #12 Pay rent"),
        ({"status": "doing"}, {"status": "todo"}, "You moved #12 Pay rent to to do"),
        ({}, {"title": "Pay the rent"}, 'You renamed #12 from "Pay rent" to "Pay the rent"'),
        ({}, {"priority": 5}, "You set the priority of #12 Pay rent to 5"),
        ({}, {"due": date(2026, 12, 1)}, "You set #12 Pay rent due 2026-12-01"),
        ({"due": date(2026, 12, 1)}, {"due": None}, "You removed the due date of #12 Pay rent"),
        ({}, {"description": "monthly"}, "You edited the description of #12 Pay rent"),
        ({}, {"tags": ["home"]}, "You changed the tags of #12 Pay rent"),
        (
            {},
            {"status": "done", "priority": 1, "tags": ["x"]},
            "You completed #12 Pay rent (also changed priority, tags)",
        ),
    ],
)
def test_update_summaries(
    events: Any, before: dict[str, Any], after: dict[str, Any], summary: str
) -> None:
    event = events.updated(OWNER, 12, before={"title": "Pay rent", **before}, after=after)
    entry = entry_for(event)
    assert entry.summary == summary
    assert entry.title == event.after.title


def test_update_of_unknown_fields_lists_them(events: Any) -> None:
    event = events.updated(OWNER, 3, before={"title": "Plan"}, after={})
    event = event.model_copy(update={"changed": ["colour"]})
    assert entry_for(event).summary == "You updated #3 Plan (colour)"


def test_deleted_summary(events: Any) -> None:
    assert entry_for(events.deleted(OWNER, 4, title="Old")).summary == "You deleted #4 Old"


@pytest.mark.parametrize(
    ("deleted", "summary"),
    [
        (0, "You reset your board"),
        (1, "You reset your board (1 task removed)"),
        (7, "You reset your board (7 tasks removed)"),
    ],
)
def test_reset_adds_an_entry_without_a_task(events: Any, deleted: int, summary: str) -> None:
    entry = entry_for(events.reset(OWNER, deleted))
    assert entry.summary == summary
    assert (entry.type, entry.task_number, entry.title, entry.task_id) == (
        "tasks.reset",
        None,
        None,
        None,
    )


def test_someone_else_acting_is_an_administrator(events: Any) -> None:
    entry = entry_for(events.reset(OWNER, 2, actor=str(uuid.uuid4())))
    assert entry.summary == "An administrator reset your board (2 tasks removed)"


def test_a_service_acting_is_taskmesh(events: Any) -> None:
    entry = entry_for(events.reset(OWNER, 0, actor="service:auth"))
    assert entry.summary == "Taskmesh reset your board"


def test_summary_keeps_markup_as_plain_text(events: Any) -> None:
    entry = entry_for(events.created(OWNER, 1, title="<script>alert(1)</script>"))
    assert entry.summary == "You created #1 <script>alert(1)</script>"


def test_newer_minor_version_with_extra_fields_is_accepted(events: Any) -> None:
    body = orjson.loads(encode_event(events.created(OWNER, 2, title="Plan")))
    body["schema_version"] = "1.7"
    body["colour"] = "blue"
    body["task"]["colour"] = "blue"
    event = parse_event(orjson.dumps(body))
    assert isinstance(event, TaskCreated)
    assert entry_for(event).summary == "You created #2 Plan"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda body: body.update(schema_version="2.0"),
        lambda body: body.update(type="task.archived"),
        lambda body: body.pop("owner_id"),
        lambda body: body["task"].update(status="blocked"),
    ],
    ids=["other-major", "unknown-type", "missing-field", "bad-value"],
)
def test_incompatible_events_are_rejected(events: Any, mutate: Any) -> None:
    body = orjson.loads(encode_event(events.created(OWNER)))
    mutate(body)
    with pytest.raises(EventError):
        parse_event(orjson.dumps(body))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"\xff\xfe", b'{"type": null}'])
def test_garbage_is_an_event_error(raw: bytes) -> None:
    with pytest.raises(EventError):
        parse_event(raw)


def test_cursor_round_trip(events: Any) -> None:
    row = ActivityRow(
        id=42,
        event_id=uuid.uuid4(),
        type="task.created",
        task_number=1,
        title="t",
        summary="s",
        occurred_at=events.clock,
    )
    assert decode_cursor(encode_cursor(row)) == (events.clock, 42)


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "bm90IGEgY3Vyc29y", "MjAyNi0wMS0wMVQxMjowMDowMHwx", "w6k"]
)
def test_malformed_cursors_are_rejected(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
