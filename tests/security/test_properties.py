"""Property tests for everything that reads text a person wrote: the rule query parser, the rule
file loader and the config loader. Whatever the input, the only exceptions are our own clear
errors (watcher/errors.py), on one line, naming the file, and the rule and field when there is one.

A crash here is a crash in ``watcher check`` or, worse, in a SIGHUP reload of a running daemon.
The example count comes from conftest (``WATCHER_FUZZ_EXAMPLES`` for a fuzzing run).
"""

from __future__ import annotations

import re
import string
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.security.conftest import FUZZ_PROFILE
from watcher.config import load_config
from watcher.errors import ConfigError, RuleError, one_line
from watcher.match import RuleSet, match_items
from watcher.model import Item
from watcher.query import QueryError, caret, parse_query
from watcher.rules import load_rule_file

settings.load_profile(FUZZ_PROFILE)

ITEMS = [
    Item(
        feed_id="news",
        item_key="1",
        title="CMA invitation to comment on Microsoft / Mistral AI",
        link="https://www.gov.uk/cma-cases/microsoft-mistral-ai",
        summary="The Competition and Markets Authority invites comments on the AI partnership.",
        content="",
        published_at=datetime(2026, 11, 28, tzinfo=UTC),
        tags=("regulator",),
    ),
    Item("news", "2", "", None, "", "", None),
    Item("news", "3", "ÉCOLE — ﬁnal ß İstanbul 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202e\x00", "mailto:x", "a" * 50, "b b b", None),
]

# The query language's own vocabulary, so generated queries reach deep into the parser instead of
# failing at the first character.
_QUERY_PIECES = st.sampled_from(
    [
        "AND", "OR", "NOT", "NEAR/3", "NEAR/0", "NEAR/", "(", ")", '"', '"invitation to comment"',
        "title:", "text:", "link:", "feed:", "tag:", "domain:", "source:", "nope:", "@cma", "@nolist",
        "@", "/mistral\\s+ai/i", "/(/", "/a/x", "/", "*", "comm*", "CMA", "ai", "-", "\\", "'", "\t",
        "\n", "\u202e", "\x00", "é", "ﬁ", "İ", "0", "NEAR/99999999999999999999",
    ]
)  # fmt: skip
QUERIES = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(_QUERY_PIECES, st.text(string.ascii_letters, min_size=1, max_size=6)), max_size=14).map(
        " ".join
    ),
    st.lists(_QUERY_PIECES, max_size=10).map("".join),
)


def _resolve(name: str, column: int) -> tuple[str, ...]:
    if name == "cma":
        return ("CMA", "Competition and Markets Authority")
    raise QueryError(f'unknown list "@{name}"', column)  # as the rule loader's resolver does


@given(QUERIES)
@example("NEAR/99999999999999999999")
@example("a NEAR/99999999999999999999 b")
@example('title:(a OR "b c") NEAR/2 d')
def test_the_query_parser_raises_only_query_errors_with_a_column(query: str) -> None:
    try:
        parse_query(query, _resolve)
    except QueryError as exc:
        assert 1 <= exc.column <= len(query) + 1, (query, exc.column)
        assert exc.message and "\n" not in exc.message
        assert caret(query, exc.column).splitlines()[-1].endswith("^")


_ROOT = tempfile.TemporaryDirectory(prefix="watcher-fuzz-")  # removed at exit


def _write(text: str, name: str) -> Path:
    # One folder per file name, rewritten by each example: a folder per example would pass
    # ext4's 65,000 subfolders in a fuzzing run.
    folder = Path(_ROOT.name) / name.replace(".", "-")
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _assert_one_clear_line(exc: ConfigError, shown: str) -> str:
    message = str(exc)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{shown}:"), message
    assert "Traceback" not in message and "pydantic" not in message.lower(), message
    return message


def _rule_file_rules(text: str) -> None:
    """Load a rule file and run its rules, the way ``watcher check`` and the daemon do."""
    path = _write(text, "fuzz.toml")
    try:
        rules = load_rule_file(path, display="rules/fuzz.toml")
    except RuleError as exc:
        message = _assert_one_clear_line(exc, "rules/fuzz.toml")
        if exc.rule_id:  # a rule without a usable id is named by its position, "rule #2"
            assert f'rule "{one_line(exc.rule_id)}"' in message, message
        return
    match_items(ITEMS, RuleSet(rules))


@given(QUERIES)
@example("NEAR/99999999999999999999")
@example("a NEAR/99999999999999999999 b")
def test_any_query_in_a_rule_file_loads_as_a_rule_or_a_rule_error(query: str) -> None:
    rules = {"lists": {"cma": ["CMA", "Competition and Markets Authority"]}}
    doc = tomli_w.dumps(rules | {"rule": [{"id": "q", "title": "Q", "query": query}]})
    path = _write(doc, "q.toml")
    try:
        loaded = load_rule_file(path, display="rules/q.toml")
    except RuleError as exc:
        message = _assert_one_clear_line(exc, "rules/q.toml")
        assert 'rule "q"' in message, message
        assert exc.line is not None, message
        return
    match_items(ITEMS, RuleSet(loaded))


