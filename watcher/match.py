"""Pure rule matching. No I/O, no clock, no logging.

Every phrase of every rule goes into one Aho-Corasick automaton, run once over each item's
folded text (all fields, joined by a separator no phrase can cross). Exact phrases are padded
with spaces on both sides and prefixes ("investigat*") on the left only, and the text is folded
to words separated by single spaces, so every hit is on word boundaries ("CMA" never matches
"CMAs" or "cinema"). Only rules with a phrase that occurred (and the few rules that need no
phrase at all) have their condition evaluated. Each match carries its reasons, with offsets into
the item's own text and a highlighted snippet.
"""

from __future__ import annotations

import bisect
import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import ahocorasick

from watcher.fold import fold
from watcher.model import (
    TEXT_FIELDS,
    And,
    Condition,
    Item,
    Match,
    Meta,
    Near,
    Not,
    Or,
    Reason,
    Regex,
    Rule,
    Term,
)

_SEP = " | "  # folding never produces "|", so no phrase spans two fields
_MAX_HITS = 4096  # occurrences kept per phrase per item: all of them in any real page, bounded for junk
_TOKEN = re.compile(r"[^\W_]+")
SNIPPET_CONTEXT = 60


def item_fields(item: Item) -> dict[str, str]:
    """The plain text of each matchable field of an item."""
    return {
        "title": item.title,
        "summary": item.summary,
        "content": item.content,
        "article": item.article,
        "link": item.link or "",
        "author": "; ".join(item.authors),
        "category": "; ".join(item.tags),
    }


@dataclass
class _Scan:
    """One item's folded text and where each phrase occurred in it."""

    item: Item
    texts: dict[str, str]  # the item's plain field texts, built once per item (see item_fields)
    feed_tags: frozenset[str]
    text: str
    bounds: list[int]  # start offset of each field in `text`, in TEXT_FIELDS order
    hits: dict[int, list[int]]  # pattern id -> where each occurrence ends (automaton end index) in `text`
    _spaces: list[int] | None = None
    spans: dict[str, list[tuple[int, int]] | None] = field(default_factory=dict)  # per field, for reasons
    # term number -> whether it holds for this item: rules share their lists, so each is decided once.
    terms: dict[int, bool] = field(default_factory=dict)
    # id(NEAR or regex condition) -> its result: a rule that fires is evaluated again for its
    # reasons, and the pairing of occurrences or the regex scan is the costly part.
    found: dict[int, Any] = field(default_factory=dict)

    def field_of(self, offset: int) -> int:
        return bisect.bisect_right(self.bounds, offset) - 1

    def word_index(self, offset: int) -> int:
        if self._spaces is None:
            self._spaces = [i for i, ch in enumerate(self.text) if ch == " "]
        return bisect.bisect_left(self._spaces, offset)


@dataclass(frozen=True, slots=True)
class Evaluation:
    matches: list[Match]
    partial: list[str]  # rules with a phrase hit that did not fire: worth the article text


