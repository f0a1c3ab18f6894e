"""Which procedure stage an item has reached: the latest stage of the rule's authority it names.

A case page is edited as a case moves on ("has launched a formal phase 1 investigation", "has
referred the deal for an in-depth phase 2 review", "accepted undertakings"), and it keeps the
history of the earlier steps. An edit is therefore at the latest stage it names, whatever words
it uses for it, and a rule with ``on_update = "notify"`` alerts once per stage reached (the store
keys the alert by stage). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from watcher.match import RuleSet
from watcher.model import Item, Rule, Severity, Stage, Term


class StageFinder:
    """The stage vocabularies of a rule set, each compiled once into one automaton."""

    def __init__(self, rules: Iterable[Rule]):
        self._sets: dict[tuple[Stage, ...], tuple[RuleSet, dict[str, int]]] = {}
        for rule in rules:
            if rule.stages and rule.stages not in self._sets:
                pseudo = [Rule(s.name, s.name, Severity.INFO, Term(s.phrases)) for s in rule.stages]
                self._sets[rule.stages] = (RuleSet(pseudo), {s.name: i for i, s in enumerate(rule.stages)})

    def latest(self, rule: Rule, item: Item) -> str | None:
        """The latest of the rule's stages that the item names, or None (no stages, or none named)."""
        found = self._sets.get(rule.stages)
        if found is None:
            return None
        ruleset, order = found
        named = [m.rule_id for m in ruleset.match(item)]
        return max(named, key=order.__getitem__) if named else None
