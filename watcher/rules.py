"""Rule files -> validated ``Rule`` values. Every problem names the file, line, rule and field.

Owns: the ``[[rule]]`` format (``rulefile`` reads the files, their lists and stages), compiling
``any``/``all``/``none`` and ``query`` into one condition tree, and rule examples. Must not:
match anything (that is ``match``) or know the config (the caller checks rule channels and feeds
against it, since rule files are shared between deployments).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from watcher.duration import Duration
from watcher.errors import RuleError
from watcher.model import And, Condition, Example, Not, Or, Rule, Severity, Stage
from watcher.query import QueryError, caret, parse_query
from watcher.rulefile import Lists, RuleFile, check_phrase, load_stages, term_of
from watcher.tomlmap import KeyLines, first_error

_SLUG = r"^[a-z0-9][a-z0-9._-]*$"
Phrase = Annotated[str, Field(min_length=1)]
Slug = Annotated[str, Field(pattern=_SLUG, max_length=80)]


class ExampleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = ""
    summary: str = ""
    text: str = ""  # alias of summary, for pasted articles
    content: str = ""
    link: str | None = None
    feed: str = ""
    feed_tags: list[str] = Field(default_factory=list)


class ExamplesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: list[str | ExampleSpec] = Field(default_factory=list)
    no_match: list[str | ExampleSpec] = Field(default_factory=list)


class ThrottleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(ge=1)
    per: Duration
    key: Literal["rule", "feed"] = "rule"
    surplus: Literal["drop", "digest"] = "drop"


class RuleSpec(BaseModel):
    """The shape of one ``[[rule]]`` table. docs/rules.md documents every field."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Slug
    title: Annotated[str, Field(min_length=1)]
    description: str = ""
    severity: Severity = Severity.MEDIUM
    status: Literal["experimental", "stable"] = "stable"
    tags: list[str] = Field(default_factory=list)
    authority: Annotated[str, Field(pattern=_SLUG)] | None = None
    owner: str = ""
    references: list[str] = Field(default_factory=list)
    false_positives: str = ""
    channels: list[Annotated[str, Field(pattern=_SLUG)]] = Field(default_factory=list)
    enabled: bool = True
    any_of: list[Phrase] = Field(default_factory=list, alias="any")
    all_of: list[Phrase | list[Phrase]] = Field(default_factory=list, alias="all")
    none_of: list[Phrase] = Field(default_factory=list, alias="none")
    query: str | None = None
    feeds: list[Annotated[str, Field(pattern=_SLUG)]] = Field(default_factory=list)
    feed_tags: list[str] = Field(default_factory=list)
    max_age: Duration | None = None
    on_update: Literal["notify", "ignore"] = "ignore"
    follow_up: Literal["notify", "digest", "ignore"] = "ignore"
    on_official: Literal["notify", "ignore"] = "notify"
    throttle: ThrottleSpec | None = None
    examples: ExamplesSpec = ExamplesSpec()

    @field_validator("any_of", "none_of")
    @classmethod
    def _phrases(cls, values: list[str]) -> list[str]:
        return [check_phrase(v) for v in values]

    @field_validator("all_of")
    @classmethod
    def _groups(cls, values: list[str | list[str]]) -> list[str | list[str]]:
        for v in values:
            if isinstance(v, list):
                if not v:
                    raise ValueError("an empty group can never match")
                for p in v:
                    check_phrase(p)
            else:
                check_phrase(v)
        return values

    @model_validator(mode="after")
    def _something_to_match(self) -> RuleSpec:
        if not self.any_of and not self.all_of and not (self.query or "").strip():
            raise ValueError('give a "query", or at least one phrase in "any" or "all"')
        return self


KNOWN_FIELDS = [f.alias or n for n, f in RuleSpec.model_fields.items()]
Loc = tuple[str | int, ...]


class _LocatedErrors:
    """A ValidationError view whose locations start at the rule's place in the file."""

    def __init__(self, exc: ValidationError, prefix: Loc):
        self._exc = exc
        self._prefix = prefix

    def errors(self, include_url: bool = False) -> list[dict[str, Any]]:
        return [{**e, "loc": (*self._prefix, *e["loc"])} for e in self._exc.errors(include_url=include_url)]


