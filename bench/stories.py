"""Stories: clustering quality on our labelled near-duplicates, and the cost of identity and
clustering per item with 10,000 and 1,000,000 items of history.

    python -m bench.stories            quality and cost (about a minute; 1M rows on SQLite)
    python -m bench.stories --quality  quality only

Quality: every item of tests/data/stories/near-duplicates.jsonl goes through the real store
(SQLite) in time order; pairwise precision and recall of "same story" against the labels.
Cost: new items saved through ``Store.save_poll`` (identity, stories, decisions) against a
naive clusterer that compares each new item with every stored item; peak Python memory of the
measured phase from tracemalloc.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, select, text

from watcher.logs import configure_logging
from watcher.model import Item, Match, Reason, Severity
from watcher.store.decide import PlannedMatch
from watcher.store.schema import ItemRow, StoryItemRow
from watcher.store.store import FeedSpec, Store
from watcher.stories import features, item_features, parties, same_story

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT / "tests" / "data" / "stories" / "near-duplicates.jsonl"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def load_dataset() -> list[dict[str, object]]:
    rows = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: (r["day"], r["link"]))


def pairwise(labels: list[str], predicted: list[int]) -> tuple[float, float, int, int, int]:
    tp = fp = fn = 0
    for i, j in combinations(range(len(labels)), 2):
        truth, guess = labels[i] == labels[j], predicted[i] == predicted[j]
        tp += truth and guess
        fp += (not truth) and guess
        fn += truth and not guess
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def cluster_through_store(db_url: str) -> tuple[list[str], list[int]]:
    """Each dataset item saved by the real store; returns (labels, story ids)."""
    rows = load_dataset()
    store = Store.open(db_url)
    try:
        feeds = sorted({urlsplit(str(r["link"])).hostname or "x" for r in rows})
        store.sync_feeds([FeedSpec(f.replace(".", "-"), f"https://{f}/feed") for f in feeds], T0)
        for n, r in enumerate(rows):
            feed = (urlsplit(str(r["link"])).hostname or "x").replace(".", "-")
            now = T0 + timedelta(days=int(r["day"]))  # type: ignore[call-overload]
            item = Item(feed, f"i{n}", str(r["title"]), str(r["link"]), str(r["lead"]), "", now, content_hash=str(n))
            store.save_poll(feed, now, [item], [], etag=None, last_modified=None, next_check_at=now)
        with store.engine.connect() as conn:
            story_of = dict(
                conn.execute(
                    select(ItemRow.item_key, StoryItemRow.story_id).join(  # type: ignore[call-overload]
                        StoryItemRow, StoryItemRow.item_id == ItemRow.id
                    )
                ).all()
            )
        return [str(r["story"]) for r in rows], [int(story_of[f"i{n}"]) for n in range(len(rows))]
    finally:
        store.close()


def quality_rows(db_url: str) -> list[tuple[str, ...]]:
    labels, stories = cluster_through_store(db_url)
    p, r, tp, fp, fn = pairwise(labels, stories)
    return [
        (
            f"clustering: {len(labels)} items, {len(set(labels))} labelled stories",
            f"precision {p:.3f}",
            f"recall {r:.3f}",
            f"{len(set(stories))} stories found; pairs tp={tp} fp={fp} fn={fn}",
        ),
    ]


WORDS = [f"w{i}" for i in range(4000)]
NAMES = [f"Co{i}" for i in range(3000)]


def synthetic(rng: random.Random, n: int, feed: str, when: datetime) -> Item:
    a, b = rng.sample(NAMES, 2)
    title = f"{a} and {b} " + " ".join(rng.sample(WORDS, 6))
    lead = f"Regulator reviews the deal between {a} and {b}. " + " ".join(rng.sample(WORDS, 25))
    return Item(feed, f"{feed}-{n}", title, f"https://{feed}.example/{n}", lead, "", when, content_hash=str(n))


def seed_history(store: Store, size: int, now: datetime) -> None:
    """Bulk-load ``size`` old items (outside the story window) straight into the items table."""
    rng = random.Random(size)
    old = now - timedelta(days=60)
    batch = []
    with store.engine.begin() as conn:
        for n in range(size):
            it = synthetic(rng, n, "history", old)
            batch.append(
                {
                    "feed_id": "history",
                    "item_key": it.item_key,
                    "title": it.title,
                    "link": it.link,
                    "summary": it.summary,
                    "content": "",
                    "published_at": old,
                    "authors": [],
                    "tags": [],
                    "content_hash": it.content_hash,
                    "article": "",
                    "revision": 1,
                    "first_seen_at": old,
                }
            )
            if len(batch) == 20_000:
                conn.execute(insert(ItemRow), batch)
                batch.clear()
        if batch:
            conn.execute(insert(ItemRow), batch)


def naive_cluster(store: Store, item: Item) -> int | None:
    """Compare with every stored item: what "not a scan of history" is measured against."""
    words, names = item_features(item)
    with store.engine.connect() as conn:
        for id_, title, summary in conn.execute(text("SELECT id, title, summary FROM items")):
            if same_story(words, names, features(title, summary), parties(title, summary)):
                return int(id_)
    return None


def cost_rows(history: int) -> list[tuple[str, ...]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        now = T0 + timedelta(days=90)
        store.sync_feeds([FeedSpec("history", "https://h.example/f"), FeedSpec("live", "https://l.example/f")], now)
        start = time.perf_counter()
        seed_history(store, history, now)
        seeded = time.perf_counter() - start
        rng = random.Random(7)
        batches = [[synthetic(rng, b * 25 + i, "live", now) for i in range(25)] for b in range(16)]

        def plan(it: Item) -> PlannedMatch:
            m = Match("r", it.feed_id, it.item_key, Severity.LOW, (Reason("title", "x", 0, 1),))
            return PlannedMatch(m, "R", ("console",))

        start = time.perf_counter()
        for batch in batches[:-2]:
            planned = [plan(i) for i in batch]
            store.save_poll("live", now, batch, planned, etag=None, last_modified=None, next_check_at=now)
        ours = time.perf_counter() - start
        # Memory on the last batches only: tracemalloc slows Python down too much to time with it.
        tracemalloc.start()
        for batch in batches[-2:]:
            planned = [plan(i) for i in batch]
            store.save_poll("live", now, batch, planned, etag=None, last_modified=None, next_check_at=now)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sample = [synthetic(rng, 10_000 + i, "live", now) for i in range(3 if history > 100_000 else 20)]
        start = time.perf_counter()
        for it in sample:
            naive_cluster(store, it)
        naive = (time.perf_counter() - start) / len(sample)
        store.close()
    per_item = ours / sum(len(b) for b in batches[:-2])
    return [
        (
            f"identity + stories + decisions, {history:,} stored items",
            f"{1 / per_item:,.0f} items/s",
            f"{1 / naive:,.2f} items/s",
            f"{naive / per_item:,.0f}x; peak {peak / 1e6:.1f} MB; history loaded in {seeded:.0f}s",
        ),
    ]


def main(argv: list[str]) -> None:
    configure_logging("warning")
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += quality_rows(f"sqlite:///{tmp}/quality.db")
    if "--quality" not in argv:
        for size in (10_000, 1_000_000):
            rows += cost_rows(size)
    table = Table(title="watcher stories (naive baseline: compare with every stored item)")
    for col in ("benchmark", "watcher", "naive baseline", "ratio / notes"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(width=150).print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