class RuleSet:
    """Rules compiled into one automaton. Build once per rules load; reuse for every item."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(r for r in rules if r.enabled)
        self._patterns: list[tuple[str, bool]] = []  # id -> (phrase as written, is prefix)
        self._lengths: list[int] = []  # id -> folded length
        self._words: list[str] = []  # id -> the padded key searched for
        self._lazy: set[int] = set()  # ids only ever negated: looked up on demand, not scanned for
        self._stop_shift: list[int] = []  # id -> automaton end index + this = end of the phrase
        self._keys: dict[str, int] = {}
        self._automaton = ahocorasick.Automaton()
        self._term_ids: dict[Term, frozenset[int]] = {}
        # id(term) -> (its scanned phrase ids, its veto-only phrase ids, its fields, and a number
        # shared by every term with the same phrases and fields); see _term_true.
        self._term_info: dict[int, tuple[frozenset[int], tuple[int, ...], frozenset[int], int]] = {}
        self._field_ids: dict[tuple[str, ...], frozenset[int]] = {}
        self._regexes: dict[Regex, tuple[int, re.Pattern[str]]] = {}
        self._regex_of: dict[int, re.Pattern[str]] = {}  # id(regex condition) -> compiled
        self._by_pattern: dict[int, list[int]] = {}  # trigger phrase -> rules to evaluate
        self._by_positive: dict[int, list[int]] = {}  # any non-negated phrase -> rules it is part of
        self._order: dict[int, tuple[Condition, ...]] = {}  # rule index -> its AND's children, fail-fast order
        self._always: list[int] = []  # rules that can fire with no phrase hit (regex or metadata only)
        for index, rule in enumerate(self.rules):
            self._compile(rule.condition)
            for pid in self._positive_ids(rule.condition):
                self._by_positive.setdefault(pid, []).append(index)
            trigger = self._trigger(rule.condition)
            cond = rule.condition
            # Evaluate the parts most likely to fail first: the trigger part is what woke the
            # rule, so it is nearly always true; vetoes are cheap lookups, tried last.
            if isinstance(cond, And):
                self._order[index] = tuple(
                    sorted(cond.children, key=lambda c: (isinstance(c, Not), self._trigger(c) == trigger))
                )
            if trigger is None:
                self._always.append(index)
            else:
                for pid in trigger:
                    self._by_pattern.setdefault(pid, []).append(index)
        # A phrase that is only ever vetoed ("NOT Country Music Association") cannot wake a rule:
        # it is looked up in the candidate's text when asked, instead of being scanned for in every
        # item (vetoes are often common words, which would flood the scan with hits).
        self._lazy = set(range(len(self._patterns))) - set(self._by_positive)
        same: dict[tuple[frozenset[int], frozenset[int]], int] = {}
        for key, (pids, _, fields, _) in self._term_info.items():
            shared = same.setdefault((pids, fields), len(same))
            self._term_info[key] = (pids - self._lazy, tuple(sorted(pids & self._lazy)), fields, shared)
        for pid, word in enumerate(self._words):
            if pid not in self._lazy:
                self._automaton.add_word(word, pid)
        self._scannable = len(self._lazy) < len(self._patterns)
        if self._scannable:
            self._automaton.make_automaton()

    # -- compiling -----------------------------------------------------------------------------

    def _pattern(self, phrase: str) -> int:
        is_prefix = phrase.endswith("*")
        key = fold(phrase[:-1] if is_prefix else phrase)
        word = f" {key}" if is_prefix else f" {key} "
        if word not in self._keys:
            pid = len(self._patterns)
            self._keys[word] = pid
            self._patterns.append((phrase, is_prefix))
            self._words.append(word)
            # Exact keys end on their trailing space, prefixes on their last letter.
            self._stop_shift.append(1 if is_prefix else 0)
            self._lengths.append(len(key))
        return self._keys[word]

    def _compile(self, cond: Condition) -> None:
        if isinstance(cond, Term):
            if cond not in self._term_ids:
                self._term_ids[cond] = frozenset(self._pattern(p) for p in cond.phrases)
            # Keyed by identity: hashing a Term hashes all its phrases, too slow for the hot path.
            self._term_info[id(cond)] = (self._term_ids[cond], (), self._fields(cond.fields), 0)
        elif isinstance(cond, Near):
            self._compile(cond.left)
            self._compile(cond.right)
        elif isinstance(cond, Regex):
            if cond not in self._regexes:
                flags = re.IGNORECASE if cond.ignore_case else 0
                self._regexes[cond] = (len(self._regexes), re.compile(cond.pattern, flags))
            self._regex_of[id(cond)] = self._regexes[cond][1]
        elif isinstance(cond, (And, Or)):
            for child in cond.children:
                self._compile(child)
        elif isinstance(cond, Not):
            self._compile(cond.child)

    def _fields(self, names: tuple[str, ...]) -> frozenset[int]:
        if names not in self._field_ids:
            self._field_ids[names] = frozenset(TEXT_FIELDS.index(n) for n in names)
        return self._field_ids[names]

    def _positive_ids(self, cond: Condition) -> set[int]:
        if isinstance(cond, Term):
            return set(self._term_ids[cond])
        if isinstance(cond, Near):
            return self._positive_ids(cond.left) | self._positive_ids(cond.right)
        if isinstance(cond, (And, Or)):
            return set().union(*(self._positive_ids(c) for c in cond.children))
        return set()

    def _trigger(self, cond: Condition) -> frozenset[int] | None:
        """Phrases of which at least one must occur for ``cond`` to hold; None if there is no such set.

        A rule is evaluated only for items where one of its trigger phrases occurred. For an AND we
        need the phrases of one child only, and pick the likely rarest (longest exact phrases),
        so a rule like ``@companies AND (deal OR merger*)`` wakes up on company names, not on "deal".
        """
        if isinstance(cond, Term):
            return self._term_ids[cond]
        if isinstance(cond, Near):
            return self._trigger(cond.left)
        if isinstance(cond, Or):
            parts = [self._trigger(c) for c in cond.children]
            return None if any(p is None for p in parts) else frozenset().union(*parts)  # type: ignore[arg-type]
        if isinstance(cond, And):
            options = [t for t in (self._trigger(c) for c in cond.children) if t is not None]
            return max(options, key=self._rarity) if options else None
        return None

    def _rarity(self, pids: frozenset[int]) -> tuple[int, int]:
        """Longer phrases are rarer; prefixes and big sets are woken more often."""
        shortest = min(len(fold(self._patterns[p][0].rstrip("*"))) - 4 * self._patterns[p][1] for p in pids)
        return shortest, -len(pids)

    # -- matching ------------------------------------------------------------------------------

    def _scan(self, item: Item, feed_tags: Iterable[str]) -> _Scan:
        texts = item_fields(item)
        parts = [fold(texts[name]) for name in TEXT_FIELDS]
        bounds = []
        offset = 1
        for part in parts:
            bounds.append(offset)
            offset += len(part) + len(_SEP)
        text = " " + _SEP.join(parts) + " "
        hits: dict[int, list[int]] = {}
        if self._scannable:
            # The hot loop: keep only where each occurrence ends; fields and starts are worked
            # out later, for the few phrases a candidate rule actually asks about.
            for end, pid in self._automaton.iter(text):
                found = hits.get(pid)
                if found is None:
                    hits[pid] = [end]
                elif len(found) < _MAX_HITS:
                    found.append(end)
        return _Scan(item, texts, frozenset(t.lower() for t in feed_tags), text, bounds, hits)

    def evaluate(
        self, item: Item, *, feed_tags: Iterable[str] = (), now: datetime | None = None, want_partial: bool = False
    ) -> Evaluation:
        """Match one item. With ``want_partial``, also name the rules that some phrase of the item
        already satisfies in part without firing: their verdict may change with the article text."""
        if not self.rules:
            return Evaluation([], [])
        scan = self._scan(item, feed_tags)
        candidates = sorted({i for pid in scan.hits for i in self._by_pattern.get(pid, ())} | set(self._always))
        matches: list[Match] = []
        for index in candidates:
            rule = self.rules[index]
            order = self._order.get(index)
            holds = self._all(order, scan) if order else self._eval(rule.condition, scan)
            if holds and self._filters_pass(rule, scan, now):
                reasons: list[Reason] = []
                self._collect(rule.condition, scan, reasons)
                matches.append(Match(rule.id, item.feed_id, item.item_key, rule.severity, tuple(_dedupe(reasons))))
        partial: list[str] = []
        if want_partial:
            fired = {m.rule_id for m in matches}
            touched = sorted({i for pid in scan.hits for i in self._by_positive.get(pid, ())})
            partial = [
                self.rules[i].id
                for i in touched
                if self.rules[i].id not in fired and self._filters_pass(self.rules[i], scan, now)
            ]
        return Evaluation(matches, partial)

    def match(self, item: Item, *, feed_tags: Iterable[str] = (), now: datetime | None = None) -> list[Match]:
        """Return the matches of one item, in rule order, each with its reasons."""
        return self.evaluate(item, feed_tags=feed_tags, now=now).matches

    def match_all(
        self, items: Iterable[Item], *, feed_tags: Iterable[str] = (), now: datetime | None = None
    ) -> list[Match]:
        """Match every item; deterministic order (items, then rules)."""
        tags = tuple(feed_tags)
        return [m for item in items for m in self.match(item, feed_tags=tags, now=now)]

    @staticmethod
    def _filters_pass(rule: Rule, scan: _Scan, now: datetime | None) -> bool:
        item = scan.item
        if rule.feeds and item.feed_id not in rule.feeds:
            return False
        if rule.feed_tags and not scan.feed_tags.intersection(t.lower() for t in rule.feed_tags):
            return False
        too_old = (
            rule.max_age_seconds is not None
            and now is not None
            and item.published_at is not None
            and (now - item.published_at).total_seconds() > rule.max_age_seconds
        )
        return not too_old

    def _term_hits(self, term: Term, scan: _Scan) -> Iterable[tuple[int, int, int, int]]:
        """(pattern id, field index, start, end) of the term's occurrences in its fields."""
        fields = self._fields(term.fields)
        eager, lazy, _, _ = self._term_info[id(term)]
        hits = scan.hits
        # From whichever side is smaller, as in _term_true; occurrences in the order the text has them.
        found = [p for p in hits if p in eager] if len(hits) < len(eager) else [p for p in eager if p in hits]
        for pid in (*found, *lazy):
            ends = self._lazy_hits(pid, scan) if pid in self._lazy else hits.get(pid)
            if not ends:
                continue
            length, shift = self._lengths[pid], self._stop_shift[pid]
            for end in ends:
                stop = end + shift
                f = scan.field_of(stop - length)
                if f in fields:
                    yield pid, f, stop - length, stop

    def _lazy_hits(self, pid: int, scan: _Scan) -> list[int]:
        """Occurrences of a veto-only phrase, found with str.find like the automaton would."""
        cached = scan.hits.get(pid)
        if cached is not None:
            return cached
        word = self._words[pid]
        ends: list[int] = []
        at = scan.text.find(word)
        while at >= 0 and len(ends) < _MAX_HITS:
            ends.append(at + len(word) - 1)  # the automaton's end index: the key's last character
            at = scan.text.find(word, at + 1)
        scan.hits[pid] = ends
        return ends

    def _regex_match(self, cond: Regex, scan: _Scan) -> tuple[str, re.Match[str]] | None:
        key = id(cond)
        if key in scan.found:
            return scan.found[key]  # type: ignore[no-any-return]
        pattern = self._regex_of[key]
        texts = scan.texts
        result = None
        for name in cond.fields:
            found = pattern.search(texts[name])
            if found:
                result = name, found
                break
        scan.found[key] = result
        return result

    def _term_true(self, term: Term, scan: _Scan) -> bool:
        """The hot path of evaluation: does any phrase of the term occur in one of its fields?

        A list term holds hundreds of phrases and an item hits a few dozen, so the term's scanned
        phrases are checked against the item's hits from whichever side is smaller; veto-only
        phrases are looked up in the text on demand.
        """
        eager, lazy, fields, key = self._term_info[id(term)]
        known = scan.terms.get(key)
        if known is not None:
            return known
        hits = scan.hits
        found = [p for p in hits if p in eager] if len(hits) < len(eager) else [p for p in eager if p in hits]
        for pid in (*found, *lazy):
            ends = self._lazy_hits(pid, scan) if pid in self._lazy else hits[pid]
            if ends:
                start_shift = self._stop_shift[pid] - self._lengths[pid]
                for end in ends:
                    if scan.field_of(end + start_shift) in fields:
                        scan.terms[key] = True
                        return True
        scan.terms[key] = False
        return False

    def _all(self, conds: tuple[Condition, ...], scan: _Scan) -> bool:
        for cond in conds:  # noqa: SIM110 (a loop: see _eval)
            if not self._eval(cond, scan):
                return False
        return True

    def _eval(self, cond: Condition, scan: _Scan) -> bool:
        # Loops and exact type checks rather than all()/any() over generators: this runs tens of
        # times per item and rule, and the generator frames were most of its cost.
        kind = type(cond)
        if kind is Term:
            return self._term_true(cond, scan)  # type: ignore[arg-type]
        if kind is And:
            for child in cond.children:  # type: ignore[union-attr]  # noqa: SIM110
                if not self._eval(child, scan):
                    return False
            return True
        if kind is Or:
            for child in cond.children:  # type: ignore[union-attr]  # noqa: SIM110
                if self._eval(child, scan):
                    return True
            return False
        if kind is Not:
            return not self._eval(cond.child, scan)  # type: ignore[union-attr]
        if isinstance(cond, Near):
            return self._near(cond, scan) is not None
        if isinstance(cond, Regex):
            return self._regex_match(cond, scan) is not None
        assert isinstance(cond, Meta)
        return _meta(cond, scan)

    def _near(self, cond: Near, scan: _Scan) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None:
        key = id(cond)
        if key in scan.found:
            return scan.found[key]  # type: ignore[no-any-return]
        scan.found[key] = found = self._pair(cond, scan)
        return found

    def _pair(self, cond: Near, scan: _Scan) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None:
        rights = list(self._term_hits(cond.right, scan))
        if not rights:
            return None
        for left in self._term_hits(cond.left, scan):
            for right in rights:
                if left[1] != right[1]:
                    continue
                first, second = (left, right) if left[2] <= right[2] else (right, left)
                between = scan.word_index(second[2]) - scan.word_index(first[3]) - 1
                if between <= cond.distance:
                    return left, right
        return None

    def _collect(self, cond: Condition, scan: _Scan, out: list[Reason]) -> None:
        """Reasons from the true, positive parts of a condition (never from under a NOT)."""
        if isinstance(cond, Term):
            for pid, f, start, end in self._term_hits(cond, scan):
                out.append(self._reason(scan, pid, f, start, end, cond.label))
                return
        elif isinstance(cond, Near):
            pair = self._near(cond, scan)
            if pair:
                for (pid, f, start, end), term in zip(pair, (cond.left, cond.right), strict=True):
                    out.append(self._reason(scan, pid, f, start, end, term.label))
        elif isinstance(cond, Regex):
            found = self._regex_match(cond, scan)
            if found:
                name, m = found
                text = scan.texts[name]
                out.append(Reason(name, m.group(0), m.start(), m.end(), _snippet(text, m.start(), m.end())))
        elif isinstance(cond, (And, Or)):
            for child in cond.children:
                if self._eval(child, scan):
                    self._collect(child, scan, out)

    def _reason(self, scan: _Scan, pid: int, f: int, start: int, end: int, label: str) -> Reason:
        name = TEXT_FIELDS[f]
        phrase = self._patterns[pid][0]
        via = label if label.startswith("@") else ""
        original = scan.texts[name]
        if name not in scan.spans:
            scan.spans[name] = word_spans(original)
        spans = scan.spans[name]
        if not spans:  # folding changed the word count; show the folded text instead
            folded = fold(original)
            lo, hi = start - scan.bounds[f], end - scan.bounds[f]
            return Reason(name, phrase, lo, hi, _snippet(folded, lo, hi), via)
        lo, hi = _original_span(spans, scan.text, scan.bounds[f], start, end)
        return Reason(name, phrase, lo, hi, _snippet(original, lo, hi), via)


