"""Replicas sharing one PostgreSQL: what two processes at the same instant must never do twice.

Each "replica" is a Store with its own engine and connections, as a second process would have;
threads start their work together behind a barrier, so the transactions really overlap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from watcher.model import Item
from watcher.store.schema import StoryItemRow
from watcher.store.store import FeedSpec, Store

NOW = datetime.now(UTC).replace(microsecond=0)
DEALS = [
    ("Microsoft", "Mistral"), ("Amazon", "Anthropic"), ("Alphabet", "Character"), ("Nvidia", "Runai"),
    ("Meta", "Scale"), ("Apple", "Perplexity"), ("Microsoft", "Inflection"), ("Amazon", "Adept"),
]  # fmt: skip


def together(*work: Callable[[], Any]) -> list[Any]:
    """Run each callable on its own thread, released at the same instant; return their results."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(i: int, fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(work)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


def item(feed: str, n: int, a: str, b: str) -> Item:
    title = f"{a} / {b} partnership: CMA invitation to comment on the {a} {b} arrangement"
    summary = f"The CMA invites comments on whether the {a} and {b} arrangement is a relevant merger situation."
    return Item(feed, f"{feed}-{n}", title, f"https://{feed}.example/{n}", summary, "", NOW - timedelta(hours=1))


def test_two_replicas_never_open_two_stories_for_one_event(pg_url: str) -> None:
    one, two = Store.open(pg_url), Store.open(pg_url)
    try:
        one.sync_feeds([FeedSpec("wire", "https://wire.example/feed"), FeedSpec("daily", "https://daily.example")], NOW)
        for n, (a, b) in enumerate(DEALS):

            def save(store: Store, feed: str, n: int = n, a: str = a, b: str = b) -> None:
                store.save_poll(feed, NOW, [item(feed, n, a, b)], [], etag=None, last_modified=None, next_check_at=NOW)

            together(lambda: save(one, "wire"), lambda: save(two, "daily"))
        with one.engine.connect() as c:
            rows = c.execute(select(StoryItemRow.item_id, StoryItemRow.story_id)).all()  # type: ignore[call-overload]
    finally:
        one.close()
        two.close()
    assert len(rows) == 2 * len(DEALS)
    assert len({story for _, story in rows}) == len(DEALS)  # each wire item shares its story with the daily's


def test_replicas_claim_disjoint_feeds(pg_url: str) -> None:
    stores = [Store.open(pg_url) for _ in range(3)]
    ids = [f"feed-{i:03d}" for i in range(120)]
    try:
        stores[0].sync_feeds([FeedSpec(i, f"https://example.org/{i}") for i in ids], NOW)
        claimed = together(
            *(
                lambda s=s: [
                    f.id for f in s.claim_due_feeds(ids, due_by=NOW, until=NOW + timedelta(minutes=1), limit=50)
                ]
                for s in stores
            )
        )
    finally:
        for s in stores:
            s.close()
    everyone = [f for got in claimed for f in got]
    assert len(everyone) == len(set(everyone))  # nobody polls a feed another replica claimed
    assert set(everyone) == set(ids)  # and together they took every due feed
