"""Matching throughput with 10, 100 and 1,000 rules on generated ~2 KB items, against a naive
engine that evaluates each rule's compiled regexes one by one (the same rules, the same answers)."""

from __future__ import annotations

import random
import re
import tempfile
import time
from pathlib import Path

from watcher.fold import fold
from watcher.match import RuleSet
from watcher.model import And, Condition, Item, Not, Or, Rule, Term
from watcher.rules import load_rules

SYLLABLES = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "ze", "po", "an", "el", "or", "us", "ix", "qu"]


def _words(rng: random.Random, n: int, syllables: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(SYLLABLES) for _ in range(syllables)))
    return sorted(out)


class Corpus:
    """Deterministic vocabulary: common words fill the text, entities and actions are what rules look for."""

    def __init__(self, seed: int = 7):
        rng = random.Random(seed)
        self.common = _words(rng, 600, 2 + 1)  # 3 syllables: ~6 letters, like ordinary words
        first, last = _words(rng, 3000, 4), _words(rng, 3000, 5)
        self.entities = [f"{a.title()} {b.title()}" for a, b in zip(first, last, strict=True)]
        self.actions = [f"{a} {b}" for a, b in zip(_words(rng, 300, 4), _words(rng, 300, 4)[::-1], strict=True)]
        self.rng = rng

    def items(self, n: int) -> list[Item]:
        rng = random.Random(11)
        out = []
        for i in range(n):
            words = [rng.choice(self.common) for _ in range(330)]  # ~2 KB of text
            for _ in range(4):
                words.insert(rng.randrange(len(words)), rng.choice(self.entities))
            for _ in range(2):
                words.insert(rng.randrange(len(words)), rng.choice(self.actions))
            text = " ".join(words)
            title = " ".join([rng.choice(self.entities), *rng.sample(self.common, 6)])
            out.append(Item("bench", str(i), title, None, text, "", None))
        return out

    def rule_file(self, n: int) -> str:
        rng = random.Random(n)
        parts = ["[lists]"]
        for k in range(n // 5 + 1):
            names = ", ".join(f'"{e}"' for e in rng.sample(self.entities, 8))
            parts.append(f"l{k} = [{names}]")
        for r in range(n):
            # Shaped like the shipped rules: named parties, an action (one written as a prefix), a veto.
            ents = " OR ".join(f'"{e}"' for e in rng.sample(self.entities, 3))
            a, b, c = rng.sample(self.actions, 3)
            acts = f'"{a}" OR "{b}" OR "{c[:-2]}*"'
            veto = rng.choice(self.common)
            parts.append(
                f'[[rule]]\nid = "r{r}"\ntitle = "Rule {r}"\n'
                f"query = '(@l{r // 5} OR {ents}) AND ({acts}) AND NOT {veto}'"
            )
        return "\n".join(parts) + "\n"


class NaiveEngine:
    """Each rule on its own: one compiled regex per phrase, the tree walked per item."""

    def __init__(self, rules: list[Rule]):
        self.rules = [(r.id, self._compile(r.condition)) for r in rules]

    def _compile(self, cond: Condition) -> object:
        if isinstance(cond, Term):
            pats = []
            for p in cond.phrases:
                body = re.escape(fold(p.rstrip("*")))
                pats.append(re.compile(r"(?<!\w)" + body + (r"" if p.endswith("*") else r"(?!\w)")))
            return ("term", pats)
        if isinstance(cond, (And, Or)):
            return ("and" if isinstance(cond, And) else "or", [self._compile(c) for c in cond.children])
        if isinstance(cond, Not):
            return ("not", self._compile(cond.child))
        raise TypeError(type(cond).__name__)

    def _eval(self, node: object, text: str) -> bool:
        kind, arg = node  # type: ignore[misc]
        if kind == "term":
            return any(p.search(text) for p in arg)
        if kind == "and":
            return all(self._eval(c, text) for c in arg)
        if kind == "or":
            return any(self._eval(c, text) for c in arg)
        return not self._eval(arg, text)

    def match(self, item: Item) -> list[str]:
        text = fold(item.title) + " | " + fold(item.text)
        return [rule_id for rule_id, node in self.rules if self._eval(node, text)]


def _rate(fn: object, items: list[Item], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def bench_scaling(rows: list[tuple[str, str, str, str]]) -> dict[int, float]:
    corpus = Corpus()
    items = corpus.items(400)
    sizes = (10, 100, 1000)
    engines: dict[int, tuple[RuleSet, NaiveEngine]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"r{n}.toml"
            path.write_text(corpus.rule_file(n))
            rules = load_rules([path])
            engines[n] = (RuleSet(rules), NaiveEngine(rules))
    for ours, naive in engines.values():
        for it in items[:10]:  # same answers first: a fast wrong engine is no result
            assert sorted(m.rule_id for m in ours.match(it)) == sorted(naive.match(it))
    # Round-robin, best of 7: a burst of load on this noisy machine hits every size alike.
    rates = dict.fromkeys(sizes, 0.0)
    for _ in range(7):
        for n in sizes:
            rates[n] = max(rates[n], _rate(engines[n][0].match, items, repeat=1))
    for n in sizes:
        ours, naive = engines[n]
        sample = items[: 10 if n == 1000 else 50]  # the naive engine is slow: fewer items, same rate
        naive_rate = _rate(naive.match, sample, repeat=1)
        fired = sum(len(ours.match(it)) for it in items)
        rows.append(
            (
                f"match: {n:,} rules, ~2 KB items ({fired} hits in {len(items)})",
                f"{rates[n]:,.0f} items/s",
                f"{naive_rate:,.0f} items/s" if naive_rate >= 10 else f"{naive_rate:.2f} items/s",
                f"{rates[n] / naive_rate:.1f}x",
            )
        )
    rows.append(("match: time per item, 1,000 vs 10 rules", f"{rates[10] / rates[1000]:.2f}x", "target < 3x", ""))
    return rates