def _meta(cond: Meta, scan: _Scan) -> bool:
    item = scan.item
    if cond.kind == "feed":
        return any(fnmatch.fnmatchcase(item.feed_id, v) for v in cond.values)
    if cond.kind == "tag":
        return bool(scan.feed_tags.intersection(cond.values))
    host = (urlsplit(item.link).hostname or "").lower() if item.link else ""
    return any(host == v or host.endswith("." + v) for v in cond.values)


def word_spans(original: str) -> list[tuple[int, int]] | None:
    """Where each folded word of ``original`` comes from; None if folding does not map word by word."""
    if original.isascii():  # folding ASCII only lower-cases: its words are exactly the tokens
        return [m.span() for m in _TOKEN.finditer(original)]
    spans: list[tuple[int, int]] = []
    for m in _TOKEN.finditer(original):
        token = m.group(0)
        count = 1 if token.isascii() else len(fold(token).split())
        spans.extend([(m.start(), m.end())] * count)
    return spans if len(spans) == len(fold(original).split()) else None


def _original_span(spans: list[tuple[int, int]], text: str, field_start: int, start: int, end: int) -> tuple[int, int]:
    """Map a hit in the folded text back to the field's own characters, word by word."""
    first = text.count(" ", field_start, start)
    last = min(first + text.count(" ", start, end), len(spans) - 1)
    return spans[first][0], spans[last][1]


def _snippet(text: str, start: int, end: int) -> str:
    """The words around a hit, the hit in **double asterisks**, on one line."""
    lo = max(0, start - SNIPPET_CONTEXT)
    hi = min(len(text), end + SNIPPET_CONTEXT)
    if lo > 0:
        lo = text.find(" ", lo, start) + 1 or lo
    if hi < len(text):
        cut = text.rfind(" ", end, hi)
        hi = cut if cut > 0 else hi
    body = f"{text[lo:start]}**{text[start:end]}**{text[end:hi]}"
    body = " ".join(body.split())
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


def _dedupe(reasons: list[Reason]) -> list[Reason]:
    seen: set[tuple[str, str, int]] = set()
    out = []
    for r in reasons:
        key = (r.field, r.phrase, r.start)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return sorted(out, key=lambda r: (TEXT_FIELDS.index(r.field) if r.field in TEXT_FIELDS else 99, r.start))


def match_items(items: Iterable[Item], rules: RuleSet) -> list[Match]:
    """Match every item against every rule; deterministic order (items, then rules)."""
    return rules.match_all(items)
