"""Where a match goes: the rule's own channels, then the route list, then the default. Pure.

Alertmanager-style: routes are tried in order; the first that takes a match ends the walk
unless it says ``continue = true``. A channel's ``min_severity`` is applied last, so a noisy
low-severity rule cannot reach a channel that only wants what matters.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from watcher.model import Route, Rule, Severity


@dataclass(frozen=True, slots=True)
class Destination:
    channel: str
    why: str


def route_takes(route: Route, rule: Rule, feed_tags: Iterable[str]) -> bool:
    if route.min_severity is not None and rule.severity.rank < route.min_severity.rank:
        return False
    if route.rules and not any(fnmatch.fnmatchcase(rule.id, pattern) for pattern in route.rules):
        return False
    if route.rule_tags and not set(route.rule_tags) & set(rule.tags):
        return False
    return not (route.feed_tags and not {t.lower() for t in route.feed_tags} & {t.lower() for t in feed_tags})


def destinations(
    rule: Rule,
    feed_tags: Iterable[str],
    routes: Sequence[Route],
    default: Sequence[str],
    min_severity: Mapping[str, Severity | None],
) -> list[Destination]:
    """Every channel a match of ``rule`` from a feed with ``feed_tags`` is sent to, and why."""
    tags = tuple(feed_tags)
    out: dict[str, str] = {}
    for channel in rule.channels:
        out.setdefault(channel, f"rule {rule.id} names it")
    for index, route in enumerate(routes, start=1):
        if not route_takes(route, rule, tags):
            continue
        label = route.name or f"route #{index}"
        for channel in route.channels:
            out.setdefault(channel, f"{label} takes it")
        if not route.continue_:
            break
    if not out:
        for channel in default:
            out.setdefault(channel, "default channel")
    kept = []
    for channel, why in out.items():
        floor = min_severity.get(channel)
        if floor is not None and rule.severity.rank < floor.rank:
            continue
        kept.append(Destination(channel, why))
    return kept