# -- rule files -----------------------------------------------------------------------------------
_RULE_KEYS = [
    "id", "title", "description", "severity", "status", "tags", "authority", "owner", "references",
    "false_positives", "channels", "enabled", "any", "all", "none", "query", "feeds", "feed_tags",
    "max_age", "on_update", "follow_up", "on_official", "throttle", "examples", "titel", "regex",
]  # fmt: skip
_SCALARS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["high", "low", "critical", "x", "1h", "30d", "-1d", "notify", "ignore", "digest", "@cma", "a*"]),
    # Bounded below timedelta's limit (999,999,999 days): that overflow is pinned by its own test
    # at the end, so the search spends its examples elsewhere.
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["title", "text", "must_match", "must_not_match", "every", "x"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
_RULE_TABLES = st.dictionaries(st.sampled_from(_RULE_KEYS), _VALUES, max_size=8)
_SLUGS = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)


@st.composite
def rule_documents(draw: st.DrawFn) -> dict[str, Any]:
    rules = []
    for table in draw(st.lists(_RULE_TABLES, max_size=3)):
        if draw(st.booleans()):  # most rules have a sane id and title, so errors reach deeper fields
            table = {"id": draw(_SLUGS), "title": "T", **table}
        rules.append(table)
    doc: dict[str, Any] = {"rule": rules}
    if draw(st.booleans()):
        doc["lists"] = draw(st.dictionaries(st.one_of(_SLUGS, st.text(max_size=5)), _VALUES, max_size=2))
    if draw(st.integers(0, 5)) == 0:
        doc["stages"] = draw(st.dictionaries(_SLUGS, _VALUES, max_size=2))
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(min_size=1, max_size=5))] = draw(_VALUES)
    return doc


def _toml(doc: dict[str, Any]) -> str | None:
    try:
        return tomli_w.dumps(doc)
    except (TypeError, ValueError):  # a shape TOML cannot hold (e.g. mixed arrays in old tomli_w)
        return None


@given(rule_documents())
def test_any_rule_document_loads_or_fails_with_path_line_and_rule(doc: dict[str, Any]) -> None:
    text = _toml(doc)
    if text is not None:
        _rule_file_rules(text)


@given(st.text(max_size=300))
@example('[[rule]]\nid = "a"\ntitle = "A"\nany = ["x"]\n[[rule]]\nid = "a"\ntitle = "B"\nany = ["y"]\n')
@example('[lists]\na = ["@a"]\n[[rule]]\nid = "r"\ntitle = "R"\nany = ["@a"]\n')
@example('[[rule]]\nid = "r"\ntitle = "R"\nquery = """\n(\n"""\n')
def test_any_text_as_a_rule_file_loads_or_fails_clearly(text: str) -> None:
    _rule_file_rules(text)


_BAD_FIELD_VALUES: dict[str, Any] = {
    "severity": "urgent",
    "status": "beta",
    "enabled": "maybe",
    "any": "not a list",
    "none": [1],
    "max_age": "soon",
    "on_update": "always",
    "channels": ["Not A Slug"],
    "feeds": [""],
    "query": "(",
    "throttle": "hourly",
    "titel": "typo",
}


@given(st.sampled_from(sorted(_BAD_FIELD_VALUES)), _SLUGS)
def test_a_bad_field_names_the_file_the_rule_and_the_field(field: str, rule_id: str) -> None:
    rule = {"id": rule_id, "title": "T", "any": ["x"], field: _BAD_FIELD_VALUES[field]}
    path = _write(tomli_w.dumps({"rule": [{"id": "fine", "title": "F", "any": ["y"]}, rule]}), "bad.toml")
    try:
        load_rule_file(path, display="rules/bad.toml")
    except RuleError as exc:
        message = _assert_one_clear_line(exc, "rules/bad.toml")
        assert f'rule "{rule_id}"' in message, message
        assert f'"{field}"' in message or field in message, message
        # The line is the field's own line, below the second [[rule]] header.
        text = path.read_text()
        assert exc.line is not None and exc.line > text.splitlines().index("[[rule]]", 1), message
    else:
        raise AssertionError(f"{field}={_BAD_FIELD_VALUES[field]!r} was accepted")


