"""How long a server asks us to wait before polling its feed again. Pure: no I/O, the clock is an
argument.

Owns reading the publisher's caching hints: ``Cache-Control: max-age``, ``Expires`` (measured
from the response's own ``Date``), and the RSS ``<ttl>``. A hint can only lengthen a feed's
interval, never shorten it below what the operator configured, and never past
``poll.max_server_interval``: a feed that says ``max-age=31536000`` is still polled daily.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from watcher.httpdate import http_date

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


def server_hint(headers: Mapping[str, str], ttl_minutes: int | None, now: datetime) -> timedelta | None:
    """The longest wait the response asks for, or None when it asks for none."""
    lowered = {k.lower(): v for k, v in headers.items()}
    hints: list[float] = []
    control = lowered.get("cache-control", "")
    if "no-store" not in control.lower() and "no-cache" not in control.lower():
        found = _MAX_AGE.search(control)
        if found:
            hints.append(float(found.group(1)))
        elif "expires" in lowered:
            expires = http_date(lowered["expires"])
            base = http_date(lowered.get("date")) or now
            if expires is not None:
                hints.append((expires - base).total_seconds())
    if ttl_minutes:
        hints.append(ttl_minutes * 60.0)
    longest = max(hints, default=0.0)
    return timedelta(seconds=longest) if longest > 0 else None


def next_interval(configured: timedelta, hint: timedelta | None, cap: timedelta) -> timedelta:
    """The configured interval, lengthened to the server's hint within ``cap``."""
    if hint is None or hint <= configured:
        return configured
    return max(configured, min(hint, cap))
