"""Hypothesis settings for the security properties.

The default profile keeps the folder well under a minute; ``WATCHER_FUZZ_EXAMPLES=20000`` turns
the same properties into a short fuzzing run (the convention tests/hostile uses too). Deadlines
are off: a shared 2-core machine makes per-example timing noise, and a hang is caught by the
per-example work being bounded, not by a clock.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_FUZZ = os.environ.get("WATCHER_FUZZ_EXAMPLES")

settings.register_profile("security", max_examples=100, deadline=None)
settings.register_profile(
    "security-fuzz",
    max_examples=int(_FUZZ) if _FUZZ else 100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ_PROFILE = "security-fuzz" if _FUZZ else "security"
