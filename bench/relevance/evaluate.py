"""Score a rule set on corpus records: recall, precision, F1, by label and language, attribution.

An item counts as alerted when any rule fires on it (one message per item and channel). An alert on
an item whose label names an authority is attributed when one of the rules that fired reports that
authority (``Rule.authority``): the message must name the authority that acted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bench.relevance.corpus import Record
from watcher.match import RuleSet
from watcher.model import Rule

# item -> the ids of the rules that fired
Classifier = Callable[[Record], tuple[str, ...]]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, relevant: bool, alerted: bool) -> None:
        if relevant and alerted:
            self.tp += 1
        elif relevant:
            self.fn += 1
        elif alerted:
            self.fp += 1
        else:
            self.tn += 1

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def f1(self) -> float | None:
        r, p = self.recall, self.precision
        return 2 * r * p / (r + p) if r and p else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "recall": _round(self.recall),
            "precision": _round(self.precision),
            "f1": _round(self.f1),
        }


@dataclass
class Score:
    """How one classifier did on one part of the corpus."""

    overall: Counts = field(default_factory=Counts)
    by_lang: dict[str, Counts] = field(default_factory=dict)
    by_action: dict[str, Counts] = field(default_factory=dict)
    by_authority: dict[str, Counts] = field(default_factory=dict)
    by_kind: dict[str, Counts] = field(default_factory=dict)
    attributed: int = 0
    attributable: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)
    misattributed: list[str] = field(default_factory=list)
    fired: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def attribution(self) -> float | None:
        return self.attributed / self.attributable if self.attributable else None

    def as_dict(self, *, with_ids: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.overall.as_dict(),
            "attribution": _round(self.attribution),
            "attributable": self.attributable,
            "by_lang": {k: v.as_dict() for k, v in sorted(self.by_lang.items())},
            "by_action": {k: v.as_dict() for k, v in sorted(self.by_action.items())},
            "by_authority": {k: v.as_dict() for k, v in sorted(self.by_authority.items())},
            "by_kind": {k: v.as_dict() for k, v in sorted(self.by_kind.items())},
        }
        if with_ids:
            out["misses"] = self.misses
            out["false_alarms"] = {i: list(self.fired[i]) for i in self.false_alarms}
            out["misattributed"] = {i: list(self.fired[i]) for i in self.misattributed}
        return out


def score(records: Iterable[Record], classify: Classifier, authority_of: dict[str, str]) -> Score:
    """Run ``classify`` on every record and count the outcomes."""
    result = Score()
    for record in records:
        fired = classify(record)
        alerted = bool(fired)
        result.fired[record.id] = fired
        for table, key in (
            (result.by_lang, record.lang),
            (result.by_action, record.action),
            (result.by_authority, record.authority or "none"),
            (result.by_kind, record.kind),
        ):
            table.setdefault(key, Counts()).add(record.relevant, alerted)
        result.overall.add(record.relevant, alerted)
        if record.relevant and not alerted:
            result.misses.append(record.id)
        elif alerted and not record.relevant:
            result.false_alarms.append(record.id)
        if record.relevant and alerted and record.authority:
            result.attributable += 1
            if record.authority in {authority_of.get(r, "") for r in fired}:
                result.attributed += 1
            else:
                result.misattributed.append(record.id)
    return result


def rules_classifier(rules: Sequence[Rule]) -> Classifier:
    """The shipped matcher, exactly as the pipeline runs it on a fetched item."""
    ruleset = RuleSet(rules)

    def classify(record: Record) -> tuple[str, ...]:
        now = record.date + timedelta(hours=1)
        matches = ruleset.match(record.item(), feed_tags=record.feed_tags, now=now)
        return tuple(m.rule_id for m in matches)

    return classify


# What a user types into a news-alert service: a competition word and a big-tech or AI name, in
# English, anywhere in the text. The baseline the rules must beat on both recall and precision.
_NAIVE_ACTION = re.compile(
    r"\b(antitrust|competition (authority|regulator|watchdog)|CMA|FTC|DOJ|European Commission|merger|"
    r"acquisition|acquire[sd]?|invest(s|ment|ed)?|stake|partnership|probe|investigation|inquiry)\b",
    re.IGNORECASE,
)
_NAIVE_TECH = re.compile(
    r"\b(Microsoft|Google|Alphabet|Amazon|Meta|Apple|Nvidia|OpenAI|Anthropic|Mistral|AI)\b", re.IGNORECASE
)


def naive_classifier(record: Record) -> tuple[str, ...]:
    text = f"{record.title}\n{record.text}"
    return ("naive-keywords",) if _NAIVE_ACTION.search(text) and _NAIVE_TECH.search(text) else ()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
