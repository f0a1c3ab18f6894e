"""Feeds managed from the command line (`watcher feeds add | import | pause | resume | remove`).

Mixed into ``Store``. Owns the ``source``, ``paused`` and settings columns of the ``feeds`` table:
a feed added by the CLI is defined by its row, a config feed by its ``[[feed]]`` block (the
config file wins on an id clash; the caller passes the config's ids and URLs, since the store
never reads the config). Removing a CLI feed keeps its row and items as tombstones, so nothing
it carried alerts twice if it comes back. Must not: fetch, parse or decide ids.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session, col

from watcher.store.claims import rowcount
from watcher.store.schema import FeedRow

CONFIG, CLI, REMOVED = "config", "cli", "removed"


@dataclass(frozen=True, slots=True)
class StoredFeed:
    """A feed defined by its row: the fields of a config ``[[feed]]`` block that the CLI sets."""

    id: str
    url: str
    title: str = ""
    interval_seconds: int | None = None
    tags: tuple[str, ...] = ()
    full_text: bool = False
    paused: bool = False


@dataclass(frozen=True, slots=True)
class FeedFlags:
    """How ``watcher feeds`` labels a row: where it is defined and whether it is paused."""

    source: str
    paused: bool


@dataclass(frozen=True, slots=True)
class AddResult:
    added: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (feed id or URL, why)


class FeedAdminQueries:
    """Mixed into Store; relies on its session."""

    _session: Callable[[], AbstractContextManager[Session]]
    _insert: Callable[[Any], Any]

    def cli_feeds(self) -> list[StoredFeed]:
        """Every feed added from the command line and not removed, paused ones included."""
        with self._session() as s:
            rows = s.execute(select(FeedRow).where(col(FeedRow.source) == CLI).order_by(col(FeedRow.id))).scalars()
            return [_stored(r) for r in rows]

    def paused_feed_ids(self) -> set[str]:
        with self._session() as s:
            return set(s.execute(select(col(FeedRow.id)).where(col(FeedRow.paused) == True)).scalars())  # noqa: E712

    def feed_flags(self) -> dict[str, FeedFlags]:
        with self._session() as s:
            rows = s.execute(select(col(FeedRow.id), col(FeedRow.source), col(FeedRow.paused))).all()
            return {feed_id: FeedFlags(source, bool(paused)) for feed_id, source, paused in rows}

    def feed_ids(self) -> set[str]:
        """Every id with a row, watched or not: a derived id must not take over an old row's items."""
        with self._session() as s:
            return set(s.execute(select(col(FeedRow.id))).scalars())

    def add_feeds(
        self,
        feeds: Sequence[StoredFeed],
        now: datetime,
        *,
        config_ids: Collection[str] = (),
        config_urls: Collection[str] = (),
    ) -> AddResult:
        """Save feeds as CLI feeds, due at once, in one transaction; skip (with the reason) any
        whose id or URL is already watched, by the config or the CLI.

        An id whose row is no longer watched (removed, or dropped from the config) is taken
        over with its history: its known items stay known, and its next poll counts as a first
        poll, so the new URL's backlog does not alert.
        """
        added: list[str] = []
        skipped: list[tuple[str, str]] = []
        with self._session() as s:
            rows = {r.id: r for r in s.execute(select(FeedRow)).scalars()}
            watched_urls = {r.url: r.id for r in rows.values() if r.source == CLI}
            watched_urls.update({url: "" for url in config_urls})
            for feed in sorted(feeds, key=lambda f: f.id):
                row = rows.get(feed.id)
                if feed.id in config_ids:
                    skipped.append((feed.id, "the config file defines this id (it wins on a clash)"))
                elif row is not None and row.source == CLI:
                    skipped.append((feed.id, f"already watched ({row.url})"))
                elif feed.url in watched_urls:
                    owner = watched_urls[feed.url]
                    skipped.append((feed.url, f"already watched as {owner}" if owner else "in the config file"))
                elif self._save(s, feed, now, taking_over=row is not None):
                    added.append(feed.id)
                    watched_urls[feed.url] = feed.id
                else:
                    skipped.append((feed.id, "added meanwhile by another process"))
        return AddResult(tuple(added), tuple(skipped))

    def _save(self, s: Session, feed: StoredFeed, now: datetime, *, taking_over: bool) -> bool:
        values = {
            "url": feed.url,
            "title": feed.title,
            "source": CLI,
            "paused": feed.paused,
            "interval_seconds": feed.interval_seconds,
            "tags": list(feed.tags),
            "full_text": feed.full_text,
            "next_check_at": now,
            "error_count": 0,
            "last_error": None,
        }
        if taking_over:
            # Validators and the success time belonged to the old URL; a fresh first poll follows.
            reset = {"etag": None, "last_modified": None, "last_success_at": None}
            result = s.execute(
                update(FeedRow).where(col(FeedRow.id) == feed.id, col(FeedRow.source) != CLI).values(**values, **reset)
            )
            return rowcount(result) == 1
        stmt = self._insert(FeedRow).values(id=feed.id, created_at=now, **values)
        return bool(s.execute(stmt.on_conflict_do_nothing(index_elements=["id"]).returning(col(FeedRow.id))).first())

    def set_paused(self, feed_id: str, paused: bool, now: datetime) -> bool:
        """Pause or resume a feed that has a row; True if its state changed. A resumed feed is
        due at once: whatever it published while paused is read on the next cycle."""
        values: dict[str, object] = {"paused": paused}
        if not paused:
            values["next_check_at"] = now
        with self._session() as s:
            result = s.execute(
                update(FeedRow).where(col(FeedRow.id) == feed_id, col(FeedRow.paused) == (not paused)).values(**values)
            )
            return rowcount(result) == 1

    def remove_cli_feed(self, feed_id: str) -> bool:
        """Stop watching a CLI feed; True if there was one. Its row and items stay (tombstones)."""
        with self._session() as s:
            result = s.execute(
                update(FeedRow)
                .where(col(FeedRow.id) == feed_id, col(FeedRow.source) == CLI)
                .values(source=REMOVED, paused=False, next_check_at=None)
            )
            return rowcount(result) == 1


def _stored(row: FeedRow) -> StoredFeed:
    return StoredFeed(
        row.id,
        row.url,
        row.title,
        row.interval_seconds,
        tuple(row.tags or ()),
        row.full_text,
        row.paused,
    )
