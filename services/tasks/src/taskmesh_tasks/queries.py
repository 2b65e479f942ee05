"""The SQL of the tasks service: one statement per operation, task JSON rendered by PostgreSQL."""

from __future__ import annotations

from typing import Literal

SortField = Literal["created", "priority", "due"]


# The columns of the API's task object, in its order.
TASK_FIELDS = (
    "id",
    "number",
    "title",
    "description",
    "priority",
    "status",
    "due",
    "tags",
    "created_at",
    "updated_at",
    "version",
)


def task_json(alias: str) -> str:
    """The SQL expression rendering row `alias` as the API's task object."""
    pairs = ", ".join(f"'{name}', {alias}.{name}" for name in TASK_FIELDS)
    return f"jsonb_build_object({pairs})"


# Columns a PATCH may set; anything else never reaches SQL.
UPDATABLE = frozenset({"title", "description", "priority", "status", "due", "tags"})

# Sort keys; NULL due dates sort as 'infinity' so the key is total and keyset comparisons work.
SORT_KEYS: dict[SortField, tuple[str, str]] = {
    "created": ("t.created_at", "timestamptz"),
    "priority": ("t.priority", "smallint"),
    "due": ("coalesce(t.due, 'infinity'::date)", "date"),
}

CREATE = """
WITH lock AS MATERIALIZED (
    SELECT $9::text IS NULL OR pg_try_advisory_xact_lock($10::bigint) AS got
), prior AS MATERIALIZED (
    SELECT request_hash, status_code, response_body, response_headers
    FROM idempotency_keys WHERE owner_id = $1 AND key = $9
), go AS MATERIALIZED (
    SELECT (SELECT got FROM lock) AND NOT EXISTS (SELECT 1 FROM prior) AS ok
), counter AS (
    INSERT INTO task_counters AS c (owner_id, last_number)
    SELECT $1, 1 FROM go WHERE ok
    ON CONFLICT (owner_id) DO UPDATE SET last_number = c.last_number + 1
    RETURNING last_number
), created AS (
    INSERT INTO tasks (owner_id, number, title, description, priority, status, due, tags)
    SELECT $1, last_number, $2, $3, $4, $5, $6, $7 FROM counter
    RETURNING *
), response AS MATERIALIZED (
    SELECT {task} AS body,
           jsonb_build_object(
               'location', $8::text || t.number || $14::text, 'etag', '"' || t.version || '"'
           ) AS headers
    FROM created t
), event AS (
    INSERT INTO outbox (type, owner_id, actor, request_id, after)
    SELECT 'task.created', t.owner_id, $11, $12, to_jsonb(t) - 'search' FROM created t
), stored AS (
    INSERT INTO idempotency_keys
        (owner_id, key, request_hash, status_code, response_body, response_headers)
    SELECT $1, $9, $13, 201, body, headers FROM response WHERE $9::text IS NOT NULL
)
SELECT (SELECT got FROM lock) AS got,
       p.request_hash, p.status_code AS prior_status, p.response_body AS prior_body,
       p.response_headers AS prior_headers, r.body, r.headers
FROM (SELECT) AS one
LEFT JOIN prior p ON true
LEFT JOIN response r ON true
""".format(task=task_json("t"))  # noqa: S608 - built from constants only

STORED_RESPONSE = """
SELECT request_hash, status_code, response_body, response_headers
FROM idempotency_keys WHERE owner_id = $1 AND key = $2
"""

GET = (
    f"SELECT t.version, {task_json('t')} AS body "  # noqa: S608 - built from constants only
    "FROM tasks t WHERE owner_id = $1 AND number = $2"
)

UPDATE = """
WITH current_row AS (
    SELECT * FROM tasks WHERE owner_id = $1 AND number = $2 FOR UPDATE
), updated AS (
    UPDATE tasks t SET {sets}, version = t.version + 1, updated_at = now()
    FROM current_row c
    WHERE t.id = c.id AND ($3::int[] IS NULL OR c.version = ANY($3::int[]))
    RETURNING t.*
), event AS (
    INSERT INTO outbox (type, owner_id, actor, request_id, before, after)
    SELECT 'task.updated', u.owner_id, $4, $5, to_jsonb(c) - 'search', to_jsonb(u) - 'search'
    FROM updated u JOIN current_row c USING (id)
)
SELECT c.version AS current_version, u.version, {body} AS body
FROM current_row c LEFT JOIN updated u ON true
"""