def _validation_error(path: str, lines: KeyLines, index: int, raw: Any, exc: ValidationError) -> RuleError:
    rule_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
    where = f'rule "{rule_id}"' if rule_id else f"rule #{index + 1}"

    def describe(loc: Loc) -> tuple[str, Loc]:
        return where, loc[2:]

    known = {
        ("rule", index): KNOWN_FIELDS,
        ("rule", index, "examples"): ["match", "no_match"],
        ("rule", index, "throttle"): ["max", "per", "key", "surplus"],
    }
    message, line = first_error(
        _LocatedErrors(exc, ("rule", index)), lines, path, known_fields=known, describe=describe
    )
    return RuleError(message, path, line or lines.line_of(("rule", index)), rule_id)


def _phrase_terms(values: Sequence[str], lists: Lists) -> Condition:
    """Each entry its own term, so reasons name the phrase or list that hit."""
    terms = tuple(term_of([v], lists) for v in values)
    return terms[0] if len(terms) == 1 else Or(terms)


def _query_position(file: RuleFile, index: int, query: str, column: int) -> tuple[int | None, int, str]:
    """Map a column of the query string to the file's line and column, and the caret display.

    Handles one-line strings and TOML multi-line strings (whose first newline is dropped).
    """
    offset = column - 1
    line_start = query.rfind("\n", 0, offset) + 1
    line_end = query.find("\n", offset)
    shown = query[line_start : line_end if line_end >= 0 else len(query)]
    context = caret(shown, offset - line_start + 1)
    line = file.lines.line_of(("rule", index, "query"))
    if line is None:
        return None, column, context
    text = file.path.read_text(encoding="utf-8").splitlines()[line - 1]
    eq = text.find("=")
    quote = min((i for i in (text.find('"', eq), text.find("'", eq)) if i >= 0), default=-1)
    if quote < 0:
        return line, column, context
    newlines = query.count("\n", 0, offset)
    if text[quote : quote + 3] in ('"""', "'''"):
        opens_line = not text[quote + 3 :].strip()  # the string starts on the next line
        if opens_line:
            return line + 1 + newlines, offset - line_start + 1, context
        if newlines:
            return line + newlines, offset - line_start + 1, context
        return line, quote + 3 + column, context
    return line, quote + 1 + column, context


def _compile(spec: RuleSpec, file: RuleFile, index: int, lists: Lists) -> Condition:
    parts: list[Condition] = []
    try:
        if spec.any_of:
            parts.append(_phrase_terms(spec.any_of, lists))
        for group in spec.all_of:
            parts.append(_phrase_terms([group] if isinstance(group, str) else group, lists))
        if spec.none_of:
            parts.append(Not(_phrase_terms(spec.none_of, lists)))
    except ValueError as exc:
        field = next(
            (f for f, vals in (("any", spec.any_of), ("all", spec.all_of), ("none", spec.none_of)) if vals), "any"
        )
        raise RuleError(
            f'rule "{spec.id}": "{field}": {exc}', file.shown, file.lines.line_of(("rule", index, field)), spec.id
        ) from None
    if spec.query and spec.query.strip():

        def resolve(name: str, column: int) -> Sequence[str]:
            if name not in lists.raw:
                raise QueryError(f'unknown list "@{name}"{lists.suggest(name)}', column)
            try:
                return lists.expand(name)
            except ValueError as exc:
                raise QueryError(str(exc), column) from None

        try:
            parts.append(parse_query(spec.query, resolve))
        except QueryError as exc:
            line, column, context = _query_position(file, index, spec.query, exc.column)
            raise RuleError(
                f'rule "{spec.id}": "query": {exc.message}',
                file.shown,
                line,
                spec.id,
                column=column,
                context=context,
            ) from None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _examples(spec: RuleSpec, file: RuleFile, index: int) -> tuple[Example, ...]:
    line = file.lines.line_of(("rule", index, "examples"))
    out = []
    for expect, values in ((True, spec.examples.match), (False, spec.examples.no_match)):
        for value in values:
            default_feed = spec.feeds[0] if spec.feeds else "example"
            if isinstance(value, str):
                out.append(Example(expect, value, feed=default_feed, feed_tags=tuple(spec.feed_tags), line=line))
            else:
                out.append(
                    Example(
                        expect,
                        value.title,
                        summary=value.summary or value.text,
                        content=value.content,
                        link=value.link,
                        feed=value.feed or default_feed,
                        feed_tags=tuple(value.feed_tags or spec.feed_tags),
                        line=line,
                    )
                )
    return tuple(out)


