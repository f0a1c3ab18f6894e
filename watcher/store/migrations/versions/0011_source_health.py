"""Source health: the problem each feed was reported for (failing, silent, serving HTML), so each
is reported once when it starts and once when it ends, whichever replica notices.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_health",
        sa.Column("feed_id", sa.String(length=64), sa.ForeignKey("feeds.id"), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("source_health")
