"""The store's side of source health: the facts each feed's health is judged on, and which
problems were reported (so each is reported once, by whichever replica sees it first).

Mixed into Store; relies on its ``_session`` and ``_insert``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from watcher.health import SourceFacts
from watcher.store.schema import FeedRow, ItemRow, SourceHealthRow

RECENT_ITEMS = 20  # publication dates a feed's cadence is learned from


class SourceHealthQueries:
    _session: Callable[[], AbstractContextManager[Session]]
    _insert: Callable[[Any], Any]

    def source_facts(self, feed_ids: Sequence[str]) -> list[SourceFacts]:
        if not feed_ids:
            return []
        with self._session() as s:
            feeds = s.execute(
                select(
                    col(FeedRow.id),
                    col(FeedRow.error_count),
                    col(FeedRow.last_error),
                    col(FeedRow.last_success_at),
                    col(FeedRow.created_at),
                ).where(col(FeedRow.id).in_(sorted(feed_ids)))
            ).all()
            rank = (
                func.row_number()
                .over(partition_by=col(ItemRow.feed_id), order_by=col(ItemRow.published_at).desc())
                .label("rank")
            )
            recent = (
                select(col(ItemRow.feed_id), col(ItemRow.published_at), rank)
                .where(col(ItemRow.feed_id).in_(sorted(feed_ids)), col(ItemRow.published_at).is_not(None))
                .subquery()
            )
            published: dict[str, list[datetime]] = {}
            rows = s.execute(
                select(recent.c.feed_id, recent.c.published_at)
                .where(recent.c.rank <= RECENT_ITEMS)
                .order_by(recent.c.feed_id, recent.c.published_at.desc())
            ).all()
            for feed_id, at in rows:
                published.setdefault(feed_id, []).append(at)
            return [
                SourceFacts(fid, int(errors or 0), error, success, created, tuple(published.get(fid, ())))
                for fid, errors, error, success, created in feeds
            ]

    def open_problems(self) -> dict[str, tuple[str, datetime]]:
        with self._session() as s:
            rows = s.execute(select(SourceHealthRow)).scalars().all()
            return {r.feed_id: (r.kind, r.since) for r in rows if r.since is not None}

    def claim_problem(self, feed_id: str, kind: str, now: datetime) -> bool:
        """Record a new problem; True for the one replica whose insert created it (it reports it)."""
        with self._session() as s:
            stmt = self._insert(SourceHealthRow).values(feed_id=feed_id, kind=kind, since=now)
            return bool(s.execute(stmt.on_conflict_do_nothing().returning(col(SourceHealthRow.feed_id))).first())

    def release_problem(self, feed_id: str, kind: str) -> bool:
        """Forget a problem; True for the one replica whose delete removed it (it reports the end,
        or, after a failed report of the start, lets the next check try again)."""
        with self._session() as s:
            stmt = delete(SourceHealthRow).where(
                col(SourceHealthRow.feed_id) == feed_id, col(SourceHealthRow.kind) == kind
            )
            return bool(s.execute(stmt.returning(col(SourceHealthRow.feed_id))).first())
