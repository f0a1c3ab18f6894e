"""Rule files: exact error text for each bad file, lists, and the shape of loaded rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher.errors import RuleError
from watcher.model import And, Not, Or, Severity, Term
from watcher.rules import json_schema, load_rule_file, load_rules

ROOT = Path(__file__).resolve().parents[2]

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


def error_of(path: Path) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_rule_file(path, display=f"rules/{path.name}")
    return info.value


def test_good_rule(tmp_path: Path) -> None:
    [rule] = load_rule_file(write(tmp_path, GOOD), display="rules/cma.toml")
    assert rule.id == "cma-itc" and rule.severity is Severity.HIGH
    assert rule.source == "rules/cma.toml:2"
    assert rule.condition == And(
        (
            Term(("invitation to comment",), label="invitation to comment"),
            Or(
                (
                    Term(("CMA",), label="CMA"),
                    Term(("Competition and Markets Authority",), label="Competition and Markets Authority"),
                )
            ),
            Term(("AI",), label="AI"),
            Not(Term(("Country Music Association",), label="Country Music Association")),
        )
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('title = "CMA', 'titel = "CMA'),
            'rules/cma.toml:4: rule "cma-itc": unknown field "titel" (did you mean "title"?)',
        ),
        (
            ('severity = "high"', 'severity = "urgent"'),
            "rules/cma.toml:5: rule \"cma-itc\": \"severity\": Input should be 'info', 'low', 'medium', 'high' or 'critical' (got 'urgent')",
        ),
        (
            ('any = ["invitation to comment"]', 'any = ["--"]'),
            'rules/cma.toml:6: rule "cma-itc": "any": phrase "--" has no letters or digits to match',
        ),
        (
            ('any = ["invitation to comment"]', 'any = ["in*vitation"]'),
            'rules/cma.toml:6: rule "cma-itc": "any": phrase "in*vitation": "*" is only allowed at the end (a prefix)',
        ),
        (
            ('id = "cma-itc"', 'id = "CMA ITC"'),
            "rules/cma.toml:3: rule \"CMA ITC\": \"id\": String should match pattern '^[a-z0-9][a-z0-9._-]*$' (got 'CMA ITC')",
        ),
        (
            ('title = "CMA invitation to comment"\n', ""),
            'rules/cma.toml:2: rule "cma-itc": missing required field "title"',
        ),
        (
            ('any = ["invitation to comment"]', 'any = ["@nothere"]'),
            'rules/cma.toml:6: rule "cma-itc": "any": unknown list "@nothere"',
        ),
    ],
)
def test_bad_rule_messages(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert str(error_of(write(tmp_path, GOOD.replace(*change)))) == expected


@pytest.mark.parametrize(
    ("query", "expected", "caret_at"),
    [
        ("(@cma AND merger", 'rules/cma.toml:4:10: rule "q": "query": unbalanced parenthesis: "(" is never closed', 1),
        ("merger AND (a OR b))", 'rules/cma.toml:4:29: rule "q": "query": unbalanced parenthesis: ")" without "("', 20),
        (
            r"/phase\s*(2/",
            'rules/cma.toml:4:19: rule "q": "query": bad regular expression: missing ), unterminated subpattern at position 8',
            10,
        ),
        ("@cmaa AND merger", 'rules/cma.toml:4:10: rule "q": "query": unknown list "@cmaa" (did you mean "@cma"?)', 1),
        ("merger AND", 'rules/cma.toml:4:20: rule "q": "query": query ends where a term was expected', 11),
        ("a NEAR b", 'rules/cma.toml:4:12: rule "q": "query": NEAR needs a distance in words, like NEAR/20', 3),
    ],
)
def test_query_errors_point_at_the_column(tmp_path: Path, query: str, expected: str, caret_at: int) -> None:
    text = f'[lists]\ncma = ["CMA"]\n[[rule]]\nquery = \'{query}\'\nid = "q"\ntitle = "Q"\n'
    error = error_of(write(tmp_path, text))
    assert str(error) == expected
    assert error.context == f"    {query}\n    {' ' * (caret_at - 1)}^"


def test_rule_without_conditions(tmp_path: Path) -> None:
    text = '[[rule]]\nid = "empty"\ntitle = "Nothing"\n'
    assert (
        str(error_of(write(tmp_path, text)))
        == 'rules/cma.toml:1: rule "empty": give a "query", or at least one phrase in "any" or "all"'
    )


def test_toml_syntax_error(tmp_path: Path) -> None:
    assert str(error_of(write(tmp_path, GOOD + "[[rule]\n"))).startswith("rules/cma.toml:9: invalid TOML: ")


def test_lists_across_files_and_nesting(tmp_path: Path) -> None:
    write(tmp_path, '[lists]\nbig_tech = ["@microsoft", "Google"]\nmicrosoft = ["Microsoft", "MSFT"]\n', "lists.toml")
    write(tmp_path, '[[rule]]\nid = "r"\ntitle = "R"\nquery = "@big_tech"\n', "r.toml")
    [rule] = load_rules([tmp_path])
    assert rule.condition == Term(("Microsoft", "MSFT", "Google"), label="@big_tech")


def test_list_cycle_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path, '[lists]\na = ["@b"]\nb = ["@a"]\n[[rule]]\nid = "r"\ntitle = "R"\nquery = "@a"\n', "a.toml")
    with pytest.raises(RuleError, match=r"list @a includes itself \(@a -> @b -> @a\)"):
        load_rules([tmp_path])
    write(tmp_path, '[lists]\nb = ["x"]\n', "b.toml")
    with pytest.raises(RuleError, match=r'b.toml:2: list "b": defined twice \(first at a.toml:3\)'):
        load_rules([tmp_path], display_base=tmp_path)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path], display_base=tmp_path)
    assert str(info.value) == 'b.toml:2: rule "cma-itc": duplicate rule id (first defined at a.toml:2)'


def test_examples_and_metadata(tmp_path: Path) -> None:
    text = (
        GOOD
        + 'status = "experimental"\ntags = ["uk"]\nmax_age = "30d"\nfeed_tags = ["regulator"]\n[rule.examples]\nmatch = ["CMA invitation to comment on AI", {title = "t", text = "body"}]\nno_match = ["cinema"]\n'
    )
    [rule] = load_rule_file(write(tmp_path, text))
    assert rule.status == "experimental" and rule.max_age_seconds == 30 * 86400
    assert [(e.expect_match, e.title, e.summary, e.feed_tags) for e in rule.examples] == [
        (True, "CMA invitation to comment on AI", "", ("regulator",)),
        (True, "t", "body", ("regulator",)),
        (False, "cinema", "", ("regulator",)),
    ]


def test_bad_example_field(tmp_path: Path) -> None:
    text = GOOD + '[rule.examples]\nmatch = [{titel = "x"}]\n'
    assert 'rule "cma-itc": ' in str(error_of(write(tmp_path, text)))


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no rule files"):
        load_rules([tmp_path])


def test_published_json_schema_is_current() -> None:
    """docs/rules.schema.json is generated from the validation model; regenerate it with
    `watcher rules schema > docs/rules.schema.json` when the model changes."""
    published = json.loads((ROOT / "docs" / "rules.schema.json").read_text())
    assert published == json_schema()


def test_query_error_in_a_multiline_query(tmp_path: Path) -> None:
    text = (
        '[lists]\ncma = ["CMA"]\n[[rule]]\nid = "q"\ntitle = "Q"\n'
        "query = '''\n  @cma AND merger*\n  AND ((ends OR drops) NEAR/4 probe)\n'''\n"
    )
    error = error_of(write(tmp_path, text))
    assert str(error) == 'rules/cma.toml:8:24: rule "q": "query": NEAR joins words, phrases or lists, not expressions'
    assert error.context == "      AND ((ends OR drops) NEAR/4 probe)\n" + " " * 27 + "^"


def test_an_unknown_list_inside_a_list_is_a_clear_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[lists]\nparties = ["@big_tech", "OpenAI"]\n'
        + GOOD.replace('any = ["invitation to comment"]', 'any = ["@parties"]'),
    )
    assert str(error_of(path)) == (
        'rules/cma.toml:8: rule "cma-itc": "any": list "@parties" (rules/cma.toml:2) includes unknown list "@big_tech"'
    )


STAGES = """\
[lists]
itc = ["invitation to comment", "invites comment*"]

