"""Source health: which feeds are failing, silent or serving HTML, and what to tell people. Pure:
the facts and the clock are arguments; the store keeps who was told (``store/source_health``).

A watch is only as good as its sources. A feed that has failed for hours, one that stopped
publishing long past its own rhythm (a moved page, a broken CMS), or one that now serves an HTML
page where the feed was, would otherwise fail in silence: the absence of alerts looks like a
quiet week. Each such problem is reported once when it starts and once when it ends.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.model import Message

FAILING = "failing"
SILENT = "silent"
HTML = "html"
# What the parser says of an HTML page served where a feed was (feeds/parse.py).
_HTML_ERROR = "no RSS or Atom root element"


@dataclass(frozen=True, slots=True)
class SourceFacts:
    feed_id: str
    error_count: int
    last_error: str | None
    last_success_at: datetime | None
    created_at: datetime | None
    published: tuple[datetime, ...]  # its most recent items' publication dates, newest first


@dataclass(frozen=True, slots=True)
class Problem:
    feed_id: str
    kind: str  # FAILING | SILENT | HTML
    detail: str


def judge(
    facts: SourceFacts, now: datetime, *, failing_after: timedelta, silent_factor: float, silent_min: timedelta
) -> Problem | None:
    """The feed's problem now, the most telling first (HTML, failing, silent); None if healthy."""
    if facts.error_count >= 2 and _HTML_ERROR in (facts.last_error or ""):
        return Problem(facts.feed_id, HTML, "serves an HTML page instead of a feed")
    since = facts.last_success_at or facts.created_at
    if facts.error_count and since is not None and now - since >= failing_after:
        last = facts.last_error or "unknown error"
        return Problem(facts.feed_id, FAILING, f"failing since {since:%Y-%m-%d %H:%M} UTC: {last}")
    wait = silent_after(facts.published, silent_factor, silent_min)
    if wait is not None and facts.published and now - facts.published[0] >= wait:
        usual = _human(wait / silent_factor)
        last = f"{facts.published[0]:%Y-%m-%d %H:%M} UTC"
        return Problem(facts.feed_id, SILENT, f"no new item since {last}, usually one every {usual}")
    return None


def silent_after(published: tuple[datetime, ...], factor: float, minimum: timedelta) -> timedelta | None:
    """How long without a new item counts as silent for this feed: ``factor`` times its median gap
    between items, at least ``minimum``; None until it has a history to learn from (5 items)."""
    if len(published) < 5:
        return None
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(published) if a > b]
    if len(gaps) < 4:
        return None
    return max(minimum, timedelta(seconds=statistics.median(gaps) * factor))


def started(problem: Problem) -> Message:
    what = {FAILING: "is failing", SILENT: "has gone silent", HTML: "serves HTML, not a feed"}[problem.kind]
    return Message(
        title=f"[WATCHER] feed {problem.feed_id} {what}",
        body=f"{problem.detail}\nNo alerts can come from it until it recovers. See `watcher feeds`.",
    )


def ended(feed_id: str, kind: str, since: datetime) -> Message:
    return Message(
        title=f"[WATCHER] feed {feed_id} has recovered",
        body=f"The problem reported at {since:%Y-%m-%d %H:%M} UTC ({kind}) is over: it is read normally again.",
    )


def _human(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
