"""Full-text search index keyed by owner, so a search never reads other owners' matches.

asyncpg prepares every statement, and after five runs PostgreSQL may switch to a generic plan,
which cannot see the owner or the query text. With a GIN index on `search` alone that plan
combined it with the owner index (`BitmapAnd`): every matching row of every owner was read, and
a search got slower with the size of the whole table. A GIN index on (owner_id, search) (the
`btree_gin` extension provides GIN support for uuid) answers both conditions in one scan.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = [
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE INDEX tasks_owner_search_idx ON tasks USING gin (owner_id, search)",
    "DROP INDEX tasks_search_idx",
]

DOWNGRADE = [
    "CREATE INDEX tasks_search_idx ON tasks USING gin (search)",
    "DROP INDEX tasks_owner_search_idx",
    "DROP EXTENSION IF EXISTS btree_gin",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
