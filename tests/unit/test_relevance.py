"""The relevance benchmark as a CI gate: the corpus keeps its shape, the held-out part is not edited
quietly, no rule example is a held-out text, and the shipped rules stay above the floor on it."""

from __future__ import annotations

import json
from pathlib import Path

from bench.relevance.__main__ import FLOOR, floor_failures, run
from bench.relevance.corpus import CORPUS_DIR, held_out_digest, load_corpus
from watcher.fold import fold
from watcher.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]


def test_the_corpus_has_the_shape_the_benchmark_promises() -> None:
    records = load_corpus()
    langs = {r.lang for r in records}
    assert len(records) >= 300
    assert sum(not r.relevant for r in records) >= 0.4 * len(records)
    assert sum(r.lang != "en" for r in records) >= 0.25 * len(records)
    assert len(langs - {"en"}) >= 8 and {"ja", "ko"} <= langs
    assert {r.split for r in records} == {"tuning", "heldout"}


def test_the_held_out_part_is_not_edited_quietly() -> None:
    expected = (CORPUS_DIR.parent / "heldout.sha256").read_text().strip()
    assert held_out_digest(load_corpus()) == expected, (
        "held-out records changed: if that is intended (a corrected label, new items), regenerate "
        "bench/relevance/heldout.sha256 and say why in the commit"
    )


def test_no_rule_example_is_a_held_out_text() -> None:
    """Examples are where tuning texts get pinned: none may carry a held-out item's text. (A
    regulator's release title may appear in both: it is the event's name, not our text.)"""
    held = [fold(r.text) for r in load_corpus() if r.split == "heldout"]
    copied = [
        f"{rule.id}: {ex.title}"
        for rule in load_rules([ROOT / "rules"])
        for ex in rule.examples
        for body in [fold(f"{ex.summary} {ex.content}").strip()]
        if len(body) >= 40 and any(body in text for text in held)
    ]
    assert copied == []


def test_the_shipped_rules_stay_above_the_floor_on_the_held_out_part() -> None:
    result = run()
    assert floor_failures(result, json.loads(FLOOR.read_text())) == []
