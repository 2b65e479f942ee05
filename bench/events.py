"""Event lag: creates at a fixed rate, then the outbox-to-activity-feed delay."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench import client, wrk
from bench.scenarios import CREATE_BODY, JSON
from bench.target import Target

CONNECTIONS = 32  # enough that the pacing, not the latency, sets the rate

_LAG = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM recorded_at - occurred_at)),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM recorded_at - occurred_at)),
       max(extract(epoch FROM recorded_at - occurred_at))
FROM activity WHERE owner_id = %s AND type = 'task.created'
"""


# A stream entry's id starts with the Redis server's clock (ms) when the relay added it.
_RELAY_LAG = """
WITH hop AS (
    SELECT extract(epoch FROM to_timestamp(split_part(p.stream_id, '-', 1)::bigint / 1000.0)
                              - a.occurred_at) AS s
    FROM activity a JOIN processed_events p USING (event_id)
    WHERE a.owner_id = %s AND a.type = 'task.created'
)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY s)
FROM hop
"""


def _seconds(value: object) -> float | None:
    return float(value) if value is not None else None  # type: ignore[arg-type]


def _count(url: str, sql: str, owner: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, (owner,)).fetchone()
    return int(row[0]) if row else 0


def measure_lag(
    target: Target, warmup_user: client.User, user: client.User, *, rate: float, duration: float
) -> dict[str, Any]:
    """Create tasks for `user` at about `rate` per second for `duration` s; return lag figures."""
    url = target.urls["tasks"]
    period_ms = CONNECTIONS * 1000 / rate

    def paced(headers_user: client.User, delay_ms: float) -> str:
        headers = headers_user.bearer() | JSON
        return wrk.script_rate("/v1/tasks", headers, CREATE_BODY, delay_ms)

    # Calibrate the pause between requests against this machine's latency, on another account.
    probe = wrk.run_wrk(url, paced(warmup_user, period_ms), duration=3, connections=CONNECTIONS)
    delay = max(0.0, period_ms - probe.mean_ms)
    result = wrk.run_wrk(url, paced(user, delay), duration=duration, connections=CONNECTIONS)
    tasks_db = target.database_url("taskmesh_tasks")
    activity_db = target.database_url("taskmesh_activity")
    written_sql = "SELECT count(*) FROM tasks WHERE owner_id = %s"
    delivered_sql = "SELECT count(*) FROM activity WHERE owner_id = %s AND type = 'task.created'"
    time.sleep(1)  # creates in flight when wrk stopped still commit
    deadline = time.monotonic() + 120
    written = delivered = 0
    while time.monotonic() < deadline:
        written = _count(tasks_db, written_sql, user.id)
        delivered = _count(activity_db, delivered_sql, user.id)
        if delivered >= written:
            break
        time.sleep(0.5)
    with psycopg.connect(activity_db) as conn:
        row = conn.execute(_LAG, (user.id,)).fetchone()
        relay = conn.execute(_RELAY_LAG, (user.id,)).fetchone()
    assert row is not None
    assert relay is not None
    return {
        "target_rate": rate,
        "duration_s": result.duration_s,
        "writes": written,
        "achieved_rate": result.rps,
        "errors": result.errors,
        "create_p99_ms": result.p99_ms,
        "delivered": delivered,
        "lag_p50_s": _seconds(row[1]),
        "lag_p99_s": _seconds(row[2]),
        "lag_max_s": _seconds(row[3]),
        # The first hop alone: commit to XADD by the tasks service's outbox relay.
        "relay_lag_p50_s": _seconds(relay[0]),
        "relay_lag_p99_s": _seconds(relay[1]),
    }
