"""Silences and the explain trail: the Store's queries for suppressed and recorded decisions."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlmodel import Session, col

from watcher.model import Silence
from watcher.store.claims import rowcount
from watcher.store.schema import DeliveryRow, ItemRow, MatchRow, PageQueueRow, SilenceRow, StoryItemRow


@dataclass(frozen=True, slots=True)
class MatchTrail:
    """One recorded match of an item, with its decision and what happened to its deliveries."""

    match_id: int
    rule_id: str
    revision: int
    decision: str
    reason: str | None
    matched_at: datetime | None
    reasons: tuple[str, ...]
    deliveries: tuple[str, ...]  # "channel: status"


@dataclass(frozen=True, slots=True)
class ItemTrail:
    item_id: int
    feed_id: str
    item_key: str
    title: str
    link: str | None
    revision: int
    first_seen_at: datetime | None
    changed_at: datetime | None
    matches: tuple[MatchTrail, ...]
    story_id: int | None = None
    story_sources: tuple[str, ...] = ()  # feeds the item's story appeared in, first first
    page: str | None = None  # the page queue's word on the item's linked page, if it needed one
    published_at: datetime | None = None
    on_first_poll: bool = False  # stored by the feed's first poll (which keeps history from alerting)


def _silence(row: SilenceRow) -> Silence:
    assert row.id is not None and row.starts_at and row.ends_at and row.created_at
    return Silence(row.id, row.rule_id, row.match_text, row.starts_at, row.ends_at, row.comment, row.created_at)


class SilenceQueries:
    """Mixed into Store; relies on its session."""

    _session: Callable[[], AbstractContextManager[Session]]

    def add_silence(
        self, rule_id: str | None, match_text: str | None, starts_at: datetime, ends_at: datetime, comment: str
    ) -> Silence:
        with self._session() as s:
            row = SilenceRow(
                rule_id=rule_id,
                match_text=match_text,
                starts_at=starts_at,
                ends_at=ends_at,
                comment=comment,
                created_at=starts_at,
            )
            s.add(row)
            s.flush()
            return _silence(row)

    def silences(self, now: datetime, *, include_expired: bool = False) -> list[Silence]:
        with self._session() as s:
            stmt = select(SilenceRow).order_by(col(SilenceRow.ends_at))
            if not include_expired:
                stmt = stmt.where(col(SilenceRow.ends_at) > now)
            return [_silence(r) for r in s.execute(stmt).scalars()]

    def active_silences(self, now: datetime) -> list[Silence]:
        return [x for x in self.silences(now) if x.starts_at <= now]

    def expire_silence(self, silence_id: int, now: datetime) -> bool:
        with self._session() as s:
            result: Any = s.execute(
                update(SilenceRow)
                .where(col(SilenceRow.id) == silence_id, col(SilenceRow.ends_at) > now)
                .values(ends_at=now)
            )
            return bool(rowcount(result))

    def explain(self, needle: str) -> list[ItemTrail]:
        """Items whose id, key or link is ``needle`` (or whose title contains it), with every match."""
        with self._session() as s:
            conditions = [col(ItemRow.item_key) == needle, col(ItemRow.link) == needle]
            if needle.isdigit():
                conditions.append(col(ItemRow.id) == int(needle))
            items = list(s.execute(select(ItemRow).where(or_(*conditions)).limit(20)).scalars())
            if not items:
                items = list(
                    s.execute(
                        select(ItemRow).where(col(ItemRow.title).contains(needle)).order_by(col(ItemRow.id)).limit(20)
                    ).scalars()
                )
            return [self._trail(s, item) for item in items]

    @staticmethod
    def _trail(s: Session, item: ItemRow) -> ItemTrail:
        matches = list(
            s.execute(
                select(MatchRow)
                .where(col(MatchRow.item_id) == item.id)
                .order_by(col(MatchRow.revision), col(MatchRow.id))
            ).scalars()
        )
        trails = []
        for m in matches:
            deliveries = s.execute(
                select(col(DeliveryRow.channel), col(DeliveryRow.status)).where(col(DeliveryRow.match_id) == m.id)
            ).all()
            trails.append(
                MatchTrail(
                    m.id or 0,
                    m.rule_id,
                    m.revision,
                    m.decision,
                    m.decision_reason,
                    m.matched_at,
                    tuple(m.reasons),
                    tuple(f"{ch}: {st}" for ch, st in deliveries),
                )
            )
        story_id = s.execute(
            select(col(StoryItemRow.story_id)).where(col(StoryItemRow.item_id) == item.id)
        ).scalar_one_or_none()
        sources: list[str] = []
        if story_id is not None:
            for (feed_id,) in s.execute(
                select(col(StoryItemRow.feed_id))
                .where(col(StoryItemRow.story_id) == story_id)
                .order_by(col(StoryItemRow.added_at), col(StoryItemRow.item_id))
            ).all():
                if feed_id not in sources:
                    sources.append(feed_id)
        return ItemTrail(
            item.id or 0,
            item.feed_id,
            item.item_key,
            item.title,
            item.link,
            item.revision,
            item.first_seen_at,
            item.changed_at,
            tuple(trails),
            story_id,
            tuple(sources),
            _page_note(s.get(PageQueueRow, item.id)),
            item.published_at,
            item.first_seen_at is not None and item.first_seen_at == _first_poll(s, item.feed_id),
        )


def _first_poll(s: Session, feed_id: str) -> datetime | None:
    """When the feed was first polled: every item of a poll shares its time, so its earliest."""
    first = select(func.min(col(ItemRow.first_seen_at))).where(col(ItemRow.feed_id) == feed_id)
    return s.execute(first).scalar()


def _page_note(row: PageQueueRow | None) -> str | None:
    """What became of the item's linked page, for an item that had to wait for it."""
    if row is None:
        return None
    if row.status == "done":
        return f"matched on its page, read {row.done_at:%Y-%m-%d %H:%M} UTC" if row.done_at else "matched on its page"
    if row.status == "gave_up":
        return row.last_error or "page not read: matched on the feed's text"
    tries = f" ({row.attempts} failed tries, last: {row.last_error})" if row.attempts else ""
    return f"waiting for its page, not matched yet{tries}"
