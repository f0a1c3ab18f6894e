"""Run each rule's own examples through the real matcher. Pure; no I/O.

Rule authors keep texts a rule must and must not fire on beside the rule; `watcher rules check`
runs them so a change that breaks one fails in CI, not in someone's inbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from watcher.match import RuleSet
from watcher.model import Example, Item, Rule


@dataclass(frozen=True, slots=True)
class ExampleResult:
    rule: Rule
    example: Example
    fired: bool

    @property
    def ok(self) -> bool:
        return self.fired == self.example.expect_match


def example_item(example: Example, index: int) -> Item:
    return Item(
        feed_id=example.feed,
        item_key=f"example-{index}",
        title=example.title,
        link=example.link,
        summary=example.summary,
        content=example.content,
        published_at=None,
    )


def run_examples(rules: Sequence[Rule]) -> list[ExampleResult]:
    """Run every rule's own examples through the real engine, rule by rule."""
    results = []
    for rule in rules:
        single = RuleSet([replace(rule, enabled=True)])
        for index, example in enumerate(rule.examples):
            fired = bool(single.match(example_item(example, index), feed_tags=example.feed_tags))
            results.append(ExampleResult(rule, example, fired))
    return results
