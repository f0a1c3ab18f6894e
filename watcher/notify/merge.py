"""One message per story per channel: merge the deliveries of several rules that fired together.

When three rules fire on one article, each channel must get one message naming all three, not
three messages. The store keeps one delivery per (match, channel), so every rule's decision,
silence, throttle and route still applies per rule; this module only folds the deliveries that
are due together for one channel and one story (or one item, without a story) into one Alert.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from watcher.model import Alert, RuleHit


def merge_alerts(alerts: Sequence[Alert], *, by: str = "story") -> list[Alert]:
    """Fold alerts of the same channel and story (``by="item"``: the same item) into one, the
    most severe rule first. Digests merge by item: they list a story's other reports themselves.

    The merged alert keeps the most severe alert's item, kind and snippet; its severity is the
    highest, its reasons and parties the union (most severe rule's first), its tags the union,
    and ``rules`` / ``delivery_ids`` name every rule and delivery it stands for. Order: where each
    group's first alert stood.
    """
    groups: dict[tuple[str, object], list[Alert]] = {}
    for alert in alerts:
        if by == "story" and alert.story_id is not None:
            key: object = ("story", alert.story_id)
        elif alert.item_id is not None:
            key = ("item", alert.item_id)
        else:
            key = ("delivery", alert.delivery_id)
        groups.setdefault((alert.channel, key), []).append(alert)
    return [_merge(group) if len(group) > 1 else group[0] for group in groups.values()]


def _merge(group: list[Alert]) -> Alert:
    ordered = sorted(group, key=lambda a: (-a.severity.rank, a.delivery_id))
    top = ordered[0]
    hits: list[RuleHit] = []
    for alert in ordered:
        for hit in alert.hits:
            if all(h.rule_id != hit.rule_id for h in hits):
                hits.append(hit)
    return replace(
        top,
        reasons=_union(a.reasons for a in ordered),
        attempts=max(a.attempts for a in ordered),
        sources=_union(a.sources for a in ordered),
        entities=_union(a.entities for a in ordered),
        created_at=min((a.created_at for a in ordered if a.created_at), default=top.created_at),
        tags=_union(a.tags for a in ordered),
        rules=tuple(hits),
        delivery_ids=tuple(d for a in ordered for d in a.carried),
    )


def _union(parts: Iterable[Sequence[str]]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for part in parts:
        out.update(dict.fromkeys(part))
    return tuple(out)
