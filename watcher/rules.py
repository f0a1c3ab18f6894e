"""Rule files -> validated ``Rule`` values. Every problem names the file, line, rule and field.

Owns: the rule file format (``[[rule]]`` tables in ``rules/*.toml``) and its validation.
Must not: match anything (that is ``match``) or know about channels in the config (the caller
checks rule channels against the config, since rule files are shared between deployments).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from watcher.errors import ConfigError, RuleError
from watcher.fold import fold
from watcher.model import Rule, Severity
from watcher.tomlmap import KeyLines, first_error, load_toml

_SLUG = r"^[a-z0-9][a-z0-9._-]*$"
Phrase = Annotated[str, Field(min_length=1)]


def _check_phrase(value: str) -> str:
    if not fold(value).strip():
        raise ValueError(f'phrase "{value}" has no letters or digits to match')
    return value


class RuleSpec(BaseModel):
    """The shape of one ``[[rule]]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Annotated[str, Field(pattern=_SLUG, max_length=80)]
    title: Annotated[str, Field(min_length=1)]
    description: str = ""
    severity: Severity = Severity.MEDIUM
    any_of: list[Phrase] = Field(default_factory=list, alias="any")
    all_of: list[Phrase | list[Phrase]] = Field(default_factory=list, alias="all")
    none_of: list[Phrase] = Field(default_factory=list, alias="none")
    channels: list[Annotated[str, Field(pattern=_SLUG)]] = Field(default_factory=list)
    feeds: list[Annotated[str, Field(pattern=_SLUG)]] = Field(default_factory=list)
    enabled: bool = True

    @field_validator("any_of", "none_of")
    @classmethod
    def _phrases(cls, values: list[str]) -> list[str]:
        return [_check_phrase(v) for v in values]

    @field_validator("all_of")
    @classmethod
    def _groups(cls, values: list[str | list[str]]) -> list[str | list[str]]:
        for v in values:
            if isinstance(v, list):
                if not v:
                    raise ValueError("an empty group can never match")
                for p in v:
                    _check_phrase(p)
            else:
                _check_phrase(v)
        return values

    @model_validator(mode="after")
    def _something_to_match(self) -> RuleSpec:
        if not self.any_of and not self.all_of:
            raise ValueError('give at least one phrase in "any" or "all"')
        return self


_KNOWN = [f.alias or n for n, f in RuleSpec.model_fields.items()]


def _rule_error(path: str, lines: KeyLines, index: int, raw: dict[str, Any], exc: ValidationError) -> RuleError:
    rule_id = raw.get("id") if isinstance(raw.get("id"), str) else None

    def describe(loc: tuple[str | int, ...]) -> tuple[str, tuple[str | int, ...]]:
        where = f'rule "{rule_id}"' if rule_id else f"rule #{index + 1}"
        return where, loc

    prefixed = _Prefixed(exc, ("rule", index))
    message, line = first_error(
        prefixed, lines, path, known_fields={("rule", index): _KNOWN}, describe=_strip(describe)
    )
    return RuleError(message, path, line or lines.line_of(("rule", index)), rule_id)


class _Prefixed:
    """A ValidationError view whose locations start at the rule's place in the file."""

    def __init__(self, exc: ValidationError, prefix: tuple[str | int, ...]):
        self._exc = exc
        self._prefix = prefix

    def errors(self, include_url: bool = False) -> list[dict[str, Any]]:
        out = []
        for e in self._exc.errors(include_url=include_url):
            loc = e["loc"]
            # A model-level validator reports an empty loc: point it at the rule header.
            out.append({**e, "loc": (*self._prefix, *loc)})
        return out


Describe = Callable[[tuple[str | int, ...]], tuple[str, tuple[str | int, ...]]]


def _strip(describe: Describe) -> Describe:
    def inner(loc: tuple[str | int, ...]) -> tuple[str, tuple[str | int, ...]]:
        return describe(loc[2:])

    return inner


def _to_rule(spec: RuleSpec, source: str) -> Rule:
    return Rule(
        id=spec.id,
        title=spec.title,
        description=spec.description,
        severity=spec.severity,
        any_of=tuple(spec.any_of),
        all_of=tuple((g,) if isinstance(g, str) else tuple(g) for g in spec.all_of),
        none_of=tuple(spec.none_of),
        channels=tuple(spec.channels),
        feeds=tuple(spec.feeds),
        enabled=spec.enabled,
        source=source,
    )


def load_rule_file(path: Path, *, display: str | None = None) -> list[Rule]:
    """Read one rule file. Raises RuleError (``path:line: rule "id": message``)."""
    shown = display or str(path)
    try:
        data, lines = load_toml(path, display=shown)
    except ConfigError as exc:  # from the TOML reader: same text, as a rule-file error
        raise RuleError(exc.message, shown, exc.line) from None
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise RuleError(
            f'unknown top-level key "{unknown[0]}" (rules are [[rule]] tables)',
            shown,
            lines.line_of((unknown[0],)),
        )
    tables = data.get("rule", [])
    if not isinstance(tables, list):
        raise RuleError('"rule" must be an array of tables: write [[rule]]', shown, lines.line_of(("rule",)))
    rules = []
    for index, raw in enumerate(tables):
        try:
            spec = RuleSpec.model_validate(raw)
        except ValidationError as exc:
            raise _rule_error(shown, lines, index, raw, exc) from None
        header = lines.line_of(("rule", index))
        rules.append(_to_rule(spec, f"{shown}:{header}" if header else shown))
    return rules


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders to their ``*.toml`` files, sorted, so load order never depends on the filesystem."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*.toml") if p.is_file()))
        else:
            out.append(path)
    return out


def load_rules(paths: Sequence[Path], *, display_base: Path | None = None) -> list[Rule]:
    """Load every rule file under ``paths``. Rule ids must be unique across all files."""
    files = rule_files(paths)
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise RuleError(f"no rule files (*.toml) found in {where}")
    seen: dict[str, Rule] = {}
    out: list[Rule] = []
    for path in files:
        shown = display_path(path, display_base)
        for rule in load_rule_file(path, display=shown):
            if rule.id in seen:
                file, _, line = rule.source.rpartition(":")
                raise RuleError(
                    f'rule "{rule.id}": duplicate rule id (first defined at {seen[rule.id].source})',
                    file,
                    int(line) if line.isdigit() else None,
                    rule.id,
                )
            seen[rule.id] = rule
            out.append(rule)
    return out


def display_path(path: Path, base: Path | None = None) -> str:
    """Show paths relative to where the user is, as compilers do."""
    try:
        return str(path.resolve().relative_to((base or Path.cwd()).resolve()))
    except ValueError:
        return str(path)
