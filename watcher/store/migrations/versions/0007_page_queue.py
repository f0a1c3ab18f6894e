"""The page queue (items waiting for their linked page before they are matched), and the tags of
the rule of each match (a merged message carries the union).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_queue",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("is_update", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("item_id"),
    )
    op.create_index("ix_page_queue_due", "page_queue", ["status", "next_attempt_at"])
    op.create_index("ix_page_queue_feed_id", "page_queue", ["feed_id"])
    with op.batch_alter_table("matches") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("tags")
    op.drop_index("ix_page_queue_feed_id", table_name="page_queue")
    op.drop_index("ix_page_queue_due", table_name="page_queue")
    op.drop_table("page_queue")
