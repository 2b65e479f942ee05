"""Users, refresh tokens and signing keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIMESTAMP = sa.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        # Emails are stored normalised (lower-cased), so uniqueness is case-insensitive.
        sa.Column("email", sa.Text, nullable=False, unique=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column(
            "roles",
            postgresql.ARRAY(sa.Text),
            nullable=False,
            server_default=sa.text("ARRAY['user']::text[]"),
        ),
        sa.Column("created_at", _TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", _TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.LargeBinary, primary_key=True),
        sa.Column("family_id", sa.Uuid, nullable=False, index=True),
        sa.Column(
            "user_id",
            sa.Uuid,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("created_at", _TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", _TIMESTAMP, nullable=False),
        sa.Column("used_at", _TIMESTAMP),
        sa.Column("revoked_at", _TIMESTAMP),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text, primary_key=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("activates_at", _TIMESTAMP, nullable=False),
        sa.Column("public_jwk", postgresql.JSONB, nullable=False),
        sa.Column("private_key", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("refresh_tokens")
    op.drop_table("users")
