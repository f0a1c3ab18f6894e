"""Read a TOML file and remember the line of every key, so errors can say ``path:line: message``.

tomllib reports line numbers for syntax errors only. Validation errors arrive later as a key path
(``("feed", 2, "url")``), so we scan the raw text once, recording the line of each table header
and of each key under it, and map a path to the deepest recorded prefix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from watcher.errors import ConfigError

Loc = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_KEY_PART = re.compile(r"""[A-Za-z0-9_-]+|"([^"]*)"|'([^']*)'""")


def _split_key(text: str) -> list[str]:
    parts = []
    for m in _KEY_PART.finditer(text):
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(m.group(2))
        else:
            parts.append(m.group(0))
    return parts


class KeyLines:
    """Line numbers of the keys of one TOML document."""

    def __init__(self, text: str):
        self._lines: dict[Loc, int] = {}
        array_counts: dict[tuple[str, ...], int] = {}
        current: Loc = ()
        in_multiline: str | None = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = _HEADER.match(line)
            if header and not line.lstrip().startswith("#"):
                keys = _split_key(header.group(2))
                resolved = (*self._resolve(keys[:-1], array_counts), keys[-1])
                if header.group(1) == "[[":
                    plain = tuple(str(k) for k in resolved)
                    index = array_counts.get(plain, -1) + 1
                    array_counts[plain] = index
                    current = (*resolved, index)
                else:
                    current = resolved
                self._lines.setdefault(current, lineno)
                continue
            key = _KEY.match(line)
            if key:
                self._lines.setdefault((*current, *_split_key(key.group(1))), lineno)
                rest = line[key.end() :]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_multiline = quote

    @staticmethod
    def _resolve(keys: Sequence[str], array_counts: dict[tuple[str, ...], int]) -> Loc:
        """Insert the current index after every prefix that names an array of tables."""
        out: list[str | int] = []
        for key in keys:
            out.append(key)
            plain = tuple(str(k) for k in out if isinstance(k, str))
            if plain in array_counts:
                out.append(array_counts[plain])
        return tuple(out)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Return the line of ``loc``, or of its deepest ancestor that has one."""
        path = tuple(loc)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None


def load_toml(path: Path, *, display: str | None = None) -> tuple[dict[str, Any], KeyLines]:
    """Parse ``path``. Raises ConfigError with the file and line on unreadable or invalid TOML."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", shown) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        # tomllib appends "(at line N, column M)"; lift the line into our path:line prefix.
        m = re.search(r"\(at line (\d+), column (\d+)\)$", message)
        if m:
            base = message[: m.start()].rstrip()
            raise ConfigError(f"invalid TOML: {base} (column {m.group(2)})", shown, int(m.group(1))) from None
        raise ConfigError(f"invalid TOML: {message}", shown) from None
    return data, KeyLines(text)


def first_error(
    exc: Any,
    lines: KeyLines,
    path: str,
    *,
    known_fields: Mapping[Loc, Sequence[str]] | None = None,
    describe: Any = None,
) -> tuple[str, int | None]:
    """Turn the first (topmost) error of a pydantic ValidationError into (message, line).

    ``describe(loc)`` returns a context prefix such as ``feed "cma-cases"`` and the remaining
    field path; ``known_fields`` lists valid names per parent loc for "did you mean" hints.
    """
    import difflib

    errors = exc.errors(include_url=False)
    # An unknown key usually explains a "missing" one next to it (a typo), so it goes first.
    located = [(e["type"] != "extra_forbidden", lines.line_of(e["loc"]) or 0, i, e) for i, e in enumerate(errors)]
    located.sort(key=lambda t: t[:3])
    err = located[0][3]
    loc: Loc = tuple(err["loc"])
    line = lines.line_of(loc)
    prefix, field_loc = describe(loc) if describe else ("", loc)
    field = ".".join(str(p) for p in field_loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        message = f'unknown field "{name}"'
        candidates = (known_fields or {}).get(loc[:-1], ())
        close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
        if close:
            message += f' (did you mean "{close[0]}"?)'
    elif kind == "missing":
        message = f'missing required field "{field}"'
    else:
        msg = str(err["msg"])
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        message = f'"{field}": {msg}' if field else msg
        if kind not in ("value_error", "assertion_error") and "input" in err and _short(err["input"]):
            message += f" (got {_short(err['input'])})"
    if prefix:
        message = f"{prefix}: {message}"
    return message, line


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return ""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