DELETE = """
WITH current_row AS (
    SELECT * FROM tasks WHERE owner_id = $1 AND number = $2 FOR UPDATE
), gone AS (
    DELETE FROM tasks t USING current_row c
    WHERE t.id = c.id AND ($3::int[] IS NULL OR c.version = ANY($3::int[]))
    RETURNING t.*
), event AS (
    INSERT INTO outbox (type, owner_id, actor, request_id, before)
    SELECT 'task.deleted', g.owner_id, $4, $5, to_jsonb(g) - 'search' FROM gone g
)
SELECT c.version AS current_version, EXISTS (SELECT FROM gone) AS deleted FROM current_row c
"""

DELETE_BY_TITLE = """
WITH gone AS (
    DELETE FROM tasks WHERE owner_id = $1 AND title = $2 RETURNING *
), event AS (
    INSERT INTO outbox (type, owner_id, actor, request_id, before)
    SELECT 'task.deleted', g.owner_id, $3, $4, to_jsonb(g) - 'search' FROM gone g ORDER BY g.number
)
SELECT count(*)::int FROM gone
"""

BULK_STATUS = """
WITH current_row AS (
    SELECT * FROM tasks
    WHERE owner_id = $1 AND number = ANY($2::int[]) AND status <> $3
    ORDER BY number FOR UPDATE
), updated AS (
    UPDATE tasks t SET status = $3, version = t.version + 1, updated_at = now()
    FROM current_row c WHERE t.id = c.id
    RETURNING t.*
), event AS (
    INSERT INTO outbox (type, owner_id, actor, request_id, before, after)
    SELECT 'task.updated', u.owner_id, $4, $5, to_jsonb(c) - 'search', to_jsonb(u) - 'search'
    FROM updated u JOIN current_row c USING (id) ORDER BY u.number
)
SELECT count(*)::int FROM updated
"""

COUNTS = """
SELECT count(*) FILTER (WHERE status = 'todo')::int AS todo,
       count(*) FILTER (WHERE status = 'doing')::int AS doing,
       count(*) FILTER (WHERE status = 'done')::int AS done,
       count(*)::int AS total
FROM tasks WHERE owner_id = $1
"""

# Resets first lock the owner's counter, so a concurrent create either commits before the
# delete's snapshot (and is deleted) or waits and numbers from 1 afterwards. An upsert, not
# SELECT ... FOR UPDATE: a counter row still being inserted by a create (the first after a
# reset) is invisible to a SELECT, which would lock nothing and let that create's task outlive
# the reset while the counter restarts (a duplicate number).
LOCK_COUNTER = """
INSERT INTO task_counters AS c (owner_id, last_number) VALUES ($1, 0)
ON CONFLICT (owner_id) DO UPDATE SET last_number = c.last_number
"""
RESET_OWNER = """
WITH gone AS (
    DELETE FROM tasks WHERE owner_id = $1 RETURNING 1
), counter AS (
    DELETE FROM task_counters WHERE owner_id = $1
), keys AS (
    DELETE FROM idempotency_keys WHERE owner_id = $1 AND $4::boolean
), total AS (
    SELECT count(*)::int AS deleted FROM gone
), event AS (
    INSERT INTO outbox (type, owner_id, actor, request_id, deleted)
    SELECT 'tasks.reset', $1, $2, $3, deleted FROM total
)
SELECT deleted FROM total
"""

LOCK_ALL_COUNTERS = "LOCK TABLE task_counters IN EXCLUSIVE MODE"
RESET_ALL = """
WITH gone AS (
    DELETE FROM tasks RETURNING owner_id
), counters AS (
    DELETE FROM task_counters RETURNING owner_id
), owners AS (
    SELECT o.owner_id, count(g.owner_id)::int AS deleted
    FROM (SELECT owner_id FROM counters UNION SELECT owner_id FROM gone) o
    LEFT JOIN gone g USING (owner_id)
    GROUP BY o.owner_id
), event AS (
    INSERT INTO outbox (type, owner_id, actor, request_id, deleted)
    SELECT 'tasks.reset', owner_id, $1, $2, deleted FROM owners ORDER BY owner_id
)
SELECT coalesce(sum(deleted), 0)::int FROM owners
"""
