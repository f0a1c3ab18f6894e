"""Feeds managed from the command line: where each feed is defined, whether it is paused, and the
settings of a feed added with `watcher feeds add` or `import` (a config feed keeps its settings in
the config file).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every feed so far came from a config file.
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), nullable=False, server_default="config"))
        batch.add_column(sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("interval_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("full_text", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("full_text")
        batch.drop_column("tags")
        batch.drop_column("interval_seconds")
        batch.drop_column("paused")
        batch.drop_column("source")
