"""One rule file read from disk, and the named lists and stages shared across rule files.

Owns: the file's top-level shape (``[lists]``, ``[stages.AUTHORITY]`` and ``[[rule]]`` tables),
list names and phrases, ``@list`` expansion, and each authority's stage vocabulary. Must not:
validate or compile rules (``rules`` does that, with the lists and stages loaded here).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watcher.errors import ConfigError, RuleError
from watcher.fold import fold
from watcher.model import Stage, Term
from watcher.tomlmap import KeyLines, load_toml

_LIST_NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]*$")


def check_phrase(value: str) -> str:
    """A phrase needs words to match; ``*`` may only end it (a prefix)."""
    if value.startswith("@"):
        return value
    body = value[:-1] if value.endswith("*") else value
    if "*" in body:
        raise ValueError(f'phrase "{value}": "*" is only allowed at the end (a prefix)')
    if not fold(body).strip():
        raise ValueError(f'phrase "{value}" has no letters or digits to match')
    return value


class RuleFile:
    """One parsed rule file, before its rules are compiled (lists from every file come first)."""

    def __init__(self, path: Path, shown: str):
        self.path = path
        self.shown = shown
        try:
            self.data, self.lines = load_toml(path, display=shown)
        except ConfigError as exc:  # from the TOML reader: same text, as a rule-file error
            raise RuleError(exc.message, shown, exc.line) from None
        unknown = sorted(set(self.data) - {"rule", "lists", "stages"})
        if unknown:
            raise RuleError(
                f'unknown top-level key "{unknown[0]}" (a rule file holds [lists], [stages] and [[rule]] tables)',
                shown,
                self.lines.line_of((unknown[0],)),
            )
        self.lists: dict[str, list[str]] = {}
        raw_lists = self.data.get("lists", {})
        if not isinstance(raw_lists, dict):
            raise RuleError('"lists" must be a table: write [lists]', shown, self.lines.line_of(("lists",)))
        for name, values in raw_lists.items():
            line = self.lines.line_of(("lists", name))
            if not _LIST_NAME.match(name):
                raise RuleError(f'list "{name}": names are lower-case letters, digits, "_" and "-"', shown, line)
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values) or not values:
                raise RuleError(f'list "{name}": expected a non-empty list of phrases', shown, line)
            for v in values:
                try:
                    check_phrase(v)
                except ValueError as exc:
                    raise RuleError(f'list "{name}": {exc}', shown, line) from None
            self.lists[name] = values
        self.stages = _stage_tables(self.data.get("stages", {}), shown, self.lines)
        self.tables = self.data.get("rule", [])
        if not isinstance(self.tables, list):
            raise RuleError('"rule" must be an array of tables: write [[rule]]', shown, self.lines.line_of(("rule",)))


def _stage_tables(raw: Any, shown: str, lines: KeyLines) -> dict[str, dict[str, list[str]]]:
    """``[stages.AUTHORITY]`` tables: stage name -> phrases, in procedural order."""
    if not isinstance(raw, dict):
        raise RuleError('"stages" must be a table: write [stages.AUTHORITY]', shown, lines.line_of(("stages",)))
    for authority, table in raw.items():
        if not isinstance(table, dict) or not table:
            problem = f'stages "{authority}": expected [stages.{authority}] with name = [phrases]'
            raise RuleError(problem, shown, lines.line_of(("stages", authority)))
        for name, values in table.items():
            line = lines.line_of(("stages", authority, name))
            if not _LIST_NAME.match(name):
                problem = f'stage "{authority}.{name}": names are lower-case letters, digits, "_" and "-"'
                raise RuleError(problem, shown, line)
            if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                raise RuleError(f'stage "{authority}.{name}": expected a non-empty list of phrases', shown, line)
    return raw


class Lists:
    """Named phrase lists from every rule file, with ``@other`` references expanded."""

    def __init__(self) -> None:
        self.raw: dict[str, list[str]] = {}
        self.where: dict[str, str] = {}

    def add(self, file: RuleFile) -> None:
        for name, values in file.lists.items():
            if name in self.raw:
                raise RuleError(
                    f'list "{name}": defined twice (first at {self.where[name]})',
                    file.shown,
                    file.lines.line_of(("lists", name)),
                )
            self.raw[name] = values
            self.where[name] = f"{file.shown}:{file.lines.line_of(('lists', name))}"

    def expand(self, name: str, seen: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Raise KeyError for an unknown name, ValueError for a cycle."""
        if name in seen:
            raise ValueError(f"list @{name} includes itself ({' -> '.join('@' + s for s in (*seen, name))})")
        out: list[str] = []
        for value in self.raw[name]:
            if value.startswith("@"):
                if value[1:] not in self.raw:
                    where = self.where.get(name, "")
                    raise ValueError(
                        f'list "@{name}" ({where}) includes unknown list "{value}"{self.suggest(value[1:])}'
                    )
                out.extend(self.expand(value[1:], (*seen, name)))
            else:
                out.append(value)
        return tuple(dict.fromkeys(out))

    def suggest(self, name: str) -> str:
        import difflib

        close = difflib.get_close_matches(name, list(self.raw), n=1)
        return f' (did you mean "@{close[0]}"?)' if close else ""


def term_of(values: Sequence[str], lists: Lists) -> Term:
    """A phrase list from any/all/none; ``@name`` entries expand to their list."""
    phrases: list[str] = []
    labels: list[str] = []
    for value in values:
        if value.startswith("@"):
            name = value[1:]
            if name not in lists.raw:
                raise ValueError(f'unknown list "@{name}"{lists.suggest(name)}')
            phrases.extend(lists.expand(name))
            labels.append(value)
        else:
            phrases.append(value)
            labels.append(value)
    return Term(tuple(dict.fromkeys(phrases)), label=labels[0] if len(labels) == 1 else "")


def load_stages(files: Sequence[RuleFile], lists: Lists) -> dict[str, tuple[Stage, ...]]:
    """Every authority's stages, in declaration order, with ``@list`` entries expanded."""
    out: dict[str, tuple[Stage, ...]] = {}
    for file in files:
        for authority, table in file.stages.items():
            if authority in out:
                raise RuleError(
                    f'stages "{authority}": defined twice', file.shown, file.lines.line_of(("stages", authority))
                )
            stages = []
            for name, values in table.items():
                try:
                    stages.append(Stage(name, term_of(values, lists).phrases))
                except ValueError as exc:
                    raise RuleError(
                        f'stage "{authority}.{name}": {exc}',
                        file.shown,
                        file.lines.line_of(("stages", authority, name)),
                    ) from None
            out[authority] = tuple(stages)
    return out
