"""Claim marks: the lease end of the claim that last set a row's due time, on feeds, deliveries,
digests and the page queue. A row whose due time still equals it is claimed and in flight, so a
restarted process on SQLite can take back what it held when it was killed (issue 13: a crash loop
must not wait out its own leases), and a heartbeat renews only the claims that are still its own.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("feeds", "deliveries", "digests", "page_queue")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("claimed_until")
