"""Digest times, quiet hours and rate limits: pure functions over plain datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watcher.model import Channel, Severity
from watcher.notify.schedule import digest_due, next_digest_at, quiet_until, rate_limited_until

WEEKDAYS_8 = Channel("morning", mode="digest", digest_schedule="0 8 * * mon-fri", timezone="Europe/London")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_digest_is_due_at_the_first_scheduled_time_after_the_oldest_alert() -> None:
    friday_evening = utc(2026, 11, 27, 17, 0)
    assert digest_due(WEEKDAYS_8, friday_evening, utc(2026, 11, 28, 9, 0)) is None  # Saturday: no digest
    assert digest_due(WEEKDAYS_8, friday_evening, utc(2026, 11, 30, 7, 59)) is None
    assert digest_due(WEEKDAYS_8, friday_evening, utc(2026, 11, 30, 8, 0)) == utc(2026, 11, 30, 8, 0)


def test_digest_time_follows_the_channel_time_zone_across_summer_time() -> None:
    # 08:00 in London is 07:00 UTC in June (BST).
    assert digest_due(WEEKDAYS_8, utc(2026, 6, 15, 6, 0), utc(2026, 6, 15, 7, 0)) == utc(2026, 6, 15, 7, 0)


def test_missed_digest_times_collapse_into_one_catch_up() -> None:
    # The daemon was down Tuesday to Thursday morning: one digest, for Thursday 08:00.
    assert digest_due(WEEKDAYS_8, utc(2026, 11, 30, 9, 0), utc(2026, 12, 3, 9, 30)) == utc(2026, 12, 3, 8, 0)


def test_next_digest_time() -> None:
    assert next_digest_at(WEEKDAYS_8, utc(2026, 11, 27, 9, 0)) == utc(2026, 11, 30, 8, 0)


NIGHTS = Channel(
    "legal-slack", quiet_hours=("22:00", "07:00"), quiet_bypass=Severity.CRITICAL, timezone="Europe/London"
)


def test_quiet_hours_wrap_midnight() -> None:
    assert quiet_until(NIGHTS, Severity.HIGH, utc(2026, 11, 27, 23, 30)) == utc(2026, 11, 28, 7, 0)
    assert quiet_until(NIGHTS, Severity.HIGH, utc(2026, 11, 28, 6, 0)) == utc(2026, 11, 28, 7, 0)
    assert quiet_until(NIGHTS, Severity.HIGH, utc(2026, 11, 28, 7, 0)) is None
    assert quiet_until(NIGHTS, Severity.HIGH, utc(2026, 11, 28, 12, 0)) is None


def test_quiet_hours_let_the_bypass_severity_through() -> None:
    assert quiet_until(NIGHTS, Severity.CRITICAL, utc(2026, 11, 27, 23, 30)) is None
    always_quiet = Channel("x", quiet_hours=("22:00", "07:00"), quiet_bypass=None)
    assert quiet_until(always_quiet, Severity.CRITICAL, utc(2026, 11, 27, 23, 30)) is not None


def test_quiet_hours_end_on_the_wall_clock_across_a_dst_change() -> None:
    # 24 Oct 22:30 BST (21:30 UTC); clocks go back that night, so 07:00 GMT is 07:00 UTC.
    assert quiet_until(NIGHTS, Severity.LOW, utc(2026, 10, 24, 21, 30)) == utc(2026, 10, 25, 7, 0)


def test_quiet_hours_within_one_day() -> None:
    lunch = Channel("x", quiet_hours=("12:00", "13:30"))
    assert quiet_until(lunch, Severity.LOW, utc(2026, 11, 27, 12, 15)) == utc(2026, 11, 27, 13, 30)
    assert quiet_until(lunch, Severity.LOW, utc(2026, 11, 27, 13, 30)) is None


def test_rate_limit_window_slides() -> None:
    two_a_minute = Channel("x", rate_limit=(2, 60.0))
    now = utc(2026, 11, 27, 12, 0)
    assert rate_limited_until(two_a_minute, [now - timedelta(seconds=10)], now) is None
    recent = [now - timedelta(seconds=10), now - timedelta(seconds=20)]
    assert rate_limited_until(two_a_minute, recent, now) == now + timedelta(seconds=40)
    old = [now - timedelta(seconds=10), now - timedelta(seconds=70)]
    assert rate_limited_until(two_a_minute, old, now) is None
    assert rate_limited_until(Channel("y"), recent, now) is None
