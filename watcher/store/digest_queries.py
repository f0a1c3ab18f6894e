"""Digest queries: open a digest for a scheduled time, claim it, and record how its send went.

A digest channel's deliveries wait as ordinary pending rows (so a restart loses none). At the
scheduled time one replica opens the digest (the ``(channel, due_at)`` constraint decides which)
and, in the same transaction, collects every waiting row into it. From then on the digest is
retried like a delivery, and its rows are marked sent together with it.
Mixed into ``Store``; like the rest of the store, the only code that writes these tables.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlmodel import Session, col

from watcher.model import Alert, DeliveryStatus, Digest
from watcher.store.claims import claim_row
from watcher.store.outbox_queries import channel_recovered
from watcher.store.schema import DeliveryRow, DigestRow

PENDING = DeliveryStatus.PENDING.value
SENT = DeliveryStatus.SENT.value
FAILED = DeliveryStatus.FAILED.value


@dataclass(frozen=True, slots=True)
class Waiting:
    """A digest channel's state: its oldest uncollected alert, and its latest digest's time."""

    channel: str
    oldest_at: datetime
    last_due_at: datetime | None


class DigestQueries:
    """Mixed into Store; relies on its session, its insert-or-ignore and the alerts view."""

    _session: Callable[[], AbstractContextManager[Session]]
    _insert: Callable[[Any], Any]
    _alerts: Callable[[Session, Sequence[int]], list[Alert]]

    def waiting_for_digest(self, digest_channels: Collection[str], others: Collection[str] = ()) -> list[Waiting]:
        """Channels with alerts waiting for a digest, with what decides their next digest time.

        ``digest_channels`` send everything as digests; ``others`` (immediate channels) only
        the rows marked ``batched`` (follow-ups and throttle surplus that rules send as digests).
        """
        if not digest_channels and not others:
            return []
        with self._session() as s:
            oldest = s.execute(
                select(col(DeliveryRow.channel), func.min(col(DeliveryRow.created_at)))
                .where(col(DeliveryRow.status) == PENDING, col(DeliveryRow.digest_id).is_(None))
                .where(_waiting(digest_channels, others))
                .group_by(col(DeliveryRow.channel))
            ).all()
            if not oldest:
                return []
            last = dict(
                s.execute(
                    select(col(DigestRow.channel), func.max(col(DigestRow.due_at)))
                    .where(col(DigestRow.channel).in_([c for c, _ in oldest]))
                    .group_by(col(DigestRow.channel))
                ).all()
            )
            return [Waiting(c, _utc(at), _aware(last.get(c))) for c, at in oldest if at is not None]

    def open_digest(self, channel: str, due_at: datetime, now: datetime, *, batched_only: bool = False) -> int:
        """Open the digest for ``due_at`` and collect every alert waiting for it; return how many.

        ``batched_only``: an immediate channel, whose digest takes only the rows marked batched.
        0 when another replica opened it first, or when nothing was waiting after all.
        """
        with self._session() as s:
            digest_id = s.execute(
                self._insert(DigestRow)
                .values(
                    channel=channel,
                    due_at=due_at,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["channel", "due_at"])
                .returning(col(DigestRow.id))
            ).scalar_one_or_none()
            if digest_id is None:
                return 0
            collect = (
                update(DeliveryRow)
                .where(col(DeliveryRow.channel) == channel, col(DeliveryRow.status) == PENDING)
                .where(col(DeliveryRow.digest_id).is_(None), col(DeliveryRow.created_at) <= now)
            )
            if batched_only:
                collect = collect.where(col(DeliveryRow.batched).is_(True))
            collected = s.execute(collect.values(digest_id=digest_id).returning(col(DeliveryRow.id))).all()
            if not collected:
                s.execute(delete(DigestRow).where(col(DigestRow.id) == digest_id))
            return len(collected)

    def claim_due_digests(
        self, now: datetime, lease: timedelta, channels: Collection[str], limit: int = 10
    ) -> list[Digest]:
        """Claim due digests of ``channels``; a crashed sender's claim expires after ``lease``."""
        if not channels:
            return []
        with self._session() as s:
            due = (
                s.execute(
                    select(col(DigestRow.id))
                    .where(col(DigestRow.status) == PENDING, col(DigestRow.next_attempt_at) <= now)
                    .where(col(DigestRow.channel).in_(sorted(channels)))
                    .order_by(col(DigestRow.next_attempt_at), col(DigestRow.id))
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            digests = []
            for digest_id in due:
                if claim_row(s, DigestRow, "id", digest_id, PENDING, now, lease):
                    digests.append(self._digest(s, digest_id))
            return digests

    def _digest(self, s: Session, digest_id: int) -> Digest:
        row = s.get(DigestRow, digest_id)
        assert row is not None and row.due_at is not None
        members = (
            s.execute(select(col(DeliveryRow.id)).where(col(DeliveryRow.digest_id) == digest_id).order_by("id"))
            .scalars()
            .all()
        )
        since = s.execute(
            select(func.max(col(DigestRow.due_at))).where(
                col(DigestRow.channel) == row.channel, col(DigestRow.due_at) < row.due_at
            )
        ).scalar_one_or_none()
        return Digest(
            digest_id=digest_id,
            channel=row.channel,
            due_at=_utc(row.due_at),
            since=_aware(since),
            alerts=tuple(self._alerts(s, members)),
            attempts=row.attempts,
        )

    def mark_digest_sent(self, digest_id: int, now: datetime, *, channel: str | None = None) -> bool:
        """The digest and every alert in it are sent: one transaction, so they never disagree;
        with ``channel``, also that the channel works again. True if an outage just ended."""
        with self._session() as s:
            s.execute(
                update(DigestRow)
                .where(col(DigestRow.id) == digest_id, col(DigestRow.status) == PENDING)
                .values(status=SENT, sent_at=now, last_error=None, attempts=col(DigestRow.attempts) + 1)
            )
            s.execute(
                update(DeliveryRow)
                .where(col(DeliveryRow.digest_id) == digest_id, col(DeliveryRow.status) != SENT)
                .values(status=SENT, sent_at=now, last_error=None)
            )
            return channel is not None and channel_recovered(s, channel, now)

    def mark_digest_retry(self, digest_id: int, error: str, next_attempt_at: datetime) -> None:
        with self._session() as s:
            s.execute(
                update(DigestRow)
                .where(col(DigestRow.id) == digest_id, col(DigestRow.status) == PENDING)
                .values(next_attempt_at=next_attempt_at, last_error=error, attempts=col(DigestRow.attempts) + 1)
            )

    def defer_digest(self, digest_id: int, until: datetime) -> None:
        """Hold a claimed digest (its channel's rate limit) without counting an attempt."""
        with self._session() as s:
            s.execute(
                update(DigestRow)
                .where(col(DigestRow.id) == digest_id, col(DigestRow.status) == PENDING)
                .values(next_attempt_at=until)
            )

    def mark_digest_failed(self, digest_id: int, error: str) -> None:
        """Dead-letter the digest; its alerts show in `watcher alerts --failed`, and retrying any
        of them sends the digest again."""
        with self._session() as s:
            s.execute(
                update(DigestRow)
                .where(col(DigestRow.id) == digest_id, col(DigestRow.status) == PENDING)
                .values(status=FAILED, last_error=error, attempts=col(DigestRow.attempts) + 1)
            )
            s.execute(
                update(DeliveryRow)
                .where(col(DeliveryRow.digest_id) == digest_id, col(DeliveryRow.status) == PENDING)
                .values(status=FAILED, last_error=f"in digest #{digest_id}: {error}")
            )


def _waiting(digest_channels: Collection[str], others: Collection[str]) -> Any:
    condition: Any = col(DeliveryRow.channel).in_(sorted(digest_channels))
    if others:
        condition = condition | (col(DeliveryRow.batched).is_(True) & col(DeliveryRow.channel).in_(sorted(others)))
    return condition


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _utc(value: datetime | str) -> datetime:
    """Aggregates (min/max) bypass the column type, so SQLite hands them back naive or as text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
