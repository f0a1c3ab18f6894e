"""Issue acceptance 2: a digest channel receives one message at its scheduled time with every
alert since the last digest, grouped by story, including alerts that arrived across a restart.

Real parts: the store on SQLite and PostgreSQL, apprise's JSON target, a loopback webhook
receiver. Only time is simulated, so "08:00 tomorrow" takes no wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.model import Channel, Item, Match, Reason, Severity
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.store.decide import PlannedMatch
from watcher.store.store import FeedSpec, Store

MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TUESDAY_8 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def poll(store: Store, feed: str, key: str, title: str, at: datetime, severity: Severity) -> None:
    item = Item(feed, key, title, f"https://{feed}.example/{key}", f"{title}. More details follow.", "", at)
    match = Match("deals", feed, key, severity, (Reason("title", "partnership", 0, 11),))
    planned = PlannedMatch(match, "AI partnerships", ("morning",), follow_up="notify")
    store.save_poll(feed, at, [item], [planned], etag=None, last_modified=None, next_check_at=at)


def outbox(store: Store, receiver: str, clock: Clock) -> Outbox:
    channel = Channel(
        "morning",
        "apprise",
        (receiver,),
        format="text",
        mode="digest",
        digest_schedule="0 8 * * mon-fri",
        timezone="Europe/London",
    )
    return Outbox(store, {"morning": channel}, policy=RetryPolicy(), clock=clock)


def test_one_digest_at_its_time_grouped_by_story_across_a_restart(db_url: str, feed_server: Any) -> None:
    feed_server.route("/digest", method="POST", status=200)
    receiver = feed_server.url("/digest").replace("http://", "json://")
    clock = Clock(MONDAY_NOON)
    store = Store.open(db_url)
    store.sync_feeds([FeedSpec(f, f"https://{f}.example/rss", f.title()) for f in ("wire", "paper", "blog")], clock.now)
    poll(store, "wire", "1", "Microsoft and Mistral AI agree partnership", clock.now, Severity.HIGH)
    poll(store, "blog", "2", "Nvidia backs robotics startup Figure", clock.now + timedelta(minutes=5), Severity.LOW)
    clock.now += timedelta(hours=1)
    asyncio.run(outbox(store, receiver, clock).drain())
    assert feed_server.requests_for("/digest") == []  # not before its time
    store.close()

    # The daemon restarts; more of the same story arrives, and an unrelated one.
    store = Store.open(db_url)
    clock.now = MONDAY_NOON + timedelta(hours=6)
    poll(store, "paper", "3", "Mistral AI partnership with Microsoft agreed", clock.now, Severity.HIGH)
    poll(store, "blog", "4", "Amazon invests in Anthropic again", clock.now, Severity.MEDIUM)
    box = outbox(store, receiver, clock)
    clock.now = TUESDAY_8 - timedelta(minutes=1)
    asyncio.run(box.drain())
    assert feed_server.requests_for("/digest") == []

    clock.now = TUESDAY_8 + timedelta(seconds=10)
    result = asyncio.run(box.drain())
    assert (result.digests, result.sent) == (1, 4)
    [request] = feed_server.requests_for("/digest")
    payload = json.loads(request.body)
    body = payload["message"]
    assert "4 alerts" in payload["title"]
    positions = [body.find(t) for t in ("Microsoft and Mistral AI", "Mistral AI partnership with", "Amazon", "Nvidia")]
    assert all(p >= 0 for p in positions), body
    # Grouped by story (the two Mistral reports together, first: highest severity), then severity.
    assert positions == sorted(positions), body
    assert store.count_deliveries() == {"sent": 4}
    [digest_id] = {r.digest_id for r in store.alert_statuses()}
    assert digest_id is not None and len(store.alert_statuses(digest_id=digest_id)) == 4
    assert f"--digest {digest_id}" not in body  # four alerts fit: nothing left to look up

    # Nothing more until the next morning, and then only what is new.
    asyncio.run(box.drain())
    poll(store, "wire", "5", "Google DeepMind partnership with Anthropic rumoured", clock.now, Severity.MEDIUM)
    clock.now = TUESDAY_8 + timedelta(hours=2)
    asyncio.run(box.drain())
    assert len(feed_server.requests_for("/digest")) == 1
    clock.now = TUESDAY_8 + timedelta(days=1)
    asyncio.run(box.drain())
    second = json.loads(feed_server.requests_for("/digest")[1].body)
    assert "DeepMind" in second["message"] and "Mistral" not in second["message"]
    store.close()


def test_two_replicas_send_one_digest(db_url: str, feed_server: Any) -> None:
    feed_server.route("/digest", method="POST", status=200)
    receiver = feed_server.url("/digest").replace("http://", "json://")
    clock = Clock(MONDAY_NOON)
    first, second = Store.open(db_url), Store.open(db_url)
    first.sync_feeds([FeedSpec("wire", "https://wire.example/rss", "Wire")], clock.now)
    poll(first, "wire", "1", "Microsoft and Mistral AI agree partnership", clock.now, Severity.HIGH)
    clock.now = TUESDAY_8
    boxes = [outbox(first, receiver, clock), outbox(second, receiver, clock)]

    async def both() -> None:
        await asyncio.gather(*(b.drain() for b in boxes))

    asyncio.run(both())
    asyncio.run(both())
    assert len(feed_server.requests_for("/digest")) == 1
    first.close()
    second.close()
