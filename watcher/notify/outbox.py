"""Drain the outbox: claim due deliveries and digests, send them, and record the outcome.

The outbox is the single path to every channel. Delivery is at-least-once: a row is marked sent
only after the channel reports success, so a crash between the send and the commit can repeat
that one message, never lose it. Around each send the channel's pacing applies:

- quiet hours hold an alert (below the channel's ``quiet_bypass`` severity) until they end;
- a rate limit holds the channel's next message until its window has room;
- a failure pauses the whole channel with its own backoff (a 429's Retry-After included), so a
  broken or throttling endpoint slows only itself and does not burn the other rows' attempts.

A failed row is retried with capped, jittered exponential backoff; after ``max_attempts`` (or at
once, for a failure that retrying cannot fix) it is left ``failed``, visible in ``watcher alerts
--failed``. Digest channels collect their alerts into one message per scheduled time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TextIO

import structlog

from watcher.errors import ConfigError, StoreError
from watcher.metrics import Metrics
from watcher.model import Alert, Channel, DeliveryResult, Digest, Message
from watcher.notify.deliver import deliver as apprise_deliver
from watcher.notify.merge import merge_alerts
from watcher.notify.render import Renderer
from watcher.notify.schedule import digest_due, quiet_until, rate_limited_until
from watcher.redact import Redactor
from watcher.store.claims import claims_held
from watcher.store.store import Store, retry_while_away

log = structlog.get_logger("watcher.outbox")

Deliver = Callable[[Channel, Message], DeliveryResult]

# How long a send that worked waits for the database to record it (a restart, a locked file).
RECORD_PATIENCE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    initial: timedelta = timedelta(seconds=30)
    maximum: timedelta = timedelta(hours=1)
    # How long a claimed delivery or digest is held without renewal; renewed every third of it
    # while its send is in flight, so a dead sender's rows are due again within one lease.
    lease: timedelta = timedelta(seconds=60)

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """Backoff after the ``attempts``-th failure: doubling, capped, with ±20 % jitter."""
        base = min(self.maximum.total_seconds(), self.initial.total_seconds() * 2 ** max(0, attempts - 1))
        return timedelta(seconds=base * rng.uniform(0.8, 1.2))


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0  # waiting for quiet hours to end, a rate limit or a paused channel
    digests: int = 0  # digest messages sent (their alerts count in ``sent``)

    def __add__(self, other: DrainResult) -> DrainResult:
        return DrainResult(
            self.sent + other.sent,
            self.retried + other.retried,
            self.failed + other.failed,
            self.held + other.held,
            self.digests + other.digests,
        )


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
        renderer: Renderer | None = None,
        console: TextIO | None = None,
        dry_run: bool = False,
        rng: random.Random | None = None,
        timeout_seconds: float = 30.0,
        metrics: Metrics | None = None,
    ):
        self.store = store
        self.metrics = metrics
        self.channels = dict(channels)
        self.policy = policy
        self.clock = clock
        self.redactor = redactor or Redactor()
        self.console = console
        self.dry_run = dry_run
        self.timeout_seconds = timeout_seconds
        self.renderer = renderer or Renderer(self.channels)
        self._deliver = deliver or self._default_deliver
        self._rng = rng or random.Random()
        self._digest_channels = {n for n, c in self.channels.items() if c.mode == "digest"}

    def send_notice(self, channel_name: str, message: Message) -> DeliveryResult:
        """Send one message of watcher's own (source health) to a channel, now, with no retry: the
        caller records what was said only when this says it arrived."""
        channel = self.channels.get(channel_name)
        if channel is None:
            return DeliveryResult(channel_name, False, f"channel {channel_name!r} is not in the config", False)
        return self._deliver(channel, message)

    def _default_deliver(self, channel: Channel, message: Message) -> DeliveryResult:
        if self.dry_run:
            # Dry run: show what would go out, to the console, whatever the channel.
            preview = Channel(name=channel.name, kind="console")
            shown = Message(
                f"(dry run) to {channel.name}: {message.title}", message.body, message.body_format, message.attachments
            )
            return apprise_deliver(preview, shown, console=self.console)
        return apprise_deliver(channel, message, console=self.console, timeout_seconds=self.timeout_seconds)

    async def drain(self, *, batch: int = 50, max_batches: int = 20) -> DrainResult:
        """Send everything due now: digests whose time has come, then single alerts, batch by batch."""
        total = await self._digests()
        tried: set[int] = set()
        for _ in range(max_batches):
            now = self.clock()
            paused = await asyncio.to_thread(self.store.paused_channels, now)
            claim = partial(
                self.store.claim_due_deliveries, exclude=tried, skip_channels=self._digest_channels | set(paused)
            )
            alerts = await asyncio.to_thread(claim, now, self.policy.lease, batch)
            if not alerts:
                break
            renew = partial(self.store.renew_work_claims, "deliveries", [a.delivery_id for a in alerts])
            lined_up: dict[str, datetime] = {}
            async with self._held(renew, now, "deliveries"):
                # Several rules fired on one story: one message per channel names them all.
                for alert in merge_alerts(alerts):
                    if alert.channel in lined_up:
                        # The channel just came back and its waiting rows were lined up: these
                        # join them, to be claimed again oldest first (order per channel).
                        await asyncio.to_thread(self.store.defer, alert.carried, lined_up[alert.channel])
                        continue
                    tried.update(alert.carried)
                    total += self._counted(alert.channel, await self._send(alert, paused, lined_up))
        return total

    async def _record_sent(self, record: Callable[[], bool], bound: structlog.typing.FilteringBoundLogger) -> bool:
        """Record a send that worked, waiting for the database if it is away (a restart, a lock).

        The message is out: giving up here would send it again when the claim's lease ends. So
        the record is retried, backing off, for up to ``RECORD_PATIENCE`` (or the lease, if
        longer): a lone daemon (SQLite) then never repeats a message over an outage that short.
        Past the lease another replica may take the row: that repeat is the documented
        send/commit one.
        """

        def retrying(exc: StoreError, pause: float) -> None:
            bound.warning("delivery.record_retry", error=str(exc), retry_in_seconds=pause)

        return await retry_while_away(record, max(self.policy.lease, RECORD_PATIENCE), retrying)

    def _held(
        self, renew: Callable[[datetime, datetime], int], now: datetime, what: str
    ) -> AbstractAsyncContextManager[None]:
        """Renew the claims taken at ``now`` while their sends are in flight: a batch of slow
        sends outlasts one lease, and the lease must stay short so that a dead sender's rows come
        back within it (issue 13)."""

        def failed(exc: StoreError) -> None:
            log.warning(f"{what}.claim_renewal_failed", error=str(exc))

        return claims_held(renew, now + self.policy.lease, self.policy.lease, self.clock, failed)

    async def _send(
        self, alert: Alert, paused: dict[str, datetime], lined_up: dict[str, datetime] | None = None
    ) -> DrainResult:
        bound = log.bind(delivery=alert.delivery_id, channel=alert.channel, rule=alert.rule_id)
        channel = self.channels.get(alert.channel)
        if channel is None:
            error = f"channel {alert.channel!r} is not in the config"
            await asyncio.to_thread(self.store.mark_failed, alert.carried, error)
            bound.error("delivery.failed", error=error, attempts=alert.attempts + 1)
            return DrainResult(failed=len(alert.carried))
        now = self.clock()
        hold = paused.get(channel.name)
        hold = hold if hold is not None and hold > now else quiet_until(channel, alert.severity, now)
        if hold is None:
            hold = await self._rate_limited(channel, now)
            if hold is not None:
                paused[channel.name] = hold  # the rest of this batch waits too
        if hold is not None:
            await asyncio.to_thread(self.store.defer, alert.carried, hold)
            bound.info("delivery.held", until=hold.isoformat())
            return DrainResult(held=len(alert.carried))

        try:
            message = self.renderer.render(alert, channel)
        except ConfigError as exc:  # a template that fails on this alert's data; the others go on
            error = f"template error: {exc}"
            await asyncio.to_thread(self.store.mark_failed, alert.carried, error)
            bound.error("delivery.failed", error=error, attempts=alert.attempts + 1, recoverable=False)
            return DrainResult(failed=len(alert.carried))
        result = await asyncio.to_thread(self._deliver, channel, message)
        if result.ok:
            sent = partial(self.store.mark_sent, channel=channel.name)
            sent_at = self.clock()
            recovered = await self._record_sent(partial(sent, alert.carried, sent_at), bound)
            bound.info("delivery.sent", attempts=alert.attempts + 1, rules=len(alert.hits))
            if recovered:
                bound.info("channel.recovered")
                if lined_up is not None:
                    lined_up[channel.name] = sent_at
            return DrainResult(sent=len(alert.carried))
        dead = await self._failed(
            channel,
            result,
            alert.attempts + 1,
            bound,
            paused,
            event="delivery",
            fail=partial(self.store.mark_failed, alert.carried),
            retry=partial(self.store.mark_retry, alert.carried),
        )
        n = len(alert.carried)
        return DrainResult(failed=n) if dead else DrainResult(retried=n)

    async def _failed(
        self,
        channel: Channel,
        result: DeliveryResult,
        attempts: int,
        bound: structlog.typing.FilteringBoundLogger,
        paused: dict[str, datetime],
        *,
        event: str,
        fail: Callable[[str], None],
        retry: Callable[[str, datetime], None],
    ) -> bool:
        """Record a failed send of an alert or a digest: back off its channel if retrying can help,
        then dead-letter it (``fail``) or schedule its next attempt (``retry``). True if dead."""
        error = self.redactor(result.error or "delivery failed")
        channel_retry_at = None
        if result.recoverable:
            channel_retry_at = await self._channel_failed(channel, result, error, bound, paused)
        if channel_retry_at is None or attempts >= self.policy.max_attempts:
            await asyncio.to_thread(fail, error)
            bound.error(f"{event}.failed", error=error, attempts=attempts, recoverable=result.recoverable)
            return True
        # Just after the channel's pause, not with it: the rows that waited behind this one go
        # first when it ends, so the probes of an outage rotate and no one alert spends all its
        # attempts on it (claims take the longest-waiting row first, then the oldest).
        retry_at = max(
            channel_retry_at + timedelta(milliseconds=1), self.clock() + self.policy.delay(attempts, self._rng)
        )
        await asyncio.to_thread(retry, error, retry_at)
        bound.warning(
            f"{event}.retry",
            error=error,
            attempts=attempts,
            retry_in_seconds=round((retry_at - self.clock()).total_seconds()),
        )
        return False

    async def _rate_limited(self, channel: Channel, now: datetime) -> datetime | None:
        if channel.rate_limit is None:
            return None
        recent = await asyncio.to_thread(self.store.recent_sends, channel.name, channel.rate_limit[0])
        until = rate_limited_until(channel, recent, now)
        if until is not None:
            await asyncio.to_thread(self.store.pause_channel, channel.name, until)
        return until

    async def _channel_failed(
        self,
        channel: Channel,
        result: DeliveryResult,
        error: str,
        bound: structlog.typing.FilteringBoundLogger,
        paused: dict[str, datetime],
    ) -> datetime:
        """Back off the whole channel after a failed send, and report a long outage on its
        fallback channel, once per outage: silence must never hide a broken webhook.

        Returns when the channel may be tried again.
        """
        now = self.clock()
        health = await asyncio.to_thread(self.store.channel_failed, channel.name, now, error)
        delay = self.policy.delay(health.failures, self._rng)
        if result.retry_after_seconds:
            # The service said when; honour it even past our own cap (Slack's 429 asks for this).
            delay = max(delay, timedelta(seconds=result.retry_after_seconds))
        until = now + delay
        await asyncio.to_thread(self.store.pause_channel, channel.name, until)
        paused[channel.name] = until
        bound.warning("channel.paused", until=until.isoformat(), failures=health.failures)

        if health.fallback_sent_at is not None or not channel.fallback:
            return until
        if (now - health.failing_since).total_seconds() < channel.fallback_after_seconds:
            return until
        fallback = self.channels.get(channel.fallback)
        if fallback is None or not await asyncio.to_thread(self.store.claim_fallback, channel.name, now):
            return until
        since = health.failing_since
        notice = Message(
            title=f"[WATCHER] channel {channel.name} has been failing since {since:%Y-%m-%d %H:%M} UTC",
            body=(
                f"Alerts for {channel.name} are queued and retried; none is lost.\n"
                f"Last error: {error}\n"
                f"See `watcher alerts --failed` and `watcher notify-test {channel.name}`."
            ),
        )
        sent = await asyncio.to_thread(self._deliver, fallback, notice)
        bound.warning("channel.outage_reported", fallback=fallback.name, ok=sent.ok, failing_since=since.isoformat())
        return until

    async def _digests(self) -> DrainResult:
        """Open the digests whose scheduled time has passed, then send every due digest.

        Digest channels send everything this way; immediate channels only what rules asked to
        batch (follow-ups with follow_up = "digest", throttle surplus with surplus = "digest").
        """
        now = self.clock()
        others = set(self.channels) - self._digest_channels
        for waiting in await asyncio.to_thread(self.store.waiting_for_digest, self._digest_channels, others):
            channel = self.channels[waiting.channel]
            if not channel.digest_schedule:
                continue
            after = max(waiting.oldest_at, waiting.last_due_at or waiting.oldest_at)
            due = digest_due(channel, after, now)
            if due is not None:
                batched_only = channel.name not in self._digest_channels
                opened = partial(self.store.open_digest, batched_only=batched_only)
                collected = await asyncio.to_thread(opened, channel.name, due, now)
                if collected:
                    log.info("digest.opened", channel=channel.name, due=due.isoformat(), alerts=collected)
        total = DrainResult()
        paused = await asyncio.to_thread(self.store.paused_channels, now)
        ready = set(self.channels) - set(paused)
        digests = await asyncio.to_thread(self.store.claim_due_digests, now, self.policy.lease, ready)
        renew = partial(self.store.renew_work_claims, "digests", [d.digest_id for d in digests])
        async with self._held(renew, now, "digests"):
            for digest in digests:
                total += self._counted(digest.channel, await self._send_digest(digest, paused))
        return total

    def _counted(self, channel: str, result: DrainResult) -> DrainResult:
        """Count one send's deliveries by channel and result for /metrics."""
        if self.metrics is not None:
            for name in ("sent", "retried", "failed", "held"):
                n = getattr(result, name)
                if n:
                    self.metrics.deliveries.labels(channel, name).inc(n)
        return result

    async def _send_digest(self, digest: Digest, paused: dict[str, datetime]) -> DrainResult:
        bound = log.bind(digest=digest.digest_id, channel=digest.channel, alerts=len(digest.alerts))
        channel = self.channels[digest.channel]
        now = self.clock()
        hold = await self._rate_limited(channel, now)
        if hold is not None:
            await asyncio.to_thread(self.store.defer_digest, digest.digest_id, hold)
            return DrainResult(held=len(digest.alerts))
        try:
            message = self.renderer.render_digest(digest, channel)
        except ConfigError as exc:
            error = f"template error: {exc}"
            await asyncio.to_thread(self.store.mark_digest_failed, digest.digest_id, error)
            bound.error("digest.failed", error=error, attempts=digest.attempts + 1, recoverable=False)
            return DrainResult(failed=len(digest.alerts))
        result = await asyncio.to_thread(self._deliver, channel, message)
        if result.ok:
            sent = partial(self.store.mark_digest_sent, channel=channel.name)
            recovered = await self._record_sent(partial(sent, digest.digest_id, self.clock()), bound)
            bound.info("digest.sent", attempts=digest.attempts + 1)
            if recovered:
                bound.info("channel.recovered")
            return DrainResult(sent=len(digest.alerts), digests=1)
        dead = await self._failed(
            channel,
            result,
            digest.attempts + 1,
            bound,
            paused,
            event="digest",
            fail=partial(self.store.mark_digest_failed, digest.digest_id),
            retry=partial(self.store.mark_digest_retry, digest.digest_id),
        )
        return DrainResult(failed=len(digest.alerts)) if dead else DrainResult(retried=len(digest.alerts))
