"""Data size: one user's queries with 1,000 and with 1,000,000 tasks in the table, and plans."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from bench import client, wrk
from bench.runner import Scenario
from bench.target import Target

BULK_OWNERS = 999
PER_OWNER = 1000
DEEP_PAGE = 15

_BULK = """
INSERT INTO tasks (owner_id, number, title, description, priority, status, created_at, updated_at)
SELECT md5('bench-owner-' || o)::uuid,
       g,
       'task ' || g || ' ' || (%(words)s::text[])[1 + g %% 10],
       'about ' || (%(words)s::text[])[1 + (g / 10) %% 10] || ' and '
           || (%(words)s::text[])[1 + (g / 100) %% 10],
       1 + g %% 5,
       (%(statuses)s::text[])[1 + g %% 3],
       now() - (o * %(per_owner)s + g) * interval '1 second',
       now() - (o * %(per_owner)s + g) * interval '1 second'
FROM generate_series(1, %(owners)s) AS o, generate_series(1, %(per_owner)s) AS g
"""
_COUNTERS = """
INSERT INTO task_counters (owner_id, last_number)
SELECT md5('bench-owner-' || o)::uuid, %(per_owner)s FROM generate_series(1, %(owners)s) AS o
ON CONFLICT (owner_id) DO NOTHING
"""


def bulk_seed(tasks_db_url: str, owners: int = BULK_OWNERS, per_owner: int = PER_OWNER) -> int:
    """Insert `owners` x `per_owner` tasks straight into the tasks table; return its size."""
    params = {
        "words": list(client.WORDS),
        "statuses": list(client.STATUSES),
        "owners": owners,
        "per_owner": per_owner,
    }
    with psycopg.connect(tasks_db_url, autocommit=True) as conn:
        conn.execute(_BULK, params)
        conn.execute(_COUNTERS, params)
        conn.execute("VACUUM ANALYZE tasks")
        row = conn.execute("SELECT count(*) FROM tasks").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Queries:
    """The paths of the data-size scenarios for one user."""

    deep_cursor: str

    def paths(self) -> dict[str, list[str]]:
        """Scenario name -> paths cycled by wrk."""
        return {
            "get": [f"/v1/tasks/{n}" for n in range(1, PER_OWNER + 1)],
            "list": ["/v1/tasks?status=todo&limit=50"],
            "list_deep": [f"/v1/tasks?limit=50&cursor={self.deep_cursor}"],
            "search": ["/v1/tasks?q=bravo&limit=50"],
        }


def size_scenarios(target: Target, user: client.User, suffix: str) -> list[Scenario]:
    """get / list / list page 15 via cursor / search for `user`, direct to the tasks service."""
    cursor = client.cursor_for_page(target.urls["tasks"], user, "limit=50", DEEP_PAGE)
    queries = Queries(deep_cursor=cursor)
    servers = functools.partial(target.service_pids, "tasks")
    return [
        Scenario(
            f"{name}.{suffix}",
            target.urls["tasks"],
            functools.partial(_script, paths, user),
            servers,
            target.postgres_pids,
            "direct",
        )
        for name, paths in queries.paths().items()
    ]


def _script(paths: list[str], user: client.User) -> str:
    return wrk.script_cycle_get(paths, user.bearer())


class _Capture:
    """Stands in for an asyncpg connection: records the statement the repository runs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.calls.append((sql, args))
        return []

    async def fetchrow(self, sql: str, *args: Any) -> None:
        self.calls.append((sql, args))

    def acquire(self) -> _Capture:
        return self

    def get_max_size(self) -> int:
        return 1

    async def __aenter__(self) -> _Capture:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _statements(
    owner: UUID, deep_after: tuple[str, int] | None
) -> list[tuple[str, str, tuple[Any, ...]]]:
    """(title, SQL, arguments) of the statements the tasks repository runs for these queries."""
    from taskmesh_tasks import repository as repo

    capture = _Capture()
    repository = repo.Repository(capture)  # type: ignore[arg-type]
    titles = ["get one", "list a page of 50, status=todo"]
    await repository.get(owner=owner, number=500)
    newest = repo.PageRequest(field="created", descending=True, limit=50)
    await repository.list(owner=owner, where=repo.TaskFilter(status="todo"), page=newest)
    if deep_after is not None:
        titles.append(f"list page {DEEP_PAGE} via cursor")
        deep = repo.PageRequest(field="created", descending=True, limit=50, after=deep_after)
        await repository.list(owner=owner, where=repo.TaskFilter(), page=deep)
    titles.append("search q=bravo")
    await repository.list(owner=owner, where=repo.TaskFilter(q="bravo"), page=newest)
    return [(t, sql, args) for t, (sql, args) in zip(titles, capture.calls, strict=True)]


def query_plans(tasks_db_url: str, owner: str, deep_after: tuple[str, int] | None) -> str:
    """EXPLAIN ANALYZE of each statement, with a custom and with a generic plan, as Markdown."""
    statements = asyncio.run(_statements(UUID(owner), deep_after))
    sections = []
    with psycopg.connect(tasks_db_url, autocommit=True) as conn:
        cursor = psycopg.ClientCursor(conn)  # EXECUTE takes literals, not bound parameters
        for title, sql, args in statements:
            sections.append(f"## {title}\n\n```sql\n{sql.strip()}\n```\n")
            cursor.execute(f"PREPARE bench_plan AS {sql}")
            placeholders = ", ".join(["%s"] * len(args))
            # asyncpg prepares every statement, and after five runs PostgreSQL may switch to a
            # generic plan that cannot see the parameters: show both.
            for mode in ("force_custom_plan", "force_generic_plan"):
                cursor.execute(f"SET plan_cache_mode = {mode}")
                cursor.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_plan({placeholders})", args
                )
                plan = "\n".join(str(row[0]) for row in cursor.fetchall())
                sections.append(f"`plan_cache_mode = {mode}`:\n\n```\n{plan}\n```\n")
            cursor.execute("DEALLOCATE bench_plan")
    return "\n".join(sections)


def deep_key(tasks_db_url: str, owner: str) -> tuple[str, int] | None:
    """The keyset position (created_at as text, number) after which page 15 starts."""
    offset = (DEEP_PAGE - 1) * 50 - 1
    with psycopg.connect(tasks_db_url) as conn:
        row = conn.execute(
            "SELECT created_at::text, number FROM tasks WHERE owner_id = %s "
            "ORDER BY created_at DESC, number DESC OFFSET %s LIMIT 1",
            (owner, offset),
        ).fetchone()
    return (str(row[0]), int(row[1])) if row else None