# -- config files ---------------------------------------------------------------------------------
_SECTIONS: dict[str, list[str]] = {
    "database": ["url", "password", "password_file", "pool_size", "x"],
    "http": ["connect_timeout", "read_timeout", "deadline", "max_body_bytes", "user_agent", "block_private_addresses"],
    "poll": ["check_every", "default_interval", "parse_workers", "jitter"],
    "delivery": ["default_channels", "check_every", "backoff_initial", "max_attempts", "backoff_max"],
    "log": ["level", "format"],
    "server": ["listen", "port", "enabled"],
    "health": ["stale_after"],
    "stories": ["enabled", "window"],
}
_CHANNEL_KEYS = ["urls", "urls_file", "url", "format", "mode", "timezone", "min_severity", "digest", "template_dir", "quiet_hours", "rate_limit", "x"]  # fmt: skip
_FEED_KEYS = ["id", "url", "title", "interval", "tags", "enabled", "full_text", "channels", "x"]
_CONFIG_SCALARS = st.one_of(
    _SCALARS,
    st.sampled_from(
        [
            "sqlite:///w.db", "postgresql://u:${PW}@127.0.0.1/x", "${UNSET_VAR}", "${PW}", "${PW:-d}", "${",
            "json://127.0.0.1:1/x", "mailto://u:p@127.0.0.1", "not a url", "15m", "0s", "-5m", "08:00-07:00",
            "10/h", "Europe/London", "Mars/Base", "markdown", "digest",
        ]
    ),
)  # fmt: skip
_CONFIG_VALUES = st.recursive(_CONFIG_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(_SECTIONS)), max_size=4, unique=True)):
        doc[section] = draw(st.dictionaries(st.sampled_from(_SECTIONS[section]), _CONFIG_VALUES, max_size=3))
    if draw(st.booleans()):
        doc["channels"] = draw(
            st.dictionaries(
                _SLUGS, st.dictionaries(st.sampled_from(_CHANNEL_KEYS), _CONFIG_VALUES, max_size=4), max_size=2
            )
        )
    if draw(st.booleans()):
        feeds = draw(st.lists(st.dictionaries(st.sampled_from(_FEED_KEYS), _CONFIG_VALUES, max_size=5), max_size=3))
        doc["feed"] = [
            ({"id": draw(_SLUGS), "url": "https://e.example/f"} | f) if draw(st.booleans()) else f for f in feeds
        ]
    if draw(st.integers(0, 4)) == 0:
        doc[draw(st.sampled_from(["rules_dir", "rules", "route", "extra", "template_dir"]))] = draw(_CONFIG_VALUES)
    return doc


def _load_config(text: str) -> None:
    path = _write(text, "config.toml")
    (path.parent / "rules").mkdir(exist_ok=True)
    try:
        load_config(path, env={"PW": "s3cr3t-pw"}, display="config.toml")
    except ConfigError as exc:
        message = _assert_one_clear_line(exc, "config.toml")
        assert "s3cr3t-pw" not in message, message


@given(config_documents())
@example({"route": 1})
@example({"feed": 1, "channels": 2})
def test_any_config_document_loads_or_fails_with_path_and_line(doc: dict[str, Any]) -> None:
    text = _toml(doc)
    if text is not None:
        _load_config(text)


@given(st.text(max_size=300))
@example('[database]\nurl = "postgresql://u:${PW}@[::1/x"\n')
@example('[channels.a]\nurls = ["${PW}"]\n')
@example("[[feed]]\nid = 1\n")
def test_any_text_as_a_config_file_loads_or_fails_clearly(text: str) -> None:
    _load_config(text)


def _mutations(seed: str) -> Callable[[st.DrawFn], str]:
    def mutate(draw: st.DrawFn) -> str:
        text = seed
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(text)))
            cut = draw(st.integers(0, 8))
            text = text[:at] + draw(st.text(max_size=6)) + text[at + cut :]
        return text

    return mutate


_GOOD_CONFIG = Path(__file__).resolve().parents[2] / "config.example.toml"


@given(st.composite(_mutations(_GOOD_CONFIG.read_text(encoding="utf-8")))())
def test_a_mangled_example_config_loads_or_fails_clearly(text: str) -> None:
    _load_config(text)


_GOOD_RULES = Path(__file__).resolve().parents[2] / "rules"
_SEED_RULE_FILE = next(iter(sorted(_GOOD_RULES.glob("*.toml")))).read_text(encoding="utf-8")


@given(st.composite(_mutations(_SEED_RULE_FILE))())
def test_a_mangled_shipped_rule_file_loads_or_fails_clearly(text: str) -> None:
    _rule_file_rules(text)


def test_the_fuzz_profile_is_the_one_in_use() -> None:
    # A guard against a typo in the environment variable silently fuzzing nothing.
    expected = int(__import__("os").environ.get("WATCHER_FUZZ_EXAMPLES") or 100)
    assert settings().max_examples == expected
    assert re.fullmatch(r"security(-fuzz)?", FUZZ_PROFILE)


def test_an_enormous_duration_is_a_clear_error() -> None:
    # Found by the properties above: timedelta overflows past 999,999,999 days, and the
    # OverflowError escaped pydantic (which converts only ValueError and AssertionError).
    _load_config("[http]\nconnect_timeout = 86400000000000.0\n")
    _load_config('[poll]\ndefault_interval = "99999999999999w"\n')
    _rule_file_rules('[[rule]]\nid = "r"\ntitle = "R"\nany = ["x"]\nmax_age = -86399999913601\n')
