"""Outbox queries: claim due deliveries, record how a send went, and the alerts view.

Mixed into ``Store``; like the rest of the store, the only code that writes these tables.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlmodel import Session, col

from watcher.model import Alert, DeliveryStatus, Severity
from watcher.store.claims import claim_row, rowcount
from watcher.store.schema import ChannelHealthRow, DeliveryRow, DigestRow, FeedRow, ItemRow, MatchRow, StoryItemRow


@dataclass(frozen=True, slots=True)
class AlertStatus:
    delivery_id: int
    rule_id: str
    severity: str
    item_title: str
    item_link: str | None
    feed_id: str
    channel: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime | None
    sent_at: datetime | None
    next_attempt_at: datetime | None
    digest_id: int | None = None  # the digest that carries (or carried) this alert


class OutboxQueries:
    """Mixed into Store; relies on its session."""

    _session: Callable[[], AbstractContextManager[Session]]

    def claim_due_deliveries(
        self,
        now: datetime,
        lease: timedelta,
        limit: int = 50,
        *,
        exclude: Collection[int] = (),
        skip_channels: Collection[str] = (),
    ) -> list[Alert]:
        """Claim due pending deliveries; a crashed sender's claim expires after ``lease``.

        ``exclude``: rows already tried in this drain, so a retry due at once waits for the next one.
        ``skip_channels``: digest channels (their rows wait for the digest) and paused ones.
        Rows a digest has collected, or that wait for one (``batched``), are never claimed here.
        """
        with self._session() as s:
            stmt = (
                select(col(DeliveryRow.id))
                .where(col(DeliveryRow.status) == DeliveryStatus.PENDING.value)
                .where(col(DeliveryRow.next_attempt_at) <= now)
                .where(col(DeliveryRow.digest_id).is_(None), col(DeliveryRow.batched).is_(False))
            )
            if skip_channels:
                stmt = stmt.where(col(DeliveryRow.channel).not_in(sorted(skip_channels)))
            if exclude:
                stmt = stmt.where(col(DeliveryRow.id).not_in(list(exclude)))
            # Longest waiting first, then oldest. During an outage a row that failed waits out its
            # own backoff, so the next probe of the channel is another row: no one alert spends
            # all its attempts on the outage. When the channel recovers, the rows still waiting
            # are made due together (``channel_recovered``) and go out in the order they were
            # raised; only the alert whose send proved the recovery may arrive ahead of them.
            due = (
                s.execute(stmt.order_by(col(DeliveryRow.next_attempt_at), col(DeliveryRow.id)).limit(limit))
                .scalars()
                .all()
            )
            claimed = [d for d in due if _claim(s, d, now, lease)]
            # The same channel's other due rows for the same stories or items: several rules that
            # fired together go out as one message (notify.merge), so they are claimed together.
            siblings = _siblings(s, claimed, now, exclude)
            claimed += [d for d in siblings if _claim(s, d, now, lease)]
            return self._alerts(s, claimed)

    def _alerts(self, s: Session, delivery_ids: Sequence[int]) -> list[Alert]:
        if not delivery_ids:
            return []
        rows = s.execute(
            select(DeliveryRow, MatchRow, ItemRow, FeedRow)
            .join(MatchRow, col(MatchRow.id) == col(DeliveryRow.match_id))
            .join(ItemRow, col(ItemRow.id) == col(MatchRow.item_id))
            .join(FeedRow, col(FeedRow.id) == col(ItemRow.feed_id))
            .where(col(DeliveryRow.id).in_(delivery_ids))
        ).all()
        # In the order given: the claim's order is the order of sending.
        position = {delivery_id: i for i, delivery_id in enumerate(delivery_ids)}
        rows = sorted(rows, key=lambda row: position[row[0].id or 0])
        story_ids = {m.story_id for _, m, _, _ in rows if m.story_id is not None}
        sources: dict[int, list[str]] = {}
        if story_ids:
            for story_id, feed_id in s.execute(
                select(col(StoryItemRow.story_id), col(StoryItemRow.feed_id))
                .where(col(StoryItemRow.story_id).in_(story_ids))
                .order_by(col(StoryItemRow.added_at), col(StoryItemRow.item_id))
            ).all():
                found = sources.setdefault(story_id, [])
                if feed_id not in found:
                    found.append(feed_id)
        return [
            Alert(
                delivery_id=d.id or 0,
                channel=d.channel,
                rule_id=m.rule_id,
                rule_title=m.rule_title,
                severity=Severity(m.severity),
                reasons=tuple(m.reasons),
                feed_id=f.id,
                feed_title=f.title or f.id,
                item_title=i.title,
                item_link=i.link,
                item_text=(i.summary or i.content)[:1000],
                published_at=i.published_at,
                attempts=d.attempts,
                kind=m.alert_kind,
                sources=tuple(sources.get(m.story_id, ())) if m.story_id is not None else (),
                story_id=m.story_id,
                snippet=m.snippet,
                entities=tuple(m.entities),
                created_at=d.created_at,
                item_id=m.item_id,
                tags=tuple(m.tags),
            )
            for d, m, i, f in rows
        ]

    def mark_sent(self, delivery_id: int | Sequence[int], now: datetime, *, channel: str | None = None) -> bool:
        """Record a successful send (of one delivery, or of every delivery one merged message
        carried), and with ``channel`` that the channel works again, in one transaction (the
        commit is most of a send's database cost). True if an outage just ended."""
        with self._session() as s:
            self._finish_in(s, delivery_id, status=DeliveryStatus.SENT, sent_at=now, last_error=None)
            return channel is not None and channel_recovered(s, channel, now)

    def mark_retry(self, delivery_id: int | Sequence[int], error: str, next_attempt_at: datetime) -> None:
        self._finish(delivery_id, status=DeliveryStatus.PENDING, next_attempt_at=next_attempt_at, last_error=error)

    def defer(self, delivery_id: int | Sequence[int], until: datetime) -> None:
        """Hold claimed rows until ``until`` without counting an attempt (quiet hours, a paused channel)."""
        with self._session() as s:
            s.execute(
                update(DeliveryRow)
                .where(col(DeliveryRow.id).in_(_ids(delivery_id)))
                .where(col(DeliveryRow.status) == DeliveryStatus.PENDING.value)
                .values(next_attempt_at=until)
            )

    def mark_failed(self, delivery_id: int | Sequence[int], error: str) -> None:
        self._finish(delivery_id, status=DeliveryStatus.FAILED, last_error=error)

    def _finish(self, delivery_id: int | Sequence[int], *, status: DeliveryStatus, **values: Any) -> None:
        with self._session() as s:
            self._finish_in(s, delivery_id, status=status, **values)

    @staticmethod
    def _finish_in(s: Session, delivery_id: int | Sequence[int], *, status: DeliveryStatus, **values: Any) -> None:
        s.execute(
            update(DeliveryRow)
            .where(col(DeliveryRow.id).in_(_ids(delivery_id)))
            .where(col(DeliveryRow.status) == DeliveryStatus.PENDING.value)
            .values(status=status.value, attempts=col(DeliveryRow.attempts) + 1, **values)
        )

    def retry_failed(self, delivery_ids: Sequence[int] | None, now: datetime) -> int:
        """Put failed deliveries back in the queue (all of them when ``delivery_ids`` is None).

        A row that failed inside a digest revives its digest, which is sent again whole.
        """
        with self._session() as s:
            stmt = update(DeliveryRow).where(col(DeliveryRow.status) == DeliveryStatus.FAILED.value)
            if delivery_ids is not None:
                stmt = stmt.where(col(DeliveryRow.id).in_(delivery_ids))
            result = s.execute(
                stmt.values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now).returning(
                    col(DeliveryRow.digest_id)
                )
            ).all()
            digests = sorted({d for (d,) in result if d is not None})
            if digests:
                s.execute(
                    update(DigestRow)
                    .where(col(DigestRow.id).in_(digests), col(DigestRow.status) == DeliveryStatus.FAILED.value)
                    .values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now)
                )
            return len(result)

    def alert_statuses(
        self, *, limit: int = 50, status: DeliveryStatus | None = None, digest_id: int | None = None
    ) -> list[AlertStatus]:
        with self._session() as s:
            stmt = (
                select(DeliveryRow, MatchRow, ItemRow)
                .join(MatchRow, col(MatchRow.id) == col(DeliveryRow.match_id))
                .join(ItemRow, col(ItemRow.id) == col(MatchRow.item_id))
                .order_by(col(DeliveryRow.id).desc())
                .limit(limit)
            )
            if status is not None:
                stmt = stmt.where(col(DeliveryRow.status) == status.value)
            if digest_id is not None:
                stmt = stmt.where(col(DeliveryRow.digest_id) == digest_id)
            return [
                AlertStatus(
                    d.id or 0,
                    m.rule_id,
                    m.severity,
                    i.title,
                    i.link,
                    i.feed_id,
                    d.channel,
                    d.status,
                    d.attempts,
                    d.last_error,
                    d.created_at,
                    d.sent_at,
                    d.next_attempt_at,
                    d.digest_id,
                )
                for d, m, i in s.execute(stmt).all()
            ]

    def count_deliveries(self) -> dict[str, int]:
        with self._session() as s:
            rows = s.execute(select(col(DeliveryRow.status), func.count()).group_by(col(DeliveryRow.status))).all()
            return {str(k): int(v) for k, v in rows}


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    failing_since: datetime
    fallback_sent_at: datetime | None
    failures: int  # consecutive failed sends, this one included


