"""The activity feed, the inbox of applied events and purged owners.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("owner_id", UUID(as_uuid=True), nullable=False),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("task_id", UUID(as_uuid=True)),
        sa.Column("task_number", sa.Integer),
        sa.Column("title", sa.Text),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    # Keyset pagination walks (occurred_at, id) newest first, per owner and optionally per task.
    op.execute("CREATE INDEX activity_owner_feed ON activity (owner_id, occurred_at DESC, id DESC)")
    op.execute(
        "CREATE INDEX activity_owner_task_feed"
        " ON activity (owner_id, task_number, occurred_at DESC, id DESC)"
    )
    # The inbox: an event id here has been applied; it is written in the same transaction.
    op.create_table(
        "processed_events",
        sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    # Owners whose feed was purged (account deleted); late events for them are dropped.
    op.create_table(
        "purged_owners",
        sa.Column("owner_id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "purged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("purged_owners")
    op.drop_table("processed_events")
    op.drop_table("activity")
