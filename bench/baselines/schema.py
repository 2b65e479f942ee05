"""The baselines' tables: one per app, shaped like the tasks table, in the bench database."""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

# Every baseline row belongs to this owner, so owner scoping costs what it costs the service.
OWNER = uuid.UUID("00000000-0000-4000-8000-00000000b0b0")
TABLES = ("floor_items", "peer_items", "origin_items")
WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
)
STATUSES = ("todo", "doing", "done")

_DDL = """
DROP TABLE IF EXISTS {table};
CREATE TABLE {table} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id uuid NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    priority smallint NOT NULL DEFAULT 3,
    status text NOT NULL DEFAULT 'todo',
    tags text[] NOT NULL DEFAULT '{{}}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1,
    search tsvector GENERATED ALWAYS AS (
        to_tsvector('english', title || ' ' || description)) STORED
);
CREATE INDEX ON {table} (owner_id, status, created_at DESC, id DESC);
CREATE INDEX ON {table} USING gin (search);
"""

_SEED = """
INSERT INTO {table} (owner_id, title, description, priority, status, created_at)
SELECT %(owner)s,
       'task ' || g || ' ' || (%(words)s::text[])[1 + g %% 10],
       'about ' || (%(words)s::text[])[1 + (g / 10) %% 10] || ' and '
           || (%(words)s::text[])[1 + (g / 100) %% 10],
       1 + g %% 5,
       (%(statuses)s::text[])[1 + g %% 3],
       now() - g * interval '1 minute'
FROM generate_series(1, %(rows)s) AS g
"""


def create_tables(url: str, rows: int) -> None:
    """(Re)create and seed each baseline's table with `rows` rows numbered 1..rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name in TABLES:
            table = sql.Identifier(name)
            conn.execute(sql.SQL(_DDL).format(table=table))
            params = {
                "owner": OWNER,
                "words": list(WORDS),
                "statuses": list(STATUSES),
                "rows": rows,
            }
            conn.execute(sql.SQL(_SEED).format(table=table), params)
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
