"""The outbox holds only events not yet on the stream: the relay deletes what it published.

Marking rows published was a non-HOT update per event (`published_at` is in two partial
indexes): a new row version and three index entries, then a day of dead weight until the sweep.
The stream keeps the published events; the outbox is only the hand-off. Measured: PostgreSQL
CPU per create fell by ~70 us (docs/benchmarks/analysis.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = [
    "DELETE FROM outbox WHERE published_at IS NOT NULL",
    # Drops both partial indexes with it; the primary key serves the relay's ORDER BY id.
    "ALTER TABLE outbox DROP COLUMN published_at",
]

DOWNGRADE = [
    "ALTER TABLE outbox ADD COLUMN published_at timestamptz",
    "CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL",
    "CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
