"""Durations as people write them in config and rule files: ``90s``, ``15m``, ``2h``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> Any:
    """Accept ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``: people write intervals, not ISO 8601."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m, 2h or 7d")
    try:
        if isinstance(value, (int, float)):
            return timedelta(seconds=value)
        if isinstance(value, str):
            m = _DURATION.match(value)
            if not m:
                raise ValueError(f'"{value}" is not a duration; write it like 90s, 15m, 2h or 7d')
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    except OverflowError:
        # Only ValueError becomes a validation error naming the field; timedelta's own overflow
        # would reach the user as a traceback.
        raise ValueError(f'"{value}" is too long a duration') from None
    return value


def format_duration(value: timedelta) -> str:
    """``value`` as the config would write it: ``7d``, ``90m``, ``45s``."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