[stages.cma]
invitation-to-comment = ["@itc"]
phase-1 = ["phase 1 investigation"]

[[rule]]
id = "cma-case"
title = "CMA case"
authority = "cma"
on_update = "notify"
any = ["CMA"]

[[rule]]
id = "other"
title = "Another authority's rule"
authority = "ftc"
any = ["FTC"]
"""


def test_stages_attach_to_the_rules_of_their_authority_in_order(tmp_path: Path) -> None:
    case, other = load_rule_file(write(tmp_path, STAGES))
    assert [(s.name, s.phrases) for s in case.stages] == [
        ("invitation-to-comment", ("invitation to comment", "invites comment*")),
        ("phase-1", ("phase 1 investigation",)),
    ]
    assert case.authority == "cma" and other.stages == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('phase-1 = ["phase 1 investigation"]', "phase-1 = []"),
            'rules/cma.toml:6: stage "cma.phase-1": expected a non-empty list of phrases',
        ),
        (
            ('invitation-to-comment = ["@itc"]', 'invitation-to-comment = ["@nope"]'),
            'rules/cma.toml:5: stage "cma.invitation-to-comment": unknown list "@nope"',
        ),
        (
            ("[stages.cma]", "[stages]\ncma = 1\n[stages.ec]"),
            'rules/cma.toml:5: stages "cma": expected [stages.cma] with name = [phrases]',
        ),
    ],
)
def test_bad_stages(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert str(error_of(write(tmp_path, STAGES.replace(*change)))) == expected
