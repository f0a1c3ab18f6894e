"""Put each new item into a story, inside the poll's transaction. Only ``Store`` calls this.

A story is found by exact link first, then through the term index: the items of the last
``window`` that share distinctive words with the new one, best first, checked with
``stories.same_story``. A poll's new items are placed together: a fixed number of statements
per poll, whatever its size, each bounded by the window's volume, whatever the size of history.
On PostgreSQL, replicas place their polls' items one after another (an advisory lock held to
the poll's commit), so two replicas never open two stories for the same event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, col

from watcher.model import Item
from watcher.store.schema import ItemRow, StoryItemRow, StoryRow, StoryTermCountRow, StoryTermRow
from watcher.stories import StoryView, is_official, item_features, same_story

# Words indexed per item: its rarest in the window (ties: the longest), since a rare word is what
# a later item of the same story will look up; an item's everyday words would only be postings to
# write and to read.
MAX_TERMS = 24
# The advisory lock that serialises story placement across replicas on PostgreSQL ("stor" in ASCII).
STORY_LOCK = 0x73746F72
MAX_CANDIDATES = 10  # recent items compared in full per new item
# A term indexed by more items than this within the window is not looked up: in a busy window a
# word that common is no evidence of one story (like "market" or a big tech firm's name), and its
# postings would make each lookup cost more the more items the window holds. Candidates are still
# compared in full, common words included, by ``same_story``.
COMMON_AFTER = 200
# Of the words the window index holds, only an item's rarest are looked up: a shared rare word
# (a name, a case number, a term of art) is what points at the same story, and the postings of
# words most items share would make a lookup cost grow with the window's volume.
LOOKUP_TERMS = 12
# Of a looked-up word's postings, the most recent: the story a new item continues is the one that
# has been in the news lately, and older postings of a word that busy would only cost reading.
RECENT_POSTINGS = 50

# Statements built once, with expanding IN parameters: a call binds values, never builds SQL.
_TERMS = StoryTermRow.__table__.c  # type: ignore[attr-defined]
_ITEMS = StoryItemRow.__table__.c  # type: ignore[attr-defined]
_STORIES = StoryRow.__table__.c  # type: ignore[attr-defined]
_ITEM_ROWS = ItemRow.__table__.c  # type: ignore[attr-defined]
_LINKS = (
    select(_ITEM_ROWS.link, _ITEMS.story_id)
    .join(ItemRow.__table__, _ITEM_ROWS.id == _ITEMS.item_id)  # type: ignore[attr-defined]
    .where(_ITEM_ROWS.link.in_(bindparam("links", expanding=True)), _ITEMS.added_at >= bindparam("since"))
    .order_by(_ITEMS.added_at, _ITEMS.item_id)
)
_OFFICIAL_OF = select(_STORIES.id, _STORIES.is_official).where(_STORIES.id.in_(bindparam("ids", expanding=True)))
_TOUCH = (
    update(StoryRow)
    .where(_STORIES.id == bindparam("story"))
    .values(last_seen_at=bindparam("now"), is_official=bindparam("official"))
)
_SOURCES = (
    select(_ITEMS.story_id, _ITEMS.feed_id, func.min(_ITEMS.added_at))
    .where(_ITEMS.story_id.in_(bindparam("ids", expanding=True)))
    .group_by(_ITEMS.story_id, _ITEMS.feed_id)
    .order_by(_ITEMS.story_id, func.min(_ITEMS.added_at), _ITEMS.feed_id)
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
    """Stories for one poll's new items, in a fixed number of statements per call.

    Everything the decisions need is read up front (links, common words, postings, candidates,
    touched stories), each item is placed in memory in key order (an item may join a story an
    earlier item of the same batch opened), and the rows are written with one executemany per
    table. The result is what placing the items one by one against the database would give.
    """
    if not items:
        return {}
    since = now - window
    # Core statements on the session's connection, in its transaction: the ORM's per-statement
    # bookkeeping would cost more than the work.
    c = s.connection()
    if c.dialect.name == "postgresql":
        # One replica places stories at a time, until its poll commits: two replicas reading the
        # window at the same instant would each open a story for the same event. (SQLite has one
        # writer anyway.) Fetching, parsing and matching still run in parallel across replicas.
        c.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STORY_LOCK})
    # The index only ever needs the window: older terms go, so its size follows the feed volume
    # of one window, never the size of history.
    c.execute(delete(StoryTermRow).where(col(StoryTermRow.seen_at) < since))
    c.execute(delete(StoryTermCountRow).where(col(StoryTermCountRow.day) < _day(since)))

    batch = _Batch(official_domains)
    for item, item_id in sorted(items, key=lambda p: p[0].item_key):
        batch.add(item, item_id)
    batch.read(c, since)
    for pending in batch.pending:
        batch.place(pending)
    return batch.write(c, insert, now)


@dataclass(slots=True)
class _Pending:
    """One new item on its way into a story; ``story`` is a real id, or a negative key for a
    story this batch opens."""

    item: Item
    item_id: int
    words: frozenset[str]
    parties: frozenset[str]
    official: bool
    terms: tuple[str, ...] = ()
    lookup: tuple[str, ...] = ()
    story: int = 0
    is_new: bool = False


class _Batch:
    """The state of one call: what the database said, and what the batch has placed so far."""

    def __init__(self, official_domains: Sequence[str]) -> None:
        self.official_domains = official_domains
        self.pending: list[_Pending] = []
        self.opened: list[_Pending] = []  # the items that open a story, by -key - 1
        # From the database: earliest story of a link, window counts and postings of terms,
        # and the candidates' (story, words, parties).
        self.db_links: dict[str, int] = {}
        self.db_counts: dict[str, int] = {}
        self.db_postings: dict[str, list[int]] = {}
        self.known: dict[int, tuple[int, frozenset[str], frozenset[str]]] = {}
        # Placed by this batch: the same, for the items already placed.
        self.links: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.postings: dict[str, list[int]] = {}
        self._c: Connection | None = None

    def add(self, item: Item, item_id: int) -> None:
        words, parties = item_features(item)
        official = is_official(item.link, self.official_domains)
        self.pending.append(_Pending(item, item_id, words, parties, official))

    def read(self, c: Connection, since: datetime) -> None:
        """Everything the placements need, in a handful of statements for the whole batch."""
        self._c = c
        links = sorted({p.item.link for p in self.pending if p.item.link})
        for chunk in _chunks(links):
            for link, story_id in c.execute(_LINKS, {"links": chunk, "since": since}).all():
                self.db_links.setdefault(link, int(story_id))
        words = sorted({w[:64] for p in self.pending for w in p.words})
        self.db_counts.update(_window_counts(c, words, _day(since)))
        for p in self.pending:
            p.lookup = self._rarest(p)
        rare = sorted({t for p in self.pending for t in p.lookup})
        for term, item_id in _postings(c, rare, since):
            self.db_postings.setdefault(term, []).append(item_id)
        # The candidates each item would compare against the database alone; placements that
        # need others (a word turned common within the batch) read those one by one.
        wanted = {i for p in self.pending for i in self._ranked(p, with_batch=False)}
        self._read_known(wanted)

    def _read_known(self, ids: Iterable[int]) -> None:
        assert self._c is not None
        missing = sorted(set(ids) - self.known.keys())
        for chunk in _chunks(missing):
            for item_id, story_id, words, parties in self._c.execute(_CANDIDATES, {"ids": chunk}).all():
                self.known[int(item_id)] = (int(story_id), frozenset(words), frozenset(parties))

    def _rarest(self, p: _Pending) -> tuple[str, ...]:
        """The item's LOOKUP_TERMS rarest words among those the window's index holds."""
        held = ((self.db_counts.get(t, 0), t) for t in {w[:64] for w in p.words})
        return tuple(t for _n, t in sorted((n, t) for n, t in held if 0 < n <= COMMON_AFTER)[:LOOKUP_TERMS])

    def _ranked(self, p: _Pending, *, with_batch: bool) -> list[int]:
        """Recent items sharing at least two looked-up words, most shared first (ties: oldest).

        Against the database, the item's rarest indexed words; against the items this batch has
        placed, every word of the item that is not common (they are in memory: no cost to ask).
        """
        shared: dict[int, int] = {}
        counts, batch_counts = self.db_counts, self.counts
        for term in p.lookup:
            if counts.get(term, 0) + batch_counts.get(term, 0) <= COMMON_AFTER:
                for item_id in self.db_postings.get(term, ()):
                    shared[item_id] = shared.get(item_id, 0) + 1
        if with_batch:
            for term in {w[:64] for w in p.words}:
                posted = self.postings.get(term)
                if posted and counts.get(term, 0) + batch_counts.get(term, 0) <= COMMON_AFTER:
                    for item_id in posted:
                        shared[item_id] = shared.get(item_id, 0) + 1
        ranked = sorted(shared.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CANDIDATES]
        return [item_id for item_id, n in ranked if n >= 2]

    def place(self, p: _Pending) -> None:
        link = p.item.link
        story = (self.db_links.get(link) or self.links.get(link)) if link else None
        if story is None:
            story = self._by_terms(p)
        if story is None:
            self.opened.append(p)
            story, p.is_new = -len(self.opened), True
        p.story = story
        if link:
            self.links.setdefault(link, story)
        seen = {t: self.db_counts.get(t, 0) + self.counts.get(t, 0) for t in {w[:64] for w in p.words}}
        p.terms = tuple(sorted(sorted(seen, key=lambda t: (seen[t], -len(t), t))[:MAX_TERMS]))
        for term in p.terms:
            self.postings.setdefault(term, []).append(p.item_id)
            self.counts[term] = self.counts.get(term, 0) + 1
        self.known[p.item_id] = (story, p.words, p.parties)

    def _by_terms(self, p: _Pending) -> int | None:
        ids = self._ranked(p, with_batch=True)
        self._read_known(ids)
        for item_id in ids:
            other = self.known.get(item_id)
            if other and same_story(p.words, p.parties, other[1], other[2]):
                return other[0]
        return None

    def write(self, c: Connection, insert: Callable[[Any], Any], now: datetime) -> dict[str, StoryView]:
        """The rows of the whole batch, one executemany per table, in key order (concurrent
        writers on PostgreSQL lock rows in the same order and cannot deadlock)."""
        official = {-i - 1: False for i in range(len(self.opened))}
        for p in self.pending:
            if p.story < 0:
                official[p.story] = official[p.story] or p.official
        opened = [
            {"title": p.item.title, "created_at": now, "last_seen_at": now, "is_official": official[-i - 1]}
            for i, p in enumerate(self.opened)
        ]
        ids: dict[int, int] = {}
        if opened:
            stmt = insert(StoryRow).returning(_STORIES.id, sort_by_parameter_order=True)
            new_ids = [int(i) for i in c.execute(stmt, opened).scalars().all()]
            ids = {-i - 1: story_id for i, story_id in enumerate(new_ids)}
        touched = sorted({p.story for p in self.pending if p.story > 0})
        was_official: dict[int, bool] = {}
        sources: dict[int, list[str]] = {}
        for chunk in _chunks(touched):
            was_official.update({int(i): bool(o) for i, o in c.execute(_OFFICIAL_OF, {"ids": chunk}).all()})
            for story_id, feed_id, _first in c.execute(_SOURCES, {"ids": chunk}).all():
                sources.setdefault(int(story_id), []).append(feed_id)
        official.update(was_official)

        out: dict[str, StoryView] = {}
        for p in self.pending:
            became = p.official and not p.is_new and not official[p.story]
            official[p.story] = official[p.story] or p.official
            feeds = sources.setdefault(p.story, [])
            if p.item.feed_id not in feeds:
                feeds.append(p.item.feed_id)
            story_id = ids.get(p.story, p.story)
            out[p.item.item_key] = StoryView(story_id, p.is_new, tuple(feeds), p.official, became)

        if touched:
            c.execute(_TOUCH, [{"story": i, "now": now, "official": official[i]} for i in touched])
        rows = [
            {
                "item_id": p.item_id,
                "story_id": ids.get(p.story, p.story),
                "feed_id": p.item.feed_id,
                "is_official": p.official,
                "words": sorted(p.words),
                "parties": sorted(p.parties),
                "added_at": now,
            }
            for p in sorted(self.pending, key=lambda p: p.item_id)
        ]
        c.execute(insert(StoryItemRow).on_conflict_do_nothing(index_elements=["item_id"]), rows)
        postings = sorted((t, p.item_id, ids.get(p.story, p.story)) for p in self.pending for t in p.terms)
        if postings:
            # Parameters as a list (executemany): one cached statement for every row.
            _add_postings(c, postings, now)
            counted = insert(StoryTermCountRow)
            count_terms = counted.on_conflict_do_update(
                index_elements=["term", "day"], set_={"n": StoryTermCountRow.n + counted.excluded.n}
            )
            c.execute(count_terms, [{"term": t, "day": _day(now), "n": n} for t, n in sorted(self.counts.items())])
        return out


# The two statements whose rows number tens of thousands per poll (a poll's items share their
# words with hundreds of recent items, and index about forty each) run on the driver's cursor:
# SQLAlchemy's per-row processing cost more than SQLite's work. The one typed value, the time,
# is converted once per call by the column's own type.
def _placeholder(c: Connection) -> str:
    return "?" if c.dialect.paramstyle == "qmark" else "%s"


def _when(c: Connection, at: datetime) -> Any:
    process = _TERMS.seen_at.type.bind_processor(c.dialect)
    return process(at) if process else at


def _cursor(c: Connection) -> Any:
    """The driver's own cursor on the session's connection (inside its transaction), closed on exit."""
    return closing(c.connection.dbapi_connection.cursor())  # type: ignore[union-attr]


def _postings(c: Connection, terms: Sequence[str], since: datetime) -> Iterator[tuple[str, int]]:
    """(term, item id) of the RECENT_POSTINGS most recent indexed items of the window holding
    each of ``terms``: one index range per term, read backwards, so a lookup costs the same in
    a window of a thousand items or of a hundred thousand."""
    mark, when = _placeholder(c), _when(c, since)
    sql = (
        f"SELECT item_id FROM story_terms WHERE term = {mark} AND seen_at >= {mark} "
        f"ORDER BY seen_at DESC LIMIT {RECENT_POSTINGS}"
    )
    with _cursor(c) as cursor:
        for term in terms:
            cursor.execute(sql, (term, when))
            yield from ((term, item_id) for (item_id,) in cursor.fetchall())


def _window_counts(c: Connection, terms: Sequence[str], first_day: int) -> Iterator[tuple[str, int]]:
    """(term, items indexing it since ``first_day``) for those of ``terms`` the window holds."""
    mark = _placeholder(c)
    with _cursor(c) as cursor:
        for chunk in _chunks(terms):
            marks = ", ".join([mark] * len(chunk))
            cursor.execute(
                f"SELECT term, SUM(n) FROM story_term_counts WHERE term IN ({marks}) AND day >= {mark} GROUP BY term",
                (*chunk, first_day),
            )
            yield from ((term, int(n)) for term, n in cursor.fetchall())


def _add_postings(c: Connection, rows: Sequence[tuple[str, int, int]], now: datetime) -> None:
    mark, when = _placeholder(c), _when(c, now)
    with _cursor(c) as cursor:
        cursor.executemany(
            "INSERT INTO story_terms (term, item_id, story_id, seen_at) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT (term, item_id) DO NOTHING",
            [(t, i, s, when) for t, i, s in rows],
        )


def _chunks(values: Sequence[Any], size: int = 500) -> Iterator[list[Any]]:
    for i in range(0, len(values), size):
        yield list(values[i : i + size])


def _day(at: datetime) -> int:
    return int(at.timestamp() // 86400)
