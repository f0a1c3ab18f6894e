"""Put each new item into a story, inside the poll's transaction. Only ``Store`` calls this.

A story is found by exact link first, then through the term index: the items of the last
``window`` that share distinctive words with the new one, best first, checked with
``stories.same_story``. Cost per item: a few index lookups bounded by the window's volume,
whatever the size of history. Two replicas clustering the same event at the same instant may
open two stories for it; the next item joins one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlmodel import Session, col

from watcher.model import Item
from watcher.store.schema import ItemRow, StoryItemRow, StoryRow, StoryTermRow
from watcher.stories import StoryView, is_official, item_features, same_story

MAX_TERMS = 48  # distinctive words indexed per item
MAX_CANDIDATES = 30  # recent items compared in full per new item


def assign_stories(
    s: Session,
    insert: Callable[[Any], Any],
    now: datetime,
    window: timedelta,
    items: Sequence[tuple[Item, int]],
    official_domains: Sequence[str],
) -> dict[str, StoryView]:
    out: dict[str, StoryView] = {}
    since = now - window
    if items:
        # The index only ever needs the window: older terms go, so its size follows the feed
        # volume of one window, never the size of history.
        s.execute(delete(StoryTermRow).where(col(StoryTermRow.seen_at) < since))
    for item, item_id in sorted(items, key=lambda p: p[0].item_key):
        words, parties = item_features(item)
        official = is_official(item.link, official_domains)
        story_id = _by_link(s, item, since) or _by_terms(s, words, parties, since)
        became_official = False
        if story_id is None:
            story = StoryRow(title=item.title, created_at=now, last_seen_at=now, is_official=official)
            s.add(story)
            s.flush()
            assert story.id is not None
            story_id, is_new = story.id, True
        else:
            was_official = bool(
                s.execute(select(col(StoryRow.is_official)).where(col(StoryRow.id) == story_id)).scalar()
            )
            became_official = official and not was_official
            s.execute(
                update(StoryRow)
                .where(col(StoryRow.id) == story_id)
                .values(last_seen_at=now, is_official=was_official or official)
            )
            is_new = False
        s.execute(
            insert(StoryItemRow)
            .values(
                item_id=item_id,
                story_id=story_id,
                feed_id=item.feed_id,
                is_official=official,
                words=sorted(words),
                parties=sorted(parties),
                added_at=now,
            )
            .on_conflict_do_nothing(index_elements=["item_id"])
        )
        terms = sorted(words, key=len, reverse=True)[:MAX_TERMS]
        if terms:
            # Parameters as a list (executemany): one cached statement, not one compiled per item.
            s.execute(
                insert(StoryTermRow).on_conflict_do_nothing(index_elements=["term", "item_id"]),
                [{"term": t[:64], "item_id": item_id, "story_id": story_id, "seen_at": now} for t in sorted(terms)],
            )
        sources = s.execute(
            select(col(StoryItemRow.feed_id), func.min(col(StoryItemRow.added_at)))
            .where(col(StoryItemRow.story_id) == story_id)
            .group_by(col(StoryItemRow.feed_id))
            .order_by(func.min(col(StoryItemRow.added_at)))
        ).all()
        out[item.item_key] = StoryView(
            story_id, is_new, tuple(f for f, _ in sources), official or became_official, became_official
        )
    return out


def _by_link(s: Session, item: Item, since: datetime) -> int | None:
    if not item.link:
        return None
    found = s.execute(
        select(col(StoryItemRow.story_id))
        .join(ItemRow, col(ItemRow.id) == col(StoryItemRow.item_id))
        .where(col(ItemRow.link) == item.link, col(StoryItemRow.added_at) >= since)
        .order_by(col(StoryItemRow.added_at))
        .limit(1)
    ).scalar_one_or_none()
    return int(found) if found is not None else None


def _by_terms(s: Session, words: frozenset[str], parties: frozenset[str], since: datetime) -> int | None:
    if not words:
        return None
    shared = func.count().label("shared")
    rows = s.execute(
        select(col(StoryTermRow.item_id), shared)
        .where(col(StoryTermRow.term).in_([w[:64] for w in words]), col(StoryTermRow.seen_at) >= since)
        .group_by(col(StoryTermRow.item_id))
        .order_by(shared.desc(), col(StoryTermRow.item_id))
        .limit(MAX_CANDIDATES)
    ).all()
    ids = [item_id for item_id, count in rows if count >= 2]
    if not ids:
        return None
    candidates = {
        r.item_id: r for r in s.execute(select(StoryItemRow).where(col(StoryItemRow.item_id).in_(ids))).scalars()
    }
    for item_id in ids:  # most shared words first
        other = candidates.get(item_id)
        if other and same_story(words, parties, frozenset(other.words), frozenset(other.parties)):
            return int(other.story_id)
    return None
