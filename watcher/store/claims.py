"""Claiming a due row with a conditional update: the one way replicas share work in the store.

Feeds, deliveries, digests and queued pages are all taken the same way: a row that is still
waiting and due gets its due time pushed to the end of a lease, and the update's row count says
whether this process won it (another replica's identical update then matches nothing). The
claim also writes the lease end to ``claimed_until``; while the due time still equals it the row
is claimed and in flight, and any later write of the due time (sent, retried, polled) ends the
claim without touching the mark. That is what lets a heartbeat renew only its own claims, and a
restarted process on SQLite (the only process) take back at once what it held when it was
killed, instead of waiting out its own leases (issue 13).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from watcher.errors import StoreError


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (SQLAlchemy types the result as the generic one)."""
    return int(result.rowcount)


def claim_row(s: Session, table: Any, key: str, value: int, waiting: str, now: datetime, lease: timedelta) -> bool:
    """Take the row of ``table`` whose ``key`` is ``value`` if it is ``waiting`` and due; True if won."""
    columns = table.__table__.c
    until = now + lease
    result = s.execute(
        update(table)
        .where(columns[key] == value, columns.status == waiting, columns.next_attempt_at <= now)
        .values(next_attempt_at=until, claimed_until=until)
    )
    return rowcount(result) == 1


def renew_rows(
    s: Session,
    table: Any,
    key: str,
    values: Collection[Any],
    *,
    due: str,
    waiting: str | None,
    until: datetime,
    renewed: datetime,
) -> int:
    """Move the claims on ``values`` that still end at ``until`` (ours, in flight) to ``renewed``.

    A row whose work finished has a new due time or status and no longer matches, so it keeps it.
    """
    if not values:
        return 0
    columns = table.__table__.c
    stmt = update(table).where(columns[key].in_(sorted(values)), columns[due] == until, columns.claimed_until == until)
    if waiting is not None:
        stmt = stmt.where(columns.status == waiting)
    return rowcount(s.execute(stmt.values({due: renewed, "claimed_until": renewed})))


def release_rows(s: Session, table: Any, *, due: str, waiting: str | None, now: datetime) -> int:
    """Make every row still claimed (due time equal to its claim mark) due at ``now``. Only for a
    process that knows no other is running: it would hand a live claimer's work out twice."""
    columns = table.__table__.c
    stmt = update(table).where(columns.claimed_until.is_not(None), columns[due] == columns.claimed_until)
    if waiting is not None:
        stmt = stmt.where(columns.status == waiting)
    return rowcount(s.execute(stmt.values({due: now, "claimed_until": None})))


async def keep_claimed(
    renew: Callable[[datetime, datetime], int],
    until: datetime,
    lease: timedelta,
    clock: Callable[[], datetime],
    on_error: Callable[[StoreError], None],
) -> None:
    """Renew a set of claims every third of ``lease`` until cancelled (the work is done).

    ``renew(until, renewed)`` moves the claims still ending at ``until``; work already finished
    has its own due time and is left alone. A renewal that fails is reported and retried on the
    next beat: meanwhile the lease runs on, and another replica may take the work over.
    """
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        renewed = clock() + lease
        try:
            await asyncio.to_thread(renew, until, renewed)
        except StoreError as exc:
            on_error(exc)
            continue
        until = renewed


@asynccontextmanager
async def claims_held(
    renew: Callable[[datetime, datetime], int],
    until: datetime,
    lease: timedelta,
    clock: Callable[[], datetime],
    on_error: Callable[[StoreError], None],
) -> AsyncIterator[None]:
    """Keep claims renewed for the duration of a ``with`` block (``keep_claimed`` as a task)."""
    beat = asyncio.create_task(keep_claimed(renew, until, lease, clock, on_error))
    try:
        yield
    finally:
        beat.cancel()
        with suppress(asyncio.CancelledError):
            await beat
