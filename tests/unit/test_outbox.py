"""Outbox decisions with a stub deliverer (our own seam) over a real SQLite store."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.model import Channel, DeliveryResult, Item, Match, Message, Reason, Severity
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.store.decide import PlannedMatch
from watcher.store.store import FeedSpec, Store

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class StubDeliver:
    def __init__(self, results: list[DeliveryResult]) -> None:
        self.results = results
        self.sent: list[tuple[str, Message]] = []

    def __call__(self, channel: Channel, message: Message) -> DeliveryResult:
        self.sent.append((channel.name, message))
        return self.results.pop(0) if self.results else DeliveryResult(channel.name, ok=True)


def setup(tmp_path: Path, channels: tuple[str, ...] = ("email",)) -> Store:
    store = Store.open(f"sqlite:///{tmp_path}/w.db")
    store.sync_feeds([FeedSpec("cma-news", "https://example.org/cma.atom", "CMA news")], T0)
    it = Item("cma-news", "k1", "CMA invites comment on <AI> deal", "https://example.org/a", "Summary", "", T0)
    m = Match("cma-itc", "cma-news", "k1", Severity.HIGH, (Reason("title", "invites comment", 4, 19),))
    store.save_poll(
        "cma-news",
        T0,
        [it],
        [PlannedMatch(m, "CMA invitation to comment", channels)],
        etag=None,
        last_modified=None,
        next_check_at=T0,
    )
    return store


def outbox(store: Store, stub: StubDeliver, clock: Clock, max_attempts: int = 3) -> Outbox:
    policy = RetryPolicy(max_attempts=max_attempts, initial=timedelta(seconds=30), maximum=timedelta(minutes=5))
    return Outbox(
        store,
        {"email": Channel("email", "apprise", ("mailto://x",))},
        policy=policy,
        clock=clock,
        deliver=stub,
        rng=random.Random(1),
    )


def test_success_marks_sent_once(tmp_path: Path) -> None:
    store, clock = setup(tmp_path), Clock()
    stub = StubDeliver([])
    assert asyncio.run(outbox(store, stub, clock).drain()).sent == 1
    assert asyncio.run(outbox(store, stub, clock).drain()).sent == 0
    title = stub.sent[0][1].title
    assert title == "[HIGH] CMA invitation to comment: CMA invites comment on <AI> deal"
    store.close()


def test_retry_with_backoff_then_dead(tmp_path: Path) -> None:
    store, clock = setup(tmp_path), Clock()
    fail = DeliveryResult("email", ok=False, error="SMTP 451 try later", recoverable=True)
    stub = StubDeliver([fail, fail, fail])
    box = outbox(store, stub, clock)
    assert asyncio.run(box.drain()).retried == 1
    assert asyncio.run(box.drain()).sent == 0  # not due yet: backoff
    clock.now += timedelta(seconds=40)  # 30 s ± 20 %
    assert asyncio.run(box.drain()).retried == 1
    clock.now += timedelta(seconds=80)  # 60 s ± 20 %
    assert asyncio.run(box.drain()).failed == 1
    [row] = store.alert_statuses()
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "SMTP 451 try later")
    store.close()


def test_unrecoverable_fails_at_once(tmp_path: Path) -> None:
    store, clock = setup(tmp_path), Clock()
    stub = StubDeliver([DeliveryResult("email", ok=False, error="bad URL", recoverable=False)])
    assert asyncio.run(outbox(store, stub, clock).drain()).failed == 1
    store.close()


def test_unknown_channel_fails_visibly(tmp_path: Path) -> None:
    store, clock = setup(tmp_path, channels=("gone",)), Clock()
    assert asyncio.run(outbox(store, StubDeliver([]), clock).drain()).failed == 1
    [row] = store.alert_statuses()
    assert row.last_error == "channel 'gone' is not in the config"
    store.close()


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial=timedelta(seconds=30), maximum=timedelta(minutes=5))
    rng = random.Random(7)
    delays = [policy.delay(n, rng).total_seconds() for n in range(1, 10)]
    assert 24 <= delays[0] <= 36
    assert all(d <= 300 * 1.2 for d in delays)
    assert delays[-1] >= 300 * 0.8


def test_long_outage_is_reported_once_on_the_fallback(tmp_path: Path) -> None:
    store, clock = setup(tmp_path), Clock()
    # Three more alerts for the failing channel, so attempts keep coming.
    for key in ("k2", "k3", "k4"):
        it = Item("cma-news", key, f"CMA invites comment {key}", f"https://example.org/{key}", "", "", T0)
        m = Match("cma-itc", "cma-news", key, Severity.HIGH, ())
        store.save_poll(
            "cma-news", T0, [it], [PlannedMatch(m, "t", ("email",))], etag=None, last_modified=None, next_check_at=T0
        )
    down = DeliveryResult("email", ok=False, error="SMTP 451 try later", recoverable=True)
    stub = StubDeliver([down] * 50)
    channels = {
        "email": Channel("email", "apprise", ("mailto://x",), fallback="ops", fallback_after_seconds=3600),
        "ops": Channel("ops", "console"),
    }
    policy = RetryPolicy(max_attempts=50, initial=timedelta(minutes=10), maximum=timedelta(minutes=10))
    box = Outbox(store, channels, policy=policy, clock=clock, deliver=stub, rng=random.Random(1))
    for _ in range(12):  # two hours of failures, a drain every 10 minutes
        asyncio.run(box.drain())
        clock.now += timedelta(minutes=10)
    notices = [m for name, m in stub.sent if name == "ops"]
    assert len(notices) == 1
    assert notices[0].title == "[WATCHER] channel email has been failing since 2026-11-28 12:00 UTC"
    assert "SMTP 451 try later" in notices[0].body
    # It recovers: the next outage is reported again.
    stub.results = []
    clock.now += timedelta(minutes=20)
    asyncio.run(box.drain())
    assert store.channel_ok("email") is False  # already reset by the successful send
