"""The search index takes each new task at once instead of through GIN's pending list.

With `fastupdate` (the default) new entries wait in an unsorted pending list of up to 4 MB that
every search scans whole, whoever wrote them: right after other users' writes a search cost up to
twice as much (~300 -> ~600 us), and whichever insert overflowed the list paid for merging it.
Inserting directly costs ~20-35 us more per created task. PostgreSQL's documentation advises
this setting when consistent response time matters more than update speed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = [
    "ALTER INDEX tasks_owner_search_idx SET (fastupdate = off)",
    # Turning it off leaves entries already pending in the list; merge them now.
    "SELECT gin_clean_pending_list('tasks_owner_search_idx')",
]

DOWNGRADE = ["ALTER INDEX tasks_owner_search_idx RESET (fastupdate)"]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