def _to_rule(spec: RuleSpec, file: RuleFile, index: int, lists: Lists, stages: tuple[Stage, ...] = ()) -> Rule:
    header = file.lines.line_of(("rule", index))
    max_age: timedelta | None = spec.max_age
    return Rule(
        id=spec.id,
        title=spec.title,
        severity=spec.severity,
        condition=_compile(spec, file, index, lists),
        channels=tuple(spec.channels),
        feeds=tuple(spec.feeds),
        feed_tags=tuple(spec.feed_tags),
        max_age_seconds=max_age.total_seconds() if max_age is not None else None,
        description=spec.description,
        tags=tuple(spec.tags),
        authority=spec.authority or "",
        status=spec.status,
        owner=spec.owner,
        references=tuple(spec.references),
        false_positives=spec.false_positives,
        enabled=spec.enabled,
        examples=_examples(spec, file, index),
        on_update=spec.on_update,
        follow_up=spec.follow_up,
        on_official=spec.on_official,
        throttle_max=spec.throttle.max if spec.throttle else None,
        throttle_seconds=spec.throttle.per.total_seconds() if spec.throttle else None,
        throttle_key=spec.throttle.key if spec.throttle else "rule",
        throttle_surplus=spec.throttle.surplus if spec.throttle else "drop",
        source=f"{file.shown}:{header}" if header else file.shown,
        stages=stages,
    )


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders to their ``*.toml`` files, sorted, so load order never depends on the filesystem."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            # Hidden folders are skipped: a Kubernetes ConfigMap volume holds each file twice (the
            # visible name links into a hidden ..<timestamp>/ folder), and a git checkout has .git/.
            found = (p for p in path.rglob("*.toml") if not any(s.startswith(".") for s in p.relative_to(path).parts))
            out.extend(sorted(p for p in found if p.is_file()))
        elif path.exists():
            out.append(path)
        else:
            raise RuleError("no such file or folder", str(path))
    return out


def load_rules(paths: Sequence[Path], *, display_base: Path | None = None) -> list[Rule]:
    """Load every rule file under ``paths``: lists first, then rules. Rule ids are unique across files."""
    files = [RuleFile(p, display_path(p, display_base)) for p in rule_files(paths)]
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise RuleError(f"no rule files (*.toml) found in {where}")
    lists = Lists()
    for file in files:
        lists.add(file)
    stages = load_stages(files, lists)
    seen: dict[str, Rule] = {}
    out: list[Rule] = []
    for file in files:
        for index, raw in enumerate(file.tables):
            try:
                spec = RuleSpec.model_validate(raw)
            except ValidationError as exc:
                raise _validation_error(file.shown, file.lines, index, raw, exc) from None
            rule = _to_rule(spec, file, index, lists, stages.get(spec.authority or "", ()))
            if rule.id in seen:
                raise RuleError(
                    f'rule "{rule.id}": duplicate rule id (first defined at {seen[rule.id].source})',
                    file.shown,
                    file.lines.line_of(("rule", index)),
                    rule.id,
                )
            seen[rule.id] = rule
            out.append(rule)
    return out


def load_rule_file(path: Path, *, display: str | None = None) -> list[Rule]:
    """Load one rule file on its own (the lists it uses must be defined in it)."""
    file = RuleFile(path, display or display_path(path))
    lists = Lists()
    lists.add(file)
    stages = load_stages([file], lists)
    out = []
    for index, raw in enumerate(file.tables):
        try:
            spec = RuleSpec.model_validate(raw)
        except ValidationError as exc:
            raise _validation_error(file.shown, file.lines, index, raw, exc) from None
        out.append(_to_rule(spec, file, index, lists, stages.get(spec.authority or "", ())))
    return out


def display_path(path: Path, base: Path | None = None) -> str:
    """Show paths relative to where the user is, as compilers do."""
    try:
        return str(path.resolve().relative_to((base or Path.cwd()).resolve()))
    except ValueError:
        return str(path)


def json_schema() -> dict[str, Any]:
    """JSON Schema of a rule file, for editors (published as docs/rules.schema.json)."""
    rule = RuleSpec.model_json_schema(by_alias=True)
    defs = rule.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "watcher rule file",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "lists": {
                "type": "object",
                "description": "Named phrase lists, referenced as @name from any rule file.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
            "rule": {"type": "array", "items": {"$ref": "#/$defs/Rule"}},
        },
        "$defs": {**defs, "Rule": rule},
    }
