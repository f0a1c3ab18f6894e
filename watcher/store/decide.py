"""Record matches and decide, inside the poll's transaction, which of them alert.

Order of the decision, each recorded on the match row with its reason:
update ignored (the rule does not alert on edits) -> silenced -> duplicate (the story already
alerted for this rule: decided by the ``alert_keys`` constraint, not by a select) -> throttled
(the rule's alert budget for the window is spent) -> alerted, with one outbox row per channel.
Only ``Store`` calls this; it runs on the Store's session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from watcher.model import Decision, DeliveryStatus, Item, Match
from watcher.store.schema import AlertKeyRow, DeliveryRow, ItemRow, MatchRow
from watcher.stories import StoryView, alert_snippet, entities

ALERTED = Decision.ALERTED.value
DUPLICATE = Decision.DUPLICATE.value
SILENCED = Decision.SILENCED.value
THROTTLED = Decision.THROTTLED.value
UPDATE_IGNORED = Decision.UPDATE_IGNORED.value


@dataclass(frozen=True, slots=True)
class Throttle:
    max_alerts: int
    per: timedelta
    key: str = "rule"  # "rule" | "feed"
    surplus: str = "drop"  # "drop" | "digest"


@dataclass(frozen=True, slots=True)
class PlannedMatch:
    """A match to record, and what the rule says about alerting on it."""

    match: Match
    rule_title: str
    channels: tuple[str, ...]
    on_update: str = "ignore"
    throttle: Throttle | None = None
    silenced_by: str | None = None  # why, when an active silence covers it
    follow_up: str = "ignore"  # later items of an alerted story: "ignore", "notify" or "digest"
    on_official: str = "notify"  # an official source joining a press-only story: "notify" or "ignore"
    tags: tuple[str, ...] = ()  # the rule's tags, kept on the match for its message
    stage: str | None = None  # the latest procedure stage the item names (rules with on_update = "notify")
    # Whose stages: the rule's authority, so that a stage alerts once per item whichever of the
    # authority's rules fires on it (the CMA's invitation-to-comment and phase 1 rules alike).
    stage_owner: str | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    matches: int = 0
    alerted: int = 0
    deliveries: int = 0
    decisions: tuple[tuple[str, str], ...] = ()  # (rule id, decision) of each match recorded


def fingerprint(item: Item) -> str:
    """Identity of a story for one rule: its canonical link, so two feeds carrying it alert once."""
    return item.link or f"{item.feed_id}:{item.item_key}"


def stage_fingerprint(item: Item, match: Match, stage: str | None = None) -> str:
    """For an edited item: the item plus the procedure stage it has reached, so each new stage
    alerts once whichever words the edit uses for it (a CMA case page gaining "has launched a
    formal phase 1 investigation", later "referred for an in-depth phase 2 review"), a
    re-wording never. Without a stage vocabulary for the rule: what matched now."""
    if stage is not None:
        return f"{fingerprint(item)}#stage:{stage}"
    phrases = "\n".join(sorted({r.phrase.casefold() for r in match.reasons}))
    return f"{fingerprint(item)}#{hashlib.sha256(phrases.encode()).hexdigest()[:16]}"


def record_matches(
    s: Session,
    insert: Callable[[Any], Any],
    now: datetime,
    planned: Sequence[PlannedMatch],
    items: Mapping[str, Item],
    rows: Mapping[str, tuple[int, int, bool]],  # item key -> (item id, revision, is an update)
    stories: Mapping[str, StoryView],
) -> Recorded:
    matches = alerted = deliveries = 0
    decisions: list[tuple[str, str]] = []
    todo = sorted(
        (p for p in planned if p.match.item_key in rows),
        key=lambda p: (p.match.rule_id, fingerprint(items[p.match.item_key])),
    )
    for p in todo:
        item = items[p.match.item_key]
        item_id, revision, is_update = rows[item.item_key]
        story = stories.get(item.item_key)
        fp = stage_fingerprint(item, p.match, p.stage) if is_update else story_key(item, story)
        match_id = s.execute(
            insert(MatchRow)
            .values(
                rule_id=p.match.rule_id,
                item_id=item_id,
                revision=revision,
                fingerprint=fp,
                rule_title=p.rule_title,
                severity=p.match.severity.value,
                reasons=[str(r) for r in p.match.reasons],
                snippet=alert_snippet(p.match.reasons),
                entities=list(entities(p.match.reasons)),
                tags=list(p.tags),
                matched_at=now,
                decision=ALERTED,
                story_id=story.id if story else None,
            )
            .on_conflict_do_nothing(index_elements=["rule_id", "item_id", "revision"])
            .returning(col(MatchRow.id))
        ).scalar_one_or_none()
        if match_id is None:
            continue  # another replica recorded this very match
        matches += 1
        decision, reason, kind, batched = _decide(s, insert, now, p, fp, match_id, is_update, story, item_id)
        decisions.append((p.match.rule_id, decision))
        if decision != ALERTED or kind != "first":
            s.execute(
                MatchRow.__table__.update()  # type: ignore[attr-defined]
                .where(MatchRow.__table__.c.id == match_id)  # type: ignore[attr-defined]
                .values(decision=decision, decision_reason=reason, alert_kind=kind)
            )
        if decision == ALERTED:
            alerted += 1
            if p.stage is not None and not is_update:
                # The first alert covers the stage the item was at: an edit that only re-words
                # it is not a new stage.
                owner = _stage_owner(p)
                _claim_key(s, insert, now, owner, stage_fingerprint(item, p.match, p.stage), match_id)
        elif not batched:
            continue
        if p.channels:
            rows_ = [
                {
                    "match_id": match_id,
                    "channel": ch,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "batched": batched,
                }
                for ch in sorted(set(p.channels))
            ]
            inserted = s.execute(
                insert(DeliveryRow)
                .values(rows_)
                .on_conflict_do_nothing(index_elements=["match_id", "channel"])
                .returning(col(DeliveryRow.id))
            ).all()
            deliveries += len(inserted)
    return Recorded(matches, alerted, deliveries, tuple(decisions))


def story_key(item: Item, story: StoryView | None) -> str:
    """What "once" is counted over: the story when the item has one, else its link or key."""
    return f"story:{story.id}" if story is not None else fingerprint(item)


def _decide(
    s: Session,
    insert: Callable[[Any], Any],
    now: datetime,
    p: PlannedMatch,
    fp: str,
    match_id: int,
    is_update: bool,
    story: StoryView | None,
    item_id: int,
) -> tuple[str, str | None, str, bool]:
    """(decision, reason, alert kind, whether it waits for the channels' next digest)."""
    rule_id = p.match.rule_id
    kind = "update" if is_update else "first"
    reason: str | None = None
    if is_update and p.on_update != "notify":
        return UPDATE_IGNORED, 'the item was edited; the rule has on_update = "ignore"', kind, False
    if p.silenced_by:
        return SILENCED, p.silenced_by, kind, False
    batched = False
    # A stage's alert is the authority's, not one rule's: it goes out once per item and stage.
    owner = _stage_owner(p) if is_update and p.stage else rule_id
    first = _alert_key(s, owner, fp)
    if first is not None and is_update:
        where = f'stage "{p.stage}"' if p.stage else "this stage"
        return DUPLICATE, f"edited, but {where} already alerted as match #{first}", kind, False
    if first is not None:
        if story is not None and story.became_official and p.on_official == "notify":
            fp, kind = f"{fp}#confirmed", "confirmed"
            reason = f"confirmed by an official source ({p.match.feed_id}) after match #{first} alerted"
        elif story is not None and p.follow_up in ("notify", "digest"):
            fp, kind = f"{fp}#item:{item_id}", "follow_up"
            reason = f"follow-up to match #{first}: story {story.id} now has {len(story.sources)} sources"
            if p.follow_up == "digest":
                batched, reason = True, f"{reason}; sent in the next digest"
        else:
            where = f"story {story.id}" if story is not None else "this story"
            return DUPLICATE, f"duplicate of {where}, already alerted as match #{first}", kind, False
        if _alert_key(s, owner, fp) is not None:
            gone = f"duplicate: the {kind.replace('_', '-')} alert for this story already went out"
            return DUPLICATE, gone, kind, False
    if p.throttle is not None:
        stmt = (
            select(func.count())
            .select_from(MatchRow)
            .where(col(MatchRow.rule_id) == rule_id, col(MatchRow.decision) == ALERTED)
            .where(col(MatchRow.matched_at) > now - p.throttle.per)
            .where(col(MatchRow.id) != match_id)
        )
        if p.throttle.key == "feed":
            stmt = stmt.join(ItemRow, col(ItemRow.id) == col(MatchRow.item_id)).where(
                col(ItemRow.feed_id) == p.match.feed_id
            )
        count = int(s.execute(stmt).scalar_one())
        if count >= p.throttle.max_alerts:
            scope = f" from feed {p.match.feed_id}" if p.throttle.key == "feed" else ""
            window = _human(p.throttle.per)
            why = f"{count} alerts{scope} within {window}; the rule allows {p.throttle.max_alerts}"
            if p.throttle.surplus != "digest":
                return THROTTLED, why, kind, False
            # The surplus still counts as this story's alert, so the story is not sent again.
            if not _claim_key(s, insert, now, owner, fp, match_id):
                return DUPLICATE, "duplicate: this story already alerted for this rule", kind, False
            return THROTTLED, f"{why}; sent in the next digest", kind, True
    if not _claim_key(s, insert, now, owner, fp, match_id):  # a replica alerted the same story a moment ago
        return DUPLICATE, "duplicate: this story already alerted for this rule", kind, False
    if is_update and p.stage:
        reason = f'new stage reached: "{p.stage}"'
    return ALERTED, reason, kind, batched


def _stage_owner(p: PlannedMatch) -> str:
    """The alert-key owner of stage alerts: "@cma" for the CMA's rules, else the rule itself."""
    return f"@{p.stage_owner}" if p.stage_owner else p.match.rule_id


def _claim_key(s: Session, insert: Callable[[Any], Any], now: datetime, rule_id: str, fp: str, match_id: int) -> bool:
    """One alert per (rule, story): the constraint decides, also between replicas."""
    won = s.execute(
        insert(AlertKeyRow)
        .values(rule_id=rule_id, fingerprint=fp, match_id=match_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["rule_id", "fingerprint"])
        .returning(col(AlertKeyRow.match_id))
    ).scalar_one_or_none()
    return won is not None


def _alert_key(s: Session, rule_id: str, fp: str) -> int | None:
    found = s.execute(
        select(col(AlertKeyRow.match_id)).where(col(AlertKeyRow.rule_id) == rule_id, col(AlertKeyRow.fingerprint) == fp)
    ).scalar_one_or_none()
    return int(found) if found is not None else None


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
