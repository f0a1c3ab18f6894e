"""HTTP's Retry-After, read the same way for feeds (httpx) and notification services (requests).

Pure: the clock is an argument. No I/O.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

_MAX_DIGITS = 18  # more is not a delay anyone meant


def parse_retry_after(value: str | None, now: datetime, *, date: str | None = None) -> float | None:
    """Read Retry-After (RFC 9110 10.2.3) as seconds, never negative; None if absent or unreadable.

    An HTTP-date is measured from ``date`` (the response's own Date header) when it is readable,
    so the peer's clock and ours need not agree; else from ``now``. A naive ``now`` is UTC.
    """
    value = (value or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value) if len(value) <= _MAX_DIGITS else None
    when = http_date(value)
    if when is None:
        return None
    base = http_date(date) or (now if now.tzinfo is not None else now.replace(tzinfo=UTC))
    return max(0.0, (when - base).total_seconds())


def http_date(value: str | None) -> datetime | None:
    """An HTTP date (IMF-fixdate, RFC 850 or asctime) as a UTC-aware datetime, or None."""
    try:
        when = email.utils.parsedate_to_datetime(value or "")
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # HTTP dates are always GMT (RFC 9110 5.6.7); asctime dates parse as naive.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
