"""Drain the outbox: claim due deliveries, send them, and record the outcome.

Delivery is at-least-once: a row is marked sent only after the channel reports success, so a
crash between the send and the commit can repeat that one message, never lose it. Failures are
retried with capped, jittered exponential backoff; after ``max_attempts`` (or at once, for a
failure that retrying cannot fix) the row is left ``failed`` and visible in ``watcher alerts``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TextIO

import structlog

from watcher.model import Alert, Channel, DeliveryResult, Message
from watcher.notify.deliver import deliver as apprise_deliver
from watcher.notify.render import render_alert
from watcher.redact import Redactor
from watcher.store.store import Store

log = structlog.get_logger("watcher.outbox")

Deliver = Callable[[Channel, Message], DeliveryResult]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    initial: timedelta = timedelta(seconds=30)
    maximum: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """Backoff after the ``attempts``-th failure: doubling, capped, with ±20 % jitter."""
        base = min(self.maximum.total_seconds(), self.initial.total_seconds() * 2 ** max(0, attempts - 1))
        return timedelta(seconds=base * rng.uniform(0.8, 1.2))


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def __add__(self, other: DrainResult) -> DrainResult:
        return DrainResult(self.sent + other.sent, self.retried + other.retried, self.failed + other.failed)


class Outbox:
    """Sends what the store says is due. One instance per process; safe across replicas."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        redactor: Redactor | None = None,
        deliver: Deliver | None = None,
        console: TextIO | None = None,
        dry_run: bool = False,
        rng: random.Random | None = None,
    ):
        self.store = store
        self.channels = dict(channels)
        self.policy = policy
        self.clock = clock
        self.redactor = redactor or Redactor()
        self.console = console
        self.dry_run = dry_run
        self._deliver = deliver or self._default_deliver
        self._rng = rng or random.Random()

    def _default_deliver(self, channel: Channel, message: Message) -> DeliveryResult:
        if self.dry_run:
            # Dry run: show what would go out, to the console, whatever the channel.
            preview = Channel(name=channel.name, kind="console")
            shown = Message(f"(dry run) to {channel.name}: {message.title}", message.body, message.body_format)
            return apprise_deliver(preview, shown, console=self.console)
        return apprise_deliver(channel, message, console=self.console)

    async def drain(self, *, batch: int = 50, max_batches: int = 20) -> DrainResult:
        """Deliver everything due now, batch by batch."""
        total = DrainResult()
        tried: set[int] = set()
        for _ in range(max_batches):
            claim = partial(self.store.claim_due_deliveries, exclude=tried)
            alerts = await asyncio.to_thread(claim, self.clock(), self.policy.lease, batch)
            if not alerts:
                break
            for alert in alerts:
                tried.add(alert.delivery_id)
                total += await self._send(alert)
        return total

    async def _watch_outage(self, channel: Channel, error: str, bound: structlog.typing.FilteringBoundLogger) -> None:
        """A channel failing for longer than its fallback_after is reported, once per outage, on
        its fallback channel: silence must never hide a broken webhook."""
        now = self.clock()
        since, told = await asyncio.to_thread(self.store.channel_failed, channel.name, now, error)
        if told is not None or (now - since).total_seconds() < channel.fallback_after_seconds:
            return
        fallback = self.channels.get(channel.fallback or "")
        if fallback is None or not await asyncio.to_thread(self.store.claim_fallback, channel.name, now):
            return
        notice = Message(
            title=f"[WATCHER] channel {channel.name} has been failing since {since:%Y-%m-%d %H:%M} UTC",
            body=(
                f"Alerts for {channel.name} are queued and retried; none is lost.\n"
                f"Last error: {error}\n"
                f"See `watcher alerts --failed` and `watcher notify-test {channel.name}`."
            ),
        )
        result = await asyncio.to_thread(self._deliver, fallback, notice)
        bound.warning("channel.outage_reported", fallback=fallback.name, ok=result.ok, failing_since=since.isoformat())

    async def _send(self, alert: Alert) -> DrainResult:
        bound = log.bind(delivery=alert.delivery_id, channel=alert.channel, rule=alert.rule_id)
        channel = self.channels.get(alert.channel)
        if channel is None:
            error = f"channel {alert.channel!r} is not in the config"
            await asyncio.to_thread(self.store.mark_failed, alert.delivery_id, error)
            bound.error("delivery.failed", error=error, attempts=alert.attempts + 1)
            return DrainResult(failed=1)
        message = render_alert(alert)
        result = await asyncio.to_thread(self._deliver, channel, message)
        if result.ok:
            await asyncio.to_thread(self.store.mark_sent, alert.delivery_id, self.clock())
            bound.info("delivery.sent", attempts=alert.attempts + 1)
            if channel.fallback:
                recovered: bool = await asyncio.to_thread(self.store.channel_ok, channel.name)
                if recovered:
                    bound.info("channel.recovered")
            return DrainResult(sent=1)
        error = self.redactor(result.error or "delivery failed")
        if channel.fallback:
            await self._watch_outage(channel, error, bound)
        attempts = alert.attempts + 1
        if not result.recoverable or attempts >= self.policy.max_attempts:
            await asyncio.to_thread(self.store.mark_failed, alert.delivery_id, error)
            bound.error("delivery.failed", error=error, attempts=attempts, recoverable=result.recoverable)
            return DrainResult(failed=1)
        delay = self.policy.delay(attempts, self._rng)
        if result.retry_after_seconds:
            delay = max(delay, timedelta(seconds=result.retry_after_seconds))
        await asyncio.to_thread(self.store.mark_retry, alert.delivery_id, error, self.clock() + delay)
        bound.warning("delivery.retry", error=error, attempts=attempts, retry_in_seconds=round(delay.total_seconds()))
        return DrainResult(retried=1)
