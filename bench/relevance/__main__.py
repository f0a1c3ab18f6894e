"""The relevance benchmark: the shipped rules over the corpus of real published items.

Run with ``make bench-relevance`` (or ``.venv/bin/python -m bench.relevance``). Prints recall,
precision and F1 for the tuning and the held-out part, by language, label and authority, the
authority attribution, and the misses and false alarms of the tuning part by id, beside a naive
keyword baseline scored in the same run. Writes the same figures as JSON (``--json``).

``--check`` exits 1 when the held-out recall, precision or attribution is below
``floor.json``; CI runs the same check as a test (tests/unit/test_relevance.py).

The held-out part is for measuring, not for tuning: its misses are listed only with
``--reveal-heldout``, which a rule author does not use while changing rules (CORPUS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.relevance.corpus import CORPUS_DIR, Record, load_corpus
from bench.relevance.evaluate import Counts, Score, naive_classifier, rules_classifier, score
from watcher.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
FLOOR = Path(__file__).resolve().parent / "floor.json"
LATEST = Path(__file__).resolve().parent / "latest.json"
# A language's recall is held to its own floor once the held-out part has this many of its items.
LANG_MIN_ITEMS = 10


def run(rules_dir: Path = ROOT / "rules", corpus_dir: Path = CORPUS_DIR) -> dict[str, Any]:
    """Score the rules and the naive baseline on both parts; the figures as one JSON-ready dict."""
    rules = load_rules([rules_dir])
    authority_of = {r.id: r.authority for r in rules}
    records = load_corpus(corpus_dir)
    classify = rules_classifier(rules)
    parts = {
        "tuning": [r for r in records if r.split == "tuning"],
        "heldout": [r for r in records if r.split == "heldout"],
    }
    start = time.perf_counter()
    ours = {name: score(part, classify, authority_of) for name, part in parts.items()}
    per_item_ms = (time.perf_counter() - start) * 1000 / max(1, len(records))
    naive = {name: score(part, naive_classifier, {}) for name, part in parts.items()}
    return {
        "corpus": _describe(records),
        "rules": len(rules),
        "ms_per_item": round(per_item_ms, 3),
        "watcher": {name: s.as_dict(with_ids=True) for name, s in ours.items()},
        "naive": {name: s.overall.as_dict() for name, s in naive.items()},
    }


def _describe(records: list[Record]) -> dict[str, Any]:
    langs: dict[str, int] = {}
    for r in records:
        langs[r.lang] = langs.get(r.lang, 0) + 1
    negatives = sum(not r.relevant for r in records)
    return {
        "items": len(records),
        "relevant": len(records) - negatives,
        "negatives": negatives,
        "non_english": sum(r.lang != "en" for r in records),
        "languages": dict(sorted(langs.items(), key=lambda kv: -kv[1])),
        "tuning": sum(r.split == "tuning" for r in records),
        "heldout": sum(r.split == "heldout" for r in records),
    }


def floor_failures(result: dict[str, Any], floor: dict[str, float]) -> list[str]:
    """What falls below the floor on the held-out part, one line each (empty: all good)."""
    held = result["watcher"]["heldout"]
    problems = []
    for key in ("recall", "precision", "attribution"):
        value = held[key] or 0.0
        if value < floor[key]:
            problems.append(f"held-out {key} {value:.3f} is below the floor {floor[key]:.3f}")
    for lang, counts in held["by_lang"].items():
        if counts["n"] >= LANG_MIN_ITEMS and counts["recall"] is not None and counts["recall"] < floor["lang_recall"]:
            problems.append(
                f"held-out recall in {lang} {counts['recall']:.3f} is below the floor {floor['lang_recall']:.3f}"
            )
    return problems


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(title: str, rows: dict[str, dict[str, Any]], first: str) -> Table:
    table = Table(title=title)
    for name in (first, "n", "relevant", "recall", "precision", "f1"):
        table.add_column(name, justify="left" if name == first else "right")
    for key, c in rows.items():
        table.add_row(key, str(c["n"]), str(c["tp"] + c["fn"]), _fmt(c["recall"]), _fmt(c["precision"]), _fmt(c["f1"]))
    return table


def report(result: dict[str, Any], console: Console, *, reveal_heldout: bool) -> None:
    corpus = result["corpus"]
    console.print(
        f"corpus: {corpus['items']} items ({corpus['relevant']} relevant, {corpus['negatives']} negatives; "
        f"{corpus['non_english']} not in English, {len(corpus['languages'])} languages: "
        + ", ".join(f"{k} {v}" for k, v in corpus["languages"].items())
        + f"); tuning {corpus['tuning']}, held out {corpus['heldout']}; {result['rules']} rules, "
        f"{result['ms_per_item']} ms per item"
    )
    summary = Table(title="relevance (an item alerts when any rule fires)")
    for name in ("part", "system", "recall", "precision", "f1", "attribution", "tp", "fp", "fn"):
        summary.add_column(name, justify="left" if name in ("part", "system") else "right")
    for part in ("tuning", "heldout"):
        ours, naive = result["watcher"][part], result["naive"][part]
        summary.add_row(
            part, "watcher", _fmt(ours["recall"]), _fmt(ours["precision"]), _fmt(ours["f1"]),
            f"{_fmt(ours['attribution'])} of {ours['attributable']}", str(ours["tp"]), str(ours["fp"]), str(ours["fn"]),
        )  # fmt: skip
        summary.add_row(
            "", "naive keywords", _fmt(naive["recall"]), _fmt(naive["precision"]), _fmt(naive["f1"]), "-",
            str(naive["tp"]), str(naive["fp"]), str(naive["fn"]),
        )  # fmt: skip
    console.print(summary)
    for part in ("tuning", "heldout"):
        ours = result["watcher"][part]
        console.print(_table(f"{part}: by language", ours["by_lang"], "lang"))
        console.print(_table(f"{part}: by label (action or negative kind)", ours["by_action"], "label"))
        console.print(_table(f"{part}: by authority", ours["by_authority"], "authority"))
        if part == "heldout" and not reveal_heldout:
            console.print("held-out misses and false alarms are not listed (--reveal-heldout); tune on the tuning part")
            continue
        console.print(f"{part} misses: {', '.join(ours['misses']) or 'none'}")
        console.print(
            f"{part} false alarms: "
            + (", ".join(f"{i} ({'/'.join(r)})" for i, r in ours["false_alarms"].items()) or "none")
        )
        console.print(
            f"{part} wrong or no authority: "
            + (", ".join(f"{i} ({'/'.join(r)})" for i, r in ours["misattributed"].items()) or "none")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relevance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=Path, default=ROOT / "rules", help="rule directory (default: rules/)")
    parser.add_argument("--json", type=Path, default=LATEST, help=f"write the figures here (default: {LATEST.name})")
    parser.add_argument("--check", action="store_true", help="exit 1 when the held-out part is below floor.json")
    parser.add_argument("--reveal-heldout", action="store_true", help="also list the held-out misses (not for tuning)")
    args = parser.parse_args(argv)
    result = run(args.rules)
    public = json.loads(json.dumps(result))
    if not args.reveal_heldout:
        for key in ("misses", "false_alarms", "misattributed"):
            public["watcher"]["heldout"].pop(key, None)
    args.json.write_text(json.dumps(public, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    report(result, Console(width=130), reveal_heldout=args.reveal_heldout)
    if args.check:
        problems = floor_failures(result, json.loads(FLOOR.read_text()))
        for line in problems:
            print(f"FAILED: {line}", file=sys.stderr)
        return 1 if problems else 0
    return 0


__all__ = ["Counts", "Score", "floor_failures", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
