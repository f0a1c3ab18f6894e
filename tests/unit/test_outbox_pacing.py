"""Digests, quiet hours, rate limits and per-channel backoff in the outbox, over a real SQLite
store with a stub deliverer (our own seam) and an injected clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.unit.test_outbox import Clock, StubDeliver
from watcher.model import Channel, DeliveryResult, Item, Match, Reason, Severity
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.store.decide import PlannedMatch, Throttle
from watcher.store.store import FeedSpec, Store

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday, noon UTC


def open_store(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path}/w.db")
    store.sync_feeds([FeedSpec("news", "https://example.org/news.atom", "News")], T0)
    return store


def alert(
    store: Store, key: str, channels: Sequence[str], at: datetime, severity: Severity = Severity.HIGH, title: str = ""
) -> None:
    # Words of their own, so no two test items are taken for one story.
    title = title or " ".join(f"{key}{word}" for word in ("alpha", "bravo", "charlie", "delta"))
    item = Item("news", key, title, f"https://example.org/{key}", "", "", at)
    match = Match("inquiry", "news", key, severity, (Reason("title", "inquiry", 0, 7),))
    store.save_poll(
        "news",
        at,
        [item],
        [PlannedMatch(match, "Inquiry opened", tuple(channels))],
        etag=None,
        last_modified=None,
        next_check_at=at,
    )


def outbox(store: Store, stub: StubDeliver, clock: Clock, channels: Mapping[str, Channel]) -> Outbox:
    policy = RetryPolicy(max_attempts=5, initial=timedelta(seconds=30), maximum=timedelta(minutes=10))
    return Outbox(store, channels, policy=policy, clock=clock, deliver=stub, rng=random.Random(3))


def drain(box: Outbox) -> None:
    asyncio.run(box.drain())


def statuses(store: Store) -> dict[str, int]:
    return store.count_deliveries()


MORNING = Channel("morning", "apprise", ("json://x",), format="text", mode="digest", digest_schedule="0 8 * * *")


def test_digest_waits_for_its_time_then_sends_one_message_with_everything(tmp_path: Path) -> None:
    store, clock, stub = open_store(tmp_path), Clock(), StubDeliver([])
    clock.now = T0
    for i in range(3):
        alert(store, f"k{i}", ["morning"], T0 + timedelta(minutes=i))
    box = outbox(store, stub, clock, {"morning": MORNING})
    clock.now = T0 + timedelta(hours=3)
    drain(box)
    assert stub.sent == [] and statuses(store) == {"pending": 3}
    clock.now = datetime(2026, 11, 29, 8, 0, 5, tzinfo=UTC)
    drain(box)
    [(name, message)] = stub.sent
    assert name == "morning"
    assert all(f"k{i}alpha" in message.body for i in range(3))
    assert statuses(store) == {"sent": 3}
    drain(box)
    assert len(stub.sent) == 1
    store.close()


def test_digest_survives_a_restart_and_the_next_one_starts_after_it(tmp_path: Path) -> None:
    store, clock = open_store(tmp_path), Clock()
    alert(store, "before", ["morning"], T0)
    store.close()  # the daemon stops; an alert arrives after it restarts
    store = Store.open(f"sqlite:///{tmp_path}/w.db")
    alert(store, "after", ["morning"], T0 + timedelta(hours=6))
    stub = StubDeliver([])
    box = outbox(store, stub, clock, {"morning": MORNING})
    clock.now = datetime(2026, 11, 29, 8, 1, tzinfo=UTC)
    drain(box)
    [(_, message)] = stub.sent
    assert "beforealpha" in message.body and "afteralpha" in message.body
    # An alert after the digest waits for the next morning.
    alert(store, "later", ["morning"], clock.now)
    clock.now += timedelta(hours=1)
    drain(box)
    assert len(stub.sent) == 1
    clock.now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    drain(box)
    assert len(stub.sent) == 2 and "lateralpha" in stub.sent[1][1].body
    store.close()


def test_failed_digest_is_retried_whole_then_dead_letters_and_can_be_retried(tmp_path: Path) -> None:
    store, clock = open_store(tmp_path), Clock()
    for key in ("a", "b"):
        alert(store, key, ["morning"], T0)
    down = DeliveryResult("morning", ok=False, error="HTTP 500 from JSON", recoverable=True)
    stub = StubDeliver([down] * 5)
    box = outbox(store, stub, clock, {"morning": MORNING})
    clock.now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    for _ in range(5):
        drain(box)
        clock.now += timedelta(minutes=15)
    assert len(stub.sent) == 5
    assert statuses(store) == {"failed": 2}
    assert store.retry_failed(None, clock.now) == 2
    drain(box)
    assert len(stub.sent) == 6 and statuses(store) == {"sent": 2}
    store.close()


def test_quiet_hours_hold_alerts_until_they_end_except_critical(tmp_path: Path) -> None:
    store, clock, stub = open_store(tmp_path), Clock(), StubDeliver([])
    night = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    alert(store, "routine", ["slack"], night, Severity.HIGH)
    alert(store, "urgent", ["slack"], night, Severity.CRITICAL)
    slack = Channel("slack", "apprise", ("json://x",), quiet_hours=("22:00", "07:00"), quiet_bypass=Severity.CRITICAL)
    box = outbox(store, stub, clock, {"slack": slack})
    clock.now = night
    drain(box)
    assert [m.title for _, m in stub.sent] == [stub.sent[0][1].title] and "urgent" in stub.sent[0][1].title
    clock.now = datetime(2026, 11, 29, 6, 59, tzinfo=UTC)
    drain(box)
    assert len(stub.sent) == 1
    clock.now = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    drain(box)
    assert len(stub.sent) == 2 and "routine" in stub.sent[1][1].title
    assert [r.attempts for r in store.alert_statuses()] == [1, 1]  # holding is not an attempt
    store.close()


def test_rate_limit_spreads_a_burst_without_spending_attempts(tmp_path: Path) -> None:
    store, clock, stub = open_store(tmp_path), Clock(), StubDeliver([])
    for i in range(5):
        alert(store, f"k{i}", ["slack"], T0)
    slack = Channel("slack", "apprise", ("json://x",), rate_limit=(2, 60.0))
    box = outbox(store, stub, clock, {"slack": slack})
    drain(box)
    assert len(stub.sent) == 2
    clock.now += timedelta(seconds=30)
    drain(box)
    assert len(stub.sent) == 2
    clock.now += timedelta(seconds=31)
    drain(box)
    assert len(stub.sent) == 4
    clock.now += timedelta(seconds=61)
    drain(box)
    assert len(stub.sent) == 5
    assert all(r.attempts == 1 for r in store.alert_statuses())
    store.close()


def test_a_throttling_channel_slows_only_itself_and_honours_retry_after(tmp_path: Path) -> None:
    store, clock = open_store(tmp_path), Clock()
    for i in range(3):
        alert(store, f"k{i}", ["slack", "email"], T0)
    throttled = DeliveryResult(
        "slack", ok=False, error="HTTP 429 from Slack", recoverable=True, retry_after_seconds=120
    )
    sent: list[str] = []

    def deliver(channel: Channel, message: object) -> DeliveryResult:
        sent.append(channel.name)
        if channel.name == "slack" and sent.count("slack") == 1:
            return throttled
        return DeliveryResult(channel.name, ok=True)

    channels = {
        "slack": Channel("slack", "apprise", ("json://s",)),
        "email": Channel("email", "apprise", ("json://e",)),
    }
    box = outbox(store, StubDeliver([]), clock, channels)
    box._deliver = deliver
    drain(box)
    assert sent.count("email") == 3 and sent.count("slack") == 1  # the other slack rows were not tried
    clock.now += timedelta(seconds=100)
    drain(box)
    assert sent.count("slack") == 1
    clock.now += timedelta(seconds=21)
    drain(box)
    assert sent.count("slack") == 4
    assert statuses(store) == {"sent": 6}
    store.close()


def test_follow_ups_and_throttle_surplus_can_wait_for_an_immediate_channels_digest(tmp_path: Path) -> None:
    store, clock, stub = open_store(tmp_path), Clock(), StubDeliver([])
    store.sync_feeds([FeedSpec("wire", "https://wire.example/rss", "Wire")], T0)
    slack = Channel("slack", "apprise", ("json://x",), digest_schedule="0 8 * * *")
    box = outbox(store, stub, clock, {"slack": slack})

    def story(feed: str, key: str, title: str, planned: dict[str, object]) -> None:
        item = Item(feed, key, title, f"https://{feed}.example/{key}", "", "", clock.now)
        match = Match("deals", feed, key, Severity.HIGH, (Reason("title", "partnership", 0, 11),))
        store.save_poll(
            feed,
            clock.now,
            [item],
            [PlannedMatch(match, "Deals", ("slack",), **planned)],  # type: ignore[arg-type]
            etag=None,
            last_modified=None,
            next_check_at=clock.now,
        )

    budget = {"follow_up": "digest", "throttle": Throttle(1, timedelta(days=1), surplus="digest")}
    story("news", "a", "Microsoft and Mistral AI agree partnership", budget)
    drain(box)
    assert len(stub.sent) == 1  # the first report goes at once
    story("wire", "b", "Mistral AI partnership with Microsoft agreed", budget)  # a follow-up
    story("wire", "c", "Nvidia backs robotics startup Figure in funding round", budget)  # over budget
    drain(box)
    assert len(stub.sent) == 1
    [trail] = store.explain("Nvidia backs robotics")
    assert "sent in the next digest" in (trail.matches[0].reason or "")
    clock.now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    drain(box)
    assert len(stub.sent) == 2
    digest = stub.sent[1][1]
    assert "Mistral AI partnership with Microsoft" in digest.body and "Nvidia" in digest.body
    assert statuses(store) == {"sent": 3}
    store.close()
