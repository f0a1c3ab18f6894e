"""Decisions: every match is recorded with what was decided; alert keys make "once per story"
a constraint; item revisions; silences.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("decision", sa.String(length=24), nullable=False, server_default="alerted"))
        batch_op.add_column(sa.Column("decision_reason", sa.Text(), nullable=True))
        batch_op.drop_constraint("uq_matches_rule_fingerprint", type_="unique")
        batch_op.create_unique_constraint("uq_matches_rule_item_revision", ["rule_id", "item_id", "revision"])
        batch_op.create_index("ix_matches_rule_decision", ["rule_id", "decision", "matched_at"], unique=False)
    op.create_table(
        "alert_keys",
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("match_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["match_id"], ["matches.id"]),
        sa.PrimaryKeyConstraint("rule_id", "fingerprint"),
    )
    # Matches recorded before this revision all alerted: they are the first alert keys.
    op.execute(
        "INSERT INTO alert_keys (rule_id, fingerprint, match_id, created_at) "
        "SELECT rule_id, fingerprint, id, matched_at FROM matches"
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=80), nullable=True),
        sa.Column("match_text", sa.Text(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.create_index("ix_silences_ends_at", ["ends_at"], unique=False)


def downgrade() -> None:
    op.drop_table("silences")
    op.drop_table("alert_keys")
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.drop_index("ix_matches_rule_decision")
        batch_op.drop_constraint("uq_matches_rule_item_revision", type_="unique")
        batch_op.create_unique_constraint("uq_matches_rule_fingerprint", ["rule_id", "fingerprint"])
        batch_op.drop_column("decision_reason")
        batch_op.drop_column("decision")
        batch_op.drop_column("revision")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("changed_at")
        batch_op.drop_column("revision")
