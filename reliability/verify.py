"""What the databases hold after a run: the ground truth the suites compare acknowledgements to."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from reliability.harness import Harness
from reliability.load import Outcome


@dataclass(frozen=True)
class Writes:
    """Acknowledged creates compared with the rows in the tasks database."""

    keys: int  # distinct Idempotency-Keys sent
    acknowledged: int  # keys answered 2xx
    rows: int  # task rows carrying one of the keys
    distinct_rows: int  # keys with at least one row
    lost: int  # acknowledged task ids without a row
    duplicates: int  # rows beyond one per key


def writes(harness: Harness, outcomes: list[Outcome]) -> Writes:
    """Compare every create outcome with the tasks database."""
    creates = [o for o in outcomes if o.op == "create" and o.key is not None]
    titles = [f"rel {o.key}" for o in creates]
    acked_ids = [str(o.body["id"]) for o in creates if o.ok and isinstance(o.body, dict)]
    with psycopg.connect(harness.database_url("taskmesh_tasks")) as conn:
        counts: dict[str, int] = dict(
            conn.execute(
                "SELECT title, count(*) FROM tasks WHERE title = ANY(%s) GROUP BY title", (titles,)
            ).fetchall()
        )
        found = conn.execute(
            "SELECT count(*) FROM tasks WHERE id = ANY(%s::uuid[])", (acked_ids,)
        ).fetchone()
    present = int(found[0]) if found else 0
    return Writes(
        keys=len(set(titles)),
        acknowledged=len(acked_ids),
        rows=sum(counts.values()),
        distinct_rows=len(counts),
        lost=len(acked_ids) - present,
        duplicates=sum(counts.values()) - len(counts),
    )


def feed_entries(harness: Harness, task_ids: list[str]) -> dict[str, int]:
    """How many `task.created` entries the activity feed holds for each of `task_ids`."""
    with psycopg.connect(harness.database_url("taskmesh_activity")) as conn:
        rows = conn.execute(
            "SELECT task_id::text, count(*) FROM activity"
            " WHERE type = 'task.created' AND task_id = ANY(%s::uuid[]) GROUP BY task_id",
            (task_ids,),
        ).fetchall()
    return {task_id: int(count) for task_id, count in rows}