class ChannelHealthQueries:
    """Mixed into Store: per-channel outage and pacing state, shared by every replica."""

    _session: Callable[[], AbstractContextManager[Session]]
    _insert: Callable[[Any], Any]

    def _health_row(self, s: Session, channel: str) -> None:
        s.execute(
            self._insert(ChannelHealthRow).values(channel=channel).on_conflict_do_nothing(index_elements=["channel"])
        )

    def channel_failed(self, channel: str, now: datetime, error: str) -> ChannelHealth:
        """Record a failed send: since when the channel fails, and how many sends failed in a row."""
        with self._session() as s:
            self._health_row(s, channel)
            s.execute(
                update(ChannelHealthRow)
                .where(col(ChannelHealthRow.channel) == channel)
                .values(
                    last_error=error,
                    failing_since=func.coalesce(col(ChannelHealthRow.failing_since), now),
                    failures=col(ChannelHealthRow.failures) + 1,
                )
            )
            row = s.get(ChannelHealthRow, channel)
            assert row is not None and row.failing_since is not None
            return ChannelHealth(row.failing_since, row.fallback_sent_at, row.failures)

    def channel_ok(self, channel: str) -> bool:
        """Record a success; True if the channel had been failing (an outage just ended)."""
        with self._session() as s:
            return channel_recovered(s, channel)

    def claim_fallback(self, channel: str, now: datetime) -> bool:
        """Only one replica tells the fallback about one outage: the conditional update decides."""
        with self._session() as s:
            result = s.execute(
                update(ChannelHealthRow)
                .where(col(ChannelHealthRow.channel) == channel, col(ChannelHealthRow.fallback_sent_at).is_(None))
                .where(col(ChannelHealthRow.failing_since).is_not(None))
                .values(fallback_sent_at=now)
            )
            return bool(rowcount(result))

    def pause_channel(self, channel: str, until: datetime) -> None:
        """No send to ``channel`` before ``until``; a later pause already set is kept."""
        with self._session() as s:
            self._health_row(s, channel)
            paused = col(ChannelHealthRow.paused_until)
            s.execute(
                update(ChannelHealthRow)
                .where(col(ChannelHealthRow.channel) == channel)
                .where(paused.is_(None) | (paused < until))
                .values(paused_until=until)
            )

    def paused_channels(self, now: datetime) -> dict[str, datetime]:
        with self._session() as s:
            rows = s.execute(
                select(col(ChannelHealthRow.channel), col(ChannelHealthRow.paused_until)).where(
                    col(ChannelHealthRow.paused_until) > now
                )
            ).all()
            return {str(c): until for c, until in rows}

    def recent_sends(self, channel: str, limit: int) -> list[datetime]:
        """The channel's newest ``limit`` send times (messages: an alert or a whole digest), newest first."""
        with self._session() as s:
            alone = (
                s.execute(
                    select(col(DeliveryRow.sent_at))
                    .where(col(DeliveryRow.channel) == channel, col(DeliveryRow.sent_at).is_not(None))
                    .where(col(DeliveryRow.digest_id).is_(None))
                    .order_by(col(DeliveryRow.sent_at).desc())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            digests = (
                s.execute(
                    select(col(DigestRow.sent_at))
                    .where(col(DigestRow.channel) == channel, col(DigestRow.sent_at).is_not(None))
                    .order_by(col(DigestRow.sent_at).desc())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            return sorted((t for t in [*alone, *digests] if t is not None), reverse=True)[:limit]


def channel_recovered(s: Session, channel: str, now: datetime | None = None) -> bool:
    """Within ``s``: clear the channel's outage state; True if it had been failing. With ``now``
    (a send just worked), the rows that were waiting out their backoff become due at ``now``,
    all together, so that they are sent oldest first (issue 13: in order per channel after an
    outage), not in retry-time order."""
    result = s.execute(
        update(ChannelHealthRow)
        .where(col(ChannelHealthRow.channel) == channel, col(ChannelHealthRow.failing_since).is_not(None))
        .values(failing_since=None, fallback_sent_at=None, last_error=None, failures=0, paused_until=None)
    )
    if not rowcount(result):
        return False
    if now is None:
        return True
    s.execute(
        update(DeliveryRow)
        .where(col(DeliveryRow.channel) == channel, col(DeliveryRow.status) == DeliveryStatus.PENDING.value)
        .where(col(DeliveryRow.digest_id).is_(None), col(DeliveryRow.batched).is_(False))
        # Not a row a sender holds right now (its claim mark is its due time): it is in flight.
        .where(
            or_(
                col(DeliveryRow.claimed_until).is_(None),
                col(DeliveryRow.next_attempt_at) != col(DeliveryRow.claimed_until),
            )
        )
        .values(next_attempt_at=now)
    )
    return True


def _ids(delivery_id: int | Sequence[int]) -> list[int]:
    return [delivery_id] if isinstance(delivery_id, int) else list(delivery_id)


def _claim(s: Session, delivery_id: int, now: datetime, lease: timedelta) -> bool:
    """Take one due pending row for ``lease``; False if another sender took it first."""
    return claim_row(s, DeliveryRow, "id", delivery_id, DeliveryStatus.PENDING.value, now, lease)


def _siblings(s: Session, claimed: Sequence[int], now: datetime, exclude: Collection[int]) -> list[int]:
    """Due rows of the claimed rows' channels whose match is on the same story (or item)."""
    if not claimed:
        return []
    mine = s.execute(
        select(col(DeliveryRow.channel), col(MatchRow.story_id), col(MatchRow.item_id))
        .join(MatchRow, col(MatchRow.id) == col(DeliveryRow.match_id))
        .where(col(DeliveryRow.id).in_(list(claimed)))
    ).all()
    channels = sorted({c for c, _, _ in mine})
    stories = sorted({st for _, st, _ in mine if st is not None})
    items = sorted({i for _, st, i in mine if st is None})
    same = []
    if stories:
        same.append(col(MatchRow.story_id).in_(stories))
    if items:
        same.append(col(MatchRow.item_id).in_(items))
    stmt = (
        select(col(DeliveryRow.id), col(DeliveryRow.channel), col(MatchRow.story_id), col(MatchRow.item_id))
        .join(MatchRow, col(MatchRow.id) == col(DeliveryRow.match_id))
        .where(col(DeliveryRow.channel).in_(channels), or_(*same))
        .where(col(DeliveryRow.status) == DeliveryStatus.PENDING.value, col(DeliveryRow.next_attempt_at) <= now)
        .where(col(DeliveryRow.digest_id).is_(None), col(DeliveryRow.batched).is_(False))
        .where(col(DeliveryRow.id).not_in([*claimed, *exclude]))
        .order_by(col(DeliveryRow.id))
    )

    def group(channel: str, story_id: int | None, item_id: int) -> tuple[str, str, int]:
        # The grouping notify.merge uses: the story, or the item when it has none.
        return (channel, "story", story_id) if story_id is not None else (channel, "item", item_id)

    wanted = {group(*row) for row in mine}
    return [int(d) for d, *row in s.execute(stmt).all() if group(*row) in wanted]
