"""The activity feed's domain: what one task event says to the person whose tasks changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from taskmesh_common.events import TaskCreated, TaskDeleted, TaskSnapshot, TasksReset, TaskUpdated

AnyTaskEvent = TaskCreated | TaskUpdated | TaskDeleted | TasksReset

# When one update changes several fields, the summary leads with the first of these.
_FIELD_ORDER = ("status", "title", "priority", "due", "description", "tags")
_STATUS_LABEL = {"todo": "to do", "doing": "doing", "done": "done"}


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One line of an owner's activity feed; `summary` is plain text (renderers escape it)."""

    event_id: UUID
    owner_id: UUID
    type: str
    task_id: UUID | None
    task_number: int | None
    title: str | None
    summary: str
    occurred_at: datetime


def entry_for(event: AnyTaskEvent) -> FeedEntry:
    """The feed entry an event adds to its owner's feed."""
    task: TaskSnapshot | None
    if isinstance(event, TaskCreated):
        task, text = event.task, f"created {_ref(event.task)}"
    elif isinstance(event, TaskUpdated):
        task, text = event.after, _update_text(event)
    elif isinstance(event, TaskDeleted):
        task, text = event.task, f"deleted {_ref(event.task)}"
    else:
        task, text = None, _reset_text(event)
    return FeedEntry(
        event_id=event.id,
        owner_id=event.owner_id,
        type=event.type,
        task_id=task.id if task else None,
        task_number=task.number if task else None,
        title=task.title if task else None,
        summary=f"{_actor(event)} {text}",
        occurred_at=event.occurred_at,
    )


def _actor(event: AnyTaskEvent) -> str:
    # The tasks service names users by id and services as `service:<client id>`; only the owner,
    # administrators and services change a user's tasks.
    if event.actor == str(event.owner_id):
        return "You"
    return "Taskmesh" if event.actor.startswith("service:") else "An administrator"


def _ref(task: TaskSnapshot) -> str:
    return f"#{task.number} {task.title}"


def _reset_text(event: TasksReset) -> str:
    if event.deleted == 0:
        return "reset your board"
    noun = "task" if event.deleted == 1 else "tasks"
    return f"reset your board ({event.deleted} {noun} removed)"


def _update_text(event: TaskUpdated) -> str:
    before, after = event.before, event.after
    known = [name for name in _FIELD_ORDER if name in event.changed]
    others = [name for name in event.changed if name not in _FIELD_ORDER]
    if not known:
        text = f"updated {_ref(after)}"
        return f"{text} ({', '.join(others)})" if others else text
    lead, rest = known[0], known[1:] + others
    text = _change_text(lead, before, after)
    return f"{text} (also changed {', '.join(rest)})" if rest else text


def _change_text(field: str, before: TaskSnapshot, after: TaskSnapshot) -> str:
    ref = _ref(after)
    if field == "status":
        if after.status == "done":
            return f"completed {ref}"
        if before.status == "done":
            return f"reopened {ref}"
        if after.status == "doing":
            return f"started {ref}"
        return f"moved {ref} to {_STATUS_LABEL[after.status]}"
    if field == "title":
        return f'renamed #{after.number} from "{before.title}" to "{after.title}"'
    if field == "priority":
        return f"set the priority of {ref} to {after.priority}"
    if field == "due":
        return f"set {ref} due {after.due}" if after.due else f"removed the due date of {ref}"
    if field == "description":
        return f"edited the description of {ref}"
    return f"changed the tags of {ref}"
