"""Tasks, per-owner number counters, the event outbox and idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TAG = "[a-z0-9][a-z0-9-]{0,31}"

UPGRADE = [
    """
    CREATE TABLE task_counters (
        owner_id uuid PRIMARY KEY,
        last_number integer NOT NULL CONSTRAINT task_counters_last_number_check
            CHECK (last_number >= 0)
    )
    """,
    f"""
    CREATE TABLE tasks (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        owner_id uuid NOT NULL,
        number integer NOT NULL CONSTRAINT tasks_number_check CHECK (number > 0),
        title text NOT NULL CONSTRAINT tasks_title_check
            CHECK (char_length(title) BETWEEN 1 AND 200 AND title ~ '\\S'),
        description text NOT NULL DEFAULT '' CONSTRAINT tasks_description_check
            CHECK (char_length(description) <= 2000),
        priority smallint NOT NULL DEFAULT 3 CONSTRAINT tasks_priority_check
            CHECK (priority BETWEEN 1 AND 5),
        status text NOT NULL DEFAULT 'todo' CONSTRAINT tasks_status_check
            CHECK (status IN ('todo', 'doing', 'done')),
        due date,
        tags text[] NOT NULL DEFAULT '{{}}' CONSTRAINT tasks_tags_check CHECK (
            cardinality(tags) <= 10
            AND coalesce(array_ndims(tags), 1) = 1
            AND array_position(tags, NULL) IS NULL
            AND array_to_string(tags, ',') ~ '^({TAG}(,{TAG})*)?$'
        ),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version integer NOT NULL DEFAULT 1 CONSTRAINT tasks_version_check CHECK (version > 0),
        search tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english', title), 'A')
            || setweight(to_tsvector('english', description), 'B')
        ) STORED,
        CONSTRAINT tasks_owner_number_key UNIQUE (owner_id, number)
    )
    """,
    # One index per sort order, so every page is an index range scan (keyset, no OFFSET).
    "CREATE INDEX tasks_owner_created_idx ON tasks (owner_id, created_at, number)",
    "CREATE INDEX tasks_owner_priority_idx ON tasks (owner_id, priority, number)",
    """
    CREATE INDEX tasks_owner_due_idx
        ON tasks (owner_id, (coalesce(due, 'infinity'::date)), number)
    """,
    "CREATE INDEX tasks_owner_status_idx ON tasks (owner_id, status)",
    "CREATE INDEX tasks_owner_title_idx ON tasks (owner_id, title)",
    "CREATE INDEX tasks_search_idx ON tasks USING gin (search)",
    """
    CREATE TABLE outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id uuid NOT NULL DEFAULT gen_random_uuid() CONSTRAINT outbox_event_id_key UNIQUE,
        type text NOT NULL CONSTRAINT outbox_type_check
            CHECK (type IN ('task.created', 'task.updated', 'task.deleted', 'tasks.reset')),
        owner_id uuid NOT NULL,
        actor text NOT NULL,
        request_id text,
        occurred_at timestamptz NOT NULL DEFAULT now(),
        before jsonb,
        after jsonb,
        deleted integer,
        published_at timestamptz
    )
    """,
    "CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL",
    "CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL",
    """
    CREATE TABLE idempotency_keys (
        owner_id uuid NOT NULL,
        key text NOT NULL CONSTRAINT idempotency_keys_key_check
            CHECK (char_length(key) BETWEEN 1 AND 255),
        request_hash bytea NOT NULL,
        status_code smallint NOT NULL,
        response_body jsonb NOT NULL,
        response_headers jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT idempotency_keys_pkey PRIMARY KEY (owner_id, key)
    )
    """,
    "CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at)",
]

DOWNGRADE = [
    "DROP TABLE idempotency_keys",
    "DROP TABLE outbox",
    "DROP TABLE tasks",
    "DROP TABLE task_counters",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
