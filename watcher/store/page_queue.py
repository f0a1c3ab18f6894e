"""Page queue queries: items whose linked page must be read before they are matched.

Mixed into ``Store``. A poll queues what its page budget cannot fetch at once (a first poll, a
catch-up, a busy day on a teaser-only feed); later cycles claim the due rows within a per-host
budget and record the item's matches, in one transaction with the page text, when it arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from watcher.model import Item
from watcher.store.claims import claim_row, rowcount
from watcher.store.decide import PlannedMatch, Recorded, record_matches
from watcher.store.schema import ItemRow, PageQueueRow, StoryItemRow, StoryRow
from watcher.stories import StoryView

WAITING, DONE, GAVE_UP = "waiting", "done", "gave_up"
# Due rows looked at per claim, before the per-host budget picks among them.
_SCAN = 2000


@dataclass(frozen=True, slots=True)
class QueuedPage:
    """A claimed queue row with its stored item, ready to fetch and match."""

    item_id: int
    item: Item
    url: str
    revision: int
    is_update: bool
    attempts: int  # failed fetches so far


@dataclass(frozen=True, slots=True)
class PageStatus:
    status: str
    attempts: int
    last_error: str | None
    queued_at: datetime | None
    done_at: datetime | None


class PageQueueQueries:
    """Mixed into Store; relies on its session."""

    _session: Callable[[], AbstractContextManager[Session]]
    _insert: Callable[[Any], Any]

    @staticmethod
    def _queue_in(
        s: Session,
        insert: Callable[[Any], Any],
        now: datetime,
        feed_id: str,
        pages: Mapping[str, str],  # item key -> page URL
        rows: Mapping[str, tuple[int, int, bool]],  # item key -> (item id, revision, is an update)
    ) -> int:
        """Queue the pages of items this transaction created or changed (others: a replica's).

        One statement for the poll, its rows as an executemany: a first poll queues every item."""
        values = [
            {
                "item_id": rows[key][0],
                "feed_id": feed_id,
                "url": pages[key],
                "revision": rows[key][1],
                "is_update": rows[key][2],
                "status": WAITING,
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": None,
                "queued_at": now,
                "done_at": None,
            }
            for key in sorted(pages)
            if key in rows
        ]
        if values:
            stmt = insert(PageQueueRow)
            again = {name: stmt.excluded[name] for name in values[0] if name != "item_id"}
            s.execute(stmt.on_conflict_do_update(index_elements=["item_id"], set_=again), values)
        return len(values)

    def claim_pages(
        self, now: datetime, lease: timedelta, *, per_host: int, feed_ids: Sequence[str] | None = None
    ) -> list[QueuedPage]:
        """Claim due pages, oldest first, at most ``per_host`` per page host (the politeness
        budget of one cycle); a crashed claimer's rows come back after ``lease``."""
        with self._session() as s:
            stmt = (
                select(col(PageQueueRow.item_id), col(PageQueueRow.url))
                .where(col(PageQueueRow.status) == WAITING, col(PageQueueRow.next_attempt_at) <= now)
                .order_by(col(PageQueueRow.queued_at), col(PageQueueRow.item_id))
                .limit(_SCAN)
            )
            if feed_ids is not None:
                stmt = stmt.where(col(PageQueueRow.feed_id).in_(list(feed_ids)))
            taken: dict[str, int] = {}
            picked: list[int] = []
            for item_id, url in s.execute(stmt).all():
                host = (urlsplit(url).hostname or "").lower()
                if taken.get(host, 0) >= per_host:
                    continue
                taken[host] = taken.get(host, 0) + 1
                picked.append(int(item_id))
            claimed = [i for i in picked if claim_row(s, PageQueueRow, "item_id", i, WAITING, now, lease)]
            if not claimed:
                return []
            rows = s.execute(
                select(PageQueueRow, ItemRow)
                .join(ItemRow, col(ItemRow.id) == col(PageQueueRow.item_id))
                .where(col(PageQueueRow.item_id).in_(claimed))
                .order_by(col(PageQueueRow.queued_at), col(PageQueueRow.item_id))
            ).all()
            return [
                QueuedPage(q.item_id, item_from_row(i), q.url, q.revision, q.is_update, q.attempts) for q, i in rows
            ]

    def page_failed(self, item_id: int, error: str, retry_at: datetime) -> None:
        """A fetch failed; the row waits for its next try."""
        with self._session() as s:
            s.execute(
                update(PageQueueRow)
                .where(col(PageQueueRow.item_id) == item_id, col(PageQueueRow.status) == WAITING)
                .values(attempts=col(PageQueueRow.attempts) + 1, last_error=error, next_attempt_at=retry_at)
            )

    def complete_page(
        self,
        page: QueuedPage,
        now: datetime,
        article: str,
        planned: Sequence[PlannedMatch],
        *,
        error: str | None = None,
    ) -> Recorded:
        """Store the page text and the item's matches, decided as a poll would, in one
        transaction. With ``error`` the page was given up on: the item was matched without it."""
        with self._session() as s:
            done = s.execute(
                update(PageQueueRow)
                .where(col(PageQueueRow.item_id) == page.item_id, col(PageQueueRow.status) == WAITING)
                .where(col(PageQueueRow.revision) == page.revision)
                .values(
                    status=GAVE_UP if error else DONE,
                    done_at=now,
                    last_error=error,
                    attempts=col(PageQueueRow.attempts) + (1 if error else 0),
                )
            )
            if rowcount(done) != 1:
                return Recorded()  # another replica finished it, or the item changed again since
            if article:
                s.execute(update(ItemRow).where(col(ItemRow.id) == page.item_id).values(article=article))
            item = replace(page.item, article=article) if article else page.item
            story = _story_of(s, page.item_id)
            stories = {item.item_key: story} if story is not None else {}
            rows = {item.item_key: (page.item_id, page.revision, page.is_update)}
            return record_matches(s, self._insert, now, planned, {item.item_key: item}, rows, stories)

    def pages_waiting(self) -> dict[str, int]:
        """Per feed, how many items still wait for their page."""
        with self._session() as s:
            rows = s.execute(
                select(col(PageQueueRow.feed_id), func.count())
                .where(col(PageQueueRow.status) == WAITING)
                .group_by(col(PageQueueRow.feed_id))
            ).all()
            return {str(f): int(n) for f, n in rows}

    def page_status(self, item_id: int) -> PageStatus | None:
        with self._session() as s:
            row = s.get(PageQueueRow, item_id)
            if row is None:
                return None
            return PageStatus(row.status, row.attempts, row.last_error, row.queued_at, row.done_at)


def item_from_row(r: ItemRow) -> Item:
    return Item(
        r.feed_id,
        r.item_key,
        r.title,
        r.link,
        r.summary,
        r.content,
        r.published_at,
        r.updated_at,
        tuple(r.authors),
        tuple(r.tags),
        r.content_hash,
        r.article,
    )


def _story_of(s: Session, item_id: int) -> StoryView | None:
    """The story the item joined when it was stored, seen as the decisions need it now."""
    mine = s.execute(select(StoryItemRow).where(col(StoryItemRow.item_id) == item_id)).scalars().first()
    if mine is None:
        return None
    members = s.execute(
        select(col(StoryItemRow.feed_id), col(StoryItemRow.is_official), col(StoryItemRow.item_id))
        .where(col(StoryItemRow.story_id) == mine.story_id)
        .order_by(col(StoryItemRow.added_at), col(StoryItemRow.item_id))
    ).all()
    sources = tuple(dict.fromkeys(str(f) for f, _, _ in members))
    first_official = next((int(i) for _, official, i in members if official), None)
    is_official = bool(s.execute(select(col(StoryRow.is_official)).where(col(StoryRow.id) == mine.story_id)).scalar())
    became_official = bool(mine.is_official) and first_official == item_id and members[0][2] != item_id
    return StoryView(int(mine.story_id), False, sources, is_official, became_official)
