"""When a channel may be sent to: digest times, quiet hours and rate limits. Pure: the clock is
an argument, so every rule here is tested with plain datetimes, including DST changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from watcher.model import Channel, Severity

# A daemon down for a year on a per-minute schedule must not walk half a million fire times.
_MAX_STEPS = 2000


def digest_due(channel: Channel, oldest_waiting_at: datetime, now: datetime) -> datetime | None:
    """The scheduled time of the digest that should go out now, or None if none is due.

    A digest is due once the first scheduled time after the oldest waiting alert has passed.
    Missed times (the daemon was down) collapse into one digest at the latest of them, so a
    restart sends one catch-up digest, not one per missed morning.
    """
    trigger = _trigger(channel)
    fire = _next(trigger, None, oldest_waiting_at + timedelta(microseconds=1))
    if fire is None or fire > now:
        return None
    for _ in range(_MAX_STEPS):
        later = _next(trigger, fire, fire + timedelta(microseconds=1))
        if later is None or later > now:
            break
        fire = later
    return fire.astimezone(UTC)


def _trigger(channel: Channel) -> CronTrigger:
    return CronTrigger.from_crontab(channel.digest_schedule, timezone=ZoneInfo(channel.timezone))


def _next(trigger: CronTrigger, previous: datetime | None, now: datetime) -> datetime | None:
    fire: datetime | None = trigger.get_next_fire_time(previous, now)  # untyped in APScheduler 3
    return fire


def next_digest_at(channel: Channel, now: datetime) -> datetime | None:
    """The next scheduled digest time after ``now`` (for `watcher routes test` and the docs)."""
    fire = _next(_trigger(channel), None, now)
    return fire.astimezone(UTC) if fire is not None else None


def quiet_until(channel: Channel, severity: Severity, now: datetime) -> datetime | None:
    """End of the channel's quiet hours if ``now`` falls inside them and the alert may wait.

    Hours are wall-clock times in the channel's time zone and may wrap midnight ("22:00-07:00").
    Alerts at or above ``quiet_bypass`` are never held.
    """
    if channel.quiet_hours is None:
        return None
    if channel.quiet_bypass is not None and severity.rank >= channel.quiet_bypass.rank:
        return None
    zone = ZoneInfo(channel.timezone)
    local = now.astimezone(zone)
    start, end = (time.fromisoformat(t) for t in channel.quiet_hours)
    clock = local.time().replace(tzinfo=None)
    wraps = start > end
    inside = (clock >= start or clock < end) if wraps else (start <= clock < end)
    if not inside:
        return None
    end_day = local.date() + timedelta(days=1) if wraps and clock >= start else local.date()
    # Built from the wall clock, so a DST change inside the quiet hours still ends them at `end`.
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def rate_limited_until(channel: Channel, recent_sends: Sequence[datetime], now: datetime) -> datetime | None:
    """When the channel may send again, if its newest sends already fill its rate limit.

    ``recent_sends``: the channel's latest send times, newest first, at least as many as the
    limit allows per window. The window slides: the next send waits for the oldest to leave it.
    """
    if channel.rate_limit is None:
        return None
    count, per_seconds = channel.rate_limit
    if len(recent_sends) < count:
        return None
    free_at = sorted(recent_sends, reverse=True)[count - 1] + timedelta(seconds=per_seconds)
    return free_at if free_at > now else None


def describe_pacing(channel: Channel, now: datetime) -> str:
    """How the channel sends, in a few words, for `watcher routes test`."""
    if channel.mode == "digest":
        upcoming = next_digest_at(channel, now)
        when = f", next {upcoming:%Y-%m-%d %H:%M} UTC" if upcoming else ""
        parts = [f'digest "{channel.digest_schedule}" {channel.timezone}{when}']
    else:
        parts = ["immediate"]
    if channel.quiet_hours and channel.mode != "digest":
        start, end = channel.quiet_hours
        bypass = f", {channel.quiet_bypass.value} and above at once" if channel.quiet_bypass else ""
        parts.append(f"quiet {start}-{end} {channel.timezone}{bypass}")
    if channel.rate_limit:
        count, per = channel.rate_limit
        parts.append(f"at most {count} per {_per(per)}")
    return "; ".join(parts)


def _per(seconds: float) -> str:
    names = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
    return names.get(int(seconds), f"{seconds:g}s")
