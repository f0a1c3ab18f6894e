"""Rule files: exact error text for each bad file, and the shape of loaded rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.errors import RuleError
from watcher.model import Severity
from watcher.rules import load_rule_file, load_rules

GOOD = """\
# CMA rules
[[rule]]
id = "cma-itc"
title = "CMA invitation to comment"
severity = "high"
any = ["invitation to comment"]
all = [["CMA", "Competition and Markets Authority"], "AI"]
none = ["Country Music Association"]
"""


def write(tmp_path: Path, text: str, name: str = "cma.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(RuleError) as info:
        load_rule_file(path, display=f"rules/{path.name}")
    return str(info.value)


def test_good_rule(tmp_path: Path) -> None:
    [rule] = load_rule_file(write(tmp_path, GOOD), display="rules/cma.toml")
    assert rule.id == "cma-itc" and rule.severity is Severity.HIGH
    assert rule.all_of == (("CMA", "Competition and Markets Authority"), ("AI",))
    assert rule.source == "rules/cma.toml:2"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('title = "CMA', 'titel = "CMA'),
            'rules/cma.toml:4: rule "cma-itc": unknown field "titel" (did you mean "title"?)',
        ),
        (
            ('severity = "high"', 'severity = "urgent"'),
            "rules/cma.toml:5: rule \"cma-itc\": \"severity\": Input should be 'info', 'low', 'medium', 'high' "
            "or 'critical' (got 'urgent')",
        ),
        (
            ('any = ["invitation to comment"]', 'any = ["--"]'),
            'rules/cma.toml:6: rule "cma-itc": "any": phrase "--" has no letters or digits to match',
        ),
        (
            ('id = "cma-itc"', 'id = "CMA ITC"'),
            "rules/cma.toml:3: rule \"CMA ITC\": \"id\": String should match pattern '^[a-z0-9][a-z0-9._-]*$' (got 'CMA ITC')",
        ),
        (
            ('title = "CMA invitation to comment"\n', ""),
            'rules/cma.toml:2: rule "cma-itc": missing required field "title"',
        ),
    ],
)
def test_bad_rule_messages(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert error_of(write(tmp_path, GOOD.replace(*change))) == expected


def test_rule_without_phrases(tmp_path: Path) -> None:
    text = '[[rule]]\nid = "empty"\ntitle = "Nothing"\n'
    assert (
        error_of(write(tmp_path, text)) == 'rules/cma.toml:1: rule "empty": give at least one phrase in "any" or "all"'
    )


def test_toml_syntax_error(tmp_path: Path) -> None:
    assert error_of(write(tmp_path, GOOD + "[[rule]\n")).startswith("rules/cma.toml:9: invalid TOML: ")


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path], display_base=tmp_path)
    assert str(info.value) == 'b.toml:2: rule "cma-itc": duplicate rule id (first defined at a.toml:2)'


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no rule files"):
        load_rules([tmp_path])
