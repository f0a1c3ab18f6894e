"""Stories: items clustered across feeds, the term index that finds them, and the story and
kind of each alert.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_official", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stories_last_seen_at"), ["last_seen_at"], unique=False)
    op.create_table(
        "story_items",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.String(length=64), nullable=False),
        sa.Column("is_official", sa.Boolean(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("parties", sa.JSON(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"]),
        sa.PrimaryKeyConstraint("item_id"),
    )
    with op.batch_alter_table("story_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_story_items_story_id"), ["story_id"], unique=False)
    op.create_table(
        "story_terms",
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"]),
        sa.PrimaryKeyConstraint("term", "item_id"),
    )
    with op.batch_alter_table("story_terms", schema=None) as batch_op:
        batch_op.create_index("ix_story_terms_term_seen", ["term", "seen_at"], unique=False)
        batch_op.create_index("ix_story_terms_seen", ["seen_at"], unique=False)
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index("ix_items_feed_link", ["feed_id", "link"], unique=False)
        batch_op.create_index("ix_items_link", ["link"], unique=False)
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("story_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("alert_kind", sa.String(length=16), nullable=False, server_default="first"))


def downgrade() -> None:
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.drop_column("alert_kind")
        batch_op.drop_column("story_id")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_link")
        batch_op.drop_index("ix_items_feed_link")
    op.drop_table("story_terms")
    op.drop_table("story_items")
    op.drop_table("stories")
