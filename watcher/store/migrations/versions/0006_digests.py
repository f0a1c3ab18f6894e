"""Digests, per-channel backoff, and the snippet and named entities of each match.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "due_at", name="uq_digests_channel_due"),
    )
    op.create_index("ix_digests_due", "digests", ["status", "next_attempt_at"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("batched", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_deliveries_digest_id", ["digest_id"])
        batch.create_index("ix_deliveries_channel_sent", ["channel", "sent_at"])
    with op.batch_alter_table("channel_health") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("matches") as batch:
        batch.add_column(sa.Column("snippet", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("entities", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("entities")
        batch.drop_column("snippet")
    with op.batch_alter_table("channel_health") as batch:
        batch.drop_column("paused_until")
        batch.drop_column("failures")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_channel_sent")
        batch.drop_index("ix_deliveries_digest_id")
        batch.drop_column("batched")
        batch.drop_column("digest_id")
    op.drop_index("ix_digests_due", table_name="digests")
    op.drop_table("digests")
