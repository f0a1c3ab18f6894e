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

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, col

from watcher.model import Item
from watcher.store.schema import ItemRow, StoryItemRow, StoryRow, StoryTermCountRow, StoryTermRow
from watcher.stories import StoryView, is_official, item_features, same_story

MAX_TERMS = 48  # distinctive words indexed per item
MAX_CANDIDATES = 30  # recent items compared in full per new item
# A term indexed by more items than this within the window is not looked up: in a busy window a
# word that common is no evidence of one story (like "market" or a big tech firm's name), and its
# postings would make each lookup cost more the more items the window holds. Candidates are still
# compared in full, common words included, by ``same_story``.
COMMON_AFTER = 200

# The lookups run for every new item: built once, with expanding IN parameters, so a call binds
# its values instead of building and coercing a statement of fifty literals each time.
_TERMS = StoryTermRow.__table__.c  # type: ignore[attr-defined]
_COUNTS = StoryTermCountRow.__table__.c  # type: ignore[attr-defined]
_ITEMS = StoryItemRow.__table__.c  # type: ignore[attr-defined]
_SHARED = func.count().label("shared")
_TERM_HITS = (
    select(_TERMS.item_id, _SHARED)
    .where(_TERMS.term.in_(bindparam("terms", expanding=True)), _TERMS.seen_at >= bindparam("since"))
    .group_by(_TERMS.item_id)
    .order_by(_SHARED.desc(), _TERMS.item_id)
    .limit(MAX_CANDIDATES)
)
_COMMON_TERMS = (
    select(_COUNTS.term)
    .where(_COUNTS.term.in_(bindparam("terms", expanding=True)), _COUNTS.day >= bindparam("day"))
    .group_by(_COUNTS.term)
    .having(func.sum(_COUNTS.n) > COMMON_AFTER)
)
_STORIES = StoryRow.__table__.c  # type: ignore[attr-defined]
_LINKED = (
    select(_ITEMS.story_id)
    .join(ItemRow.__table__, ItemRow.__table__.c.id == _ITEMS.item_id)  # type: ignore[attr-defined]
    .where(ItemRow.__table__.c.link == bindparam("link"), _ITEMS.added_at >= bindparam("since"))  # type: ignore[attr-defined]
    .order_by(_ITEMS.added_at)
    .limit(1)
)
_IS_OFFICIAL = select(_STORIES.is_official).where(_STORIES.id == bindparam("story"))
_TOUCH = (
    update(StoryRow)
    .where(_STORIES.id == bindparam("story"))
    .values(last_seen_at=bindparam("now"), is_official=bindparam("official"))
)
_SOURCES = (
    select(_ITEMS.feed_id, func.min(_ITEMS.added_at))
    .where(_ITEMS.story_id == bindparam("story"))
    .group_by(_ITEMS.feed_id)
    .order_by(func.min(_ITEMS.added_at))
)
_CANDIDATES = select(_ITEMS.item_id, _ITEMS.story_id, _ITEMS.words, _ITEMS.parties).where(
    _ITEMS.item_id.in_(bindparam("ids", expanding=True))
)


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
    # Core statements on the session's connection, in its transaction: the ORM's per-statement
    # bookkeeping was most of this stage's cost, several statements per new item.
    c = s.connection()
    if items:
        # The index only ever needs the window: older terms go, so its size follows the feed
        # volume of one window, never the size of history.
        c.execute(delete(StoryTermRow).where(col(StoryTermRow.seen_at) < since))
        c.execute(delete(StoryTermCountRow).where(col(StoryTermCountRow.day) < _day(since)))
    # Statements of the dialect's insert, built once per call: each item only binds values.
    new_story = insert(StoryRow).returning(_STORIES.id)
    add_item = insert(StoryItemRow).on_conflict_do_nothing(index_elements=["item_id"])
    add_terms = insert(StoryTermRow).on_conflict_do_nothing(index_elements=["term", "item_id"])
    counted = insert(StoryTermCountRow)
    count_terms = counted.on_conflict_do_update(
        index_elements=["term", "day"], set_={"n": StoryTermCountRow.n + counted.excluded.n}
    )
    for item, item_id in sorted(items, key=lambda p: p[0].item_key):
        words, parties = item_features(item)
        official = is_official(item.link, official_domains)
        story_id = _by_link(c, item, since) or _by_terms(c, words - _common(c, words, since), words, parties, since)
        became_official = False
        if story_id is None:
            values = {"title": item.title, "created_at": now, "last_seen_at": now, "is_official": official}
            story_id, is_new = int(c.execute(new_story, values).scalar_one()), True
        else:
            was_official = bool(c.execute(_IS_OFFICIAL, {"story": story_id}).scalar())
            became_official = official and not was_official
            c.execute(_TOUCH, {"story": story_id, "now": now, "official": was_official or official})
            is_new = False
        c.execute(
            add_item,
            {
                "item_id": item_id,
                "story_id": story_id,
                "feed_id": item.feed_id,
                "is_official": official,
                "words": sorted(words),
                "parties": sorted(parties),
                "added_at": now,
            },
        )
        terms = sorted(words, key=len, reverse=True)[:MAX_TERMS]
        if terms:
            # Parameters as a list (executemany): one cached statement, not one compiled per item.
            rows = [{"term": t[:64], "item_id": item_id, "story_id": story_id, "seen_at": now} for t in sorted(terms)]
            c.execute(add_terms, rows)
            c.execute(count_terms, [{"term": t, "day": _day(now), "n": 1} for t in sorted({t[:64] for t in terms})])
        if is_new:
            sources: tuple[str, ...] = (item.feed_id,)
        else:
            sources = tuple(f for f, _ in c.execute(_SOURCES, {"story": story_id}).all())
        out[item.item_key] = StoryView(story_id, is_new, sources, official or became_official, became_official)
    return out


def _by_link(c: Connection, item: Item, since: datetime) -> int | None:
    if not item.link:
        return None
    found = c.execute(_LINKED, {"link": item.link, "since": since}).scalar_one_or_none()
    return int(found) if found is not None else None


def _day(at: datetime) -> int:
    return int(at.timestamp() // 86400)


def _common(c: Connection, words: frozenset[str], since: datetime) -> frozenset[str]:
    """The item's words indexed by more than COMMON_AFTER items of the window (by day counts)."""
    if not words:
        return frozenset()
    rows = c.execute(_COMMON_TERMS, {"terms": sorted({w[:64] for w in words}), "day": _day(since)}).scalars()
    found = set(rows)
    return frozenset(w for w in words if w[:64] in found)


def _by_terms(
    c: Connection, lookup: frozenset[str], words: frozenset[str], parties: frozenset[str], since: datetime
) -> int | None:
    """The story of the recent item sharing most ``lookup`` words that ``same_story`` accepts."""
    if not lookup:
        return None
    rows = c.execute(_TERM_HITS, {"terms": sorted({w[:64] for w in lookup}), "since": since}).all()
    ids = [item_id for item_id, count in rows if count >= 2]
    if not ids:
        return None
    candidates = {
        int(item_id): (int(story_id), other_words, other_parties)
        for item_id, story_id, other_words, other_parties in c.execute(_CANDIDATES, {"ids": ids}).all()
    }
    for item_id in ids:  # most shared words first
        other = candidates.get(int(item_id))
        if other and same_story(words, parties, frozenset(other[1]), frozenset(other[2])):
            return other[0]
    return None
