"""Claiming a due row with a conditional update: the one way replicas share work in the store.

Deliveries, digests and queued pages are all taken the same way: a row that is still waiting and
due gets its ``next_attempt_at`` pushed to the end of a lease, and the update's row count says
whether this process won it (another replica's identical update then matches nothing). A
claimer that dies leaves the row to come back when the lease ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (SQLAlchemy types the result as the generic one)."""
    return int(result.rowcount)


def claim_row(s: Session, table: Any, key: str, value: int, waiting: str, now: datetime, lease: timedelta) -> bool:
    """Take the row of ``table`` whose ``key`` is ``value`` if it is ``waiting`` and due; True if won."""
    columns = table.__table__.c
    result = s.execute(
        update(table)
        .where(columns[key] == value, columns.status == waiting, columns.next_attempt_at <= now)
        .values(next_attempt_at=now + lease)
    )
    return rowcount(result) == 1
