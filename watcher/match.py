"""Pure rule matching. No I/O, no clock, no logging.

Every phrase of every rule goes into one Aho-Corasick automaton, run once over each item's folded
title and text; the boolean logic is then evaluated only for rules whose phrases occurred.
Phrases are padded with spaces and the text is folded to words separated by single spaces, so a
hit is always a whole-word hit ("CMA" never matches "cinema" or "CMAs").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ahocorasick

from watcher.fold import fold
from watcher.model import Item, Match, Reason, Rule

# Field texts are joined with a character that folding never produces, so no phrase spans two fields.
_FIELD_SEP = " | "
_FIELDS = ("title", "text")


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    any_ids: frozenset[int]
    all_ids: tuple[frozenset[int], ...]
    none_ids: frozenset[int]
    positive_ids: frozenset[int]


class RuleSet:
    """Rules compiled into one automaton. Build once per rules load; reuse for every item."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(r for r in rules if r.enabled)
        self._phrases: list[str] = []  # id -> phrase as first written
        ids: dict[str, int] = {}
        automaton = ahocorasick.Automaton()

        def pid(phrase: str) -> int:
            key = fold(phrase)
            if key not in ids:
                ids[key] = len(self._phrases)
                self._phrases.append(phrase)
                automaton.add_word(f" {key} ", (ids[key], len(key)))
            return ids[key]

        compiled = []
        self._by_phrase: dict[int, list[int]] = {}
        for index, rule in enumerate(self.rules):
            any_ids = frozenset(pid(p) for p in rule.any_of)
            all_ids = tuple(frozenset(pid(p) for p in group) for group in rule.all_of)
            none_ids = frozenset(pid(p) for p in rule.none_of)
            positive = any_ids.union(*all_ids)
            compiled.append(_Compiled(rule, any_ids, all_ids, none_ids, positive))
            for phrase_id in positive:
                self._by_phrase.setdefault(phrase_id, []).append(index)
        self._compiled = tuple(compiled)
        self._automaton = automaton
        if self._phrases:
            automaton.make_automaton()

    def _scan(self, item: Item) -> dict[int, Reason]:
        """Return the first occurrence of each phrase found in the item, with its field."""
        parts = [fold(item.title), fold(item.text)]
        text = " " + _FIELD_SEP.join(parts) + " "
        bounds = []
        start = 1
        for part in parts:
            bounds.append((start, start + len(part)))
            start += len(part) + len(_FIELD_SEP)
        found: dict[int, Reason] = {}
        for end, (phrase_id, length) in self._automaton.iter(text):
            if phrase_id in found:
                continue
            # `end` is the index of the trailing space; the phrase itself ends one before it.
            phrase_end = end
            phrase_start = phrase_end - length
            field = next(
                (name for name, (lo, hi) in zip(_FIELDS, bounds, strict=True) if lo <= phrase_start < hi),
                "text",
            )
            lo = dict(zip(_FIELDS, bounds, strict=True))[field][0]
            found[phrase_id] = Reason(field, self._phrases[phrase_id], phrase_start - lo, phrase_end - lo)
        return found

    def match(self, item: Item) -> list[Match]:
        """Return the matches of one item, in rule order, each with its reasons."""
        if not self._phrases:
            return []
        found = self._scan(item)
        if not found:
            return []
        candidates = sorted({i for p in found for i in self._by_phrase.get(p, ())})
        out = []
        for index in candidates:
            c = self._compiled[index]
            if c.rule.feeds and item.feed_id not in c.rule.feeds:
                continue
            if c.any_ids and not (c.any_ids & found.keys()):
                continue
            if any(not (group & found.keys()) for group in c.all_ids):
                continue
            if c.none_ids & found.keys():
                continue
            reasons = tuple(
                sorted(
                    (found[p] for p in c.positive_ids if p in found),
                    key=lambda r: (r.field != "title", r.start),
                )
            )
            out.append(Match(c.rule.id, item.feed_id, item.item_key, c.rule.severity, reasons))
        return out

    def match_all(self, items: Iterable[Item]) -> list[Match]:
        """Match every item; deterministic order (items, then rules)."""
        return [m for item in items for m in self.match(item)]


def match_items(items: Iterable[Item], rules: RuleSet) -> list[Match]:
    """Match every item against every rule; deterministic order (items, then rules)."""
    return rules.match_all(items)
