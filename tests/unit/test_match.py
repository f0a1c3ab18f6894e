"""The matcher: whole words, folding, the query language, scopes, NEAR, reasons, snippets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.examples import run_examples
from watcher.fold import fold
from watcher.match import RuleSet, match_items
from watcher.model import Item, Rule
from watcher.rules import load_rules

LISTS = """\
[lists]
cma = ["CMA", "Competition and Markets Authority"]
big_tech = ["Microsoft", "Google", "Amazon"]
ai_labs = ["OpenAI", "Mistral AI", "Anthropic"]
"""


def rules(tmp_path: Path, body: str) -> list[Rule]:
    (tmp_path / "r.toml").write_text(LISTS + body)
    return load_rules([tmp_path])


def rule(tmp_path: Path, query: str, **extra: str) -> RuleSet:
    lines = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return RuleSet(rules(tmp_path, f'[[rule]]\nid = "r"\ntitle = "R"\nquery = \'{query}\'\n{lines}'))


def item(
    title: str,
    text: str = "",
    *,
    feed_id: str = "cma-news",
    link: str | None = None,
    published_at: datetime | None = None,
) -> Item:
    return Item(
        feed_id=feed_id, item_key="k", title=title, link=link, summary=text, content="", published_at=published_at
    )


def fired(rs: RuleSet, it: Item, **kw: object) -> bool:
    return bool(rs.match(it, **kw))  # type: ignore[arg-type]


def test_fold() -> None:
    assert fold("Autorité de la concurrence") == "autorite de la concurrence"
    assert fold("“Invitation–to‑comment”") == "invitation to comment"
    assert fold("Section 6(b) orders") == "section 6 b orders"
    assert fold("") == ""


@pytest.mark.parametrize(
    ("phrase", "text", "expected"),
    [
        ('"Autorité de la concurrence"', "L'AUTORITE DE LA CONCURRENCE ouvre une enquête", True),
        ('"Autorite de la concurrence"', "L'Autorité de la concurrence", True),
        ('"invitation to comment"', "CMA issues Invitation-To-Comment", True),
        ('"invitation-to-comment"', "an invitation to comment", True),
        ('"Microsoft’s stake"', "Microsoft's stake in Mistral", True),
        ("CMA", "A cinema chain", False),
        ("CMA", "CMAs across Europe", False),
        ("CMA*", "CMAs across Europe", True),
        ("investigat*", "The FTC is investigating", True),
        ("investigat*", "an uninvestigated claim", False),
        ('"公正取引委員会"', "公正取引委員会は、企業結合の審査を開始した", True),
        ('"企業結合"', "公正取引委員会は、企業結合の審査を開始した", True),
        ('"공정위"', "공정위는 구글의 기업결합을 심사한다", True),
        ('"Bundeskartellamt"', "Das Bundeskartellamt prüft die Beteiligung", True),
    ],
)
def test_folding_and_word_boundaries(tmp_path: Path, phrase: str, text: str, expected: bool) -> None:
    assert fired(rule(tmp_path, phrase), item(text)) is expected


def test_boolean_query_and_reasons(tmp_path: Path) -> None:
    rs = rule(
        tmp_path,
        '@cma AND ("invitation to comment" OR "invites comment*") AND (@big_tech OR @ai_labs) AND NOT "Country Music Association"',
    )
    [m] = rs.match(item("Microsoft / Mistral AI partnership: invitation to comment", "The CMA is inviting comments."))
    reasons = [str(r) for r in m.reasons]
    assert 'title contains "Mistral AI" (from @ai_labs)' in reasons
    assert 'title contains "invitation to comment"' in reasons
    assert 'summary contains "CMA" (from @cma)' in reasons
    mistral = next(r for r in m.reasons if r.phrase == "Mistral AI")
    assert (mistral.start, mistral.end) == (12, 22)  # offsets into the item's own title
    assert mistral.snippet == "Microsoft / **Mistral AI** partnership: invitation to comment"
    assert not fired(rs, item("Country Music Association (CMA) invitation to comment on OpenAI songs"))


def test_implicit_and_or_precedence(tmp_path: Path) -> None:
    rs = rule(tmp_path, "merger inquiry OR phase 2")
    assert fired(rs, item("merger inquiry launched"))
    assert fired(rs, item("phase 2 reference"))
    assert not fired(rs, item("merger announced"))


def test_near(tmp_path: Path) -> None:
    rs = rule(tmp_path, "@big_tech NEAR/3 @ai_labs")
    assert fired(rs, item("Microsoft invests in Mistral AI"))
    assert fired(rs, item("Mistral AI takes money from Microsoft"))
    assert not fired(rs, item("Microsoft reported results today, and separately a startup named Mistral AI raised"))
    assert not fired(rs, item("Microsoft results", "Mistral AI"))  # different fields


def test_field_scopes(tmp_path: Path) -> None:
    rs = rule(tmp_path, 'title:(merger OR "phase 2") AND text:@big_tech')
    assert fired(rs, item("Merger inquiry opened", "into Google's purchase"))
    assert not fired(rs, item("Google news", "merger inquiry"))


def test_meta_scopes(tmp_path: Path) -> None:
    rs = rule(tmp_path, "merger AND domain:gov.uk AND feed:cma-* AND tag:regulator")
    ok = item("merger", link="https://www.gov.uk/cma-cases/x", feed_id="cma-cases")
    assert fired(rs, ok, feed_tags=["regulator"])
    assert not fired(rs, ok, feed_tags=["news"])
    assert not fired(rs, item("merger", link="https://notgov.uk/x", feed_id="cma-cases"), feed_tags=["regulator"])
    assert not fired(rs, item("merger", link="https://www.gov.uk/x", feed_id="ftc"), feed_tags=["regulator"])


def test_regex_is_case_sensitive_unless_i(tmp_path: Path) -> None:
    rs = rule(tmp_path, r"/\bMeta\b/ AND stake")
    assert fired(rs, item("Meta takes stake in Scale AI"))
    assert not fired(rs, item("A meta analysis of stake sizes"))
    rs_i = rule(tmp_path, r"/\bsection 6\(b\)/i")
    [m] = rs_i.match(item("FTC uses SECTION 6(b) powers"))
    assert m.reasons[0].phrase == "SECTION 6(b)"


def test_any_all_none_lists(tmp_path: Path) -> None:
    rs = RuleSet(
        rules(
            tmp_path,
            '[[rule]]\nid = "r"\ntitle = "R"\nany = ["invitation to comment"]\nall = ["@cma", ["@ai_labs", "AI"]]\nnone = ["Country Music Association"]\n',
        )
    )
    assert fired(rs, item("CMA invitation to comment on AI deal"))
    assert not fired(rs, item("CMA invitation to comment on a cement merger"))


def test_rule_filters(tmp_path: Path) -> None:
    rs = rule(tmp_path, "merger", feeds='["ftc-press"]', max_age='"7d"')
    now = datetime(2026, 11, 28, tzinfo=UTC)
    fresh = item("merger", feed_id="ftc-press", published_at=now - timedelta(days=1))
    stale = item("merger", feed_id="ftc-press", published_at=now - timedelta(days=10))
    assert fired(rs, fresh, now=now) and not fired(rs, stale, now=now)
    assert not fired(rs, item("merger", feed_id="cma-news"), now=now)
    tagged = rule(tmp_path, "merger", feed_tags='["regulator"]')
    assert fired(tagged, item("merger"), feed_tags=["Regulator"]) and not fired(tagged, item("merger"))


def test_article_field_and_partial_rules(tmp_path: Path) -> None:
    rs = rule(tmp_path, '@cma AND "invitation to comment"')
    teaser = item("CMA case update: Microsoft / Mistral AI")
    evaluation = rs.evaluate(teaser, want_partial=True)
    assert evaluation.matches == [] and evaluation.partial == ["r"]
    full = Item("cma-cases", "k", teaser.title, None, "", "", None, article="The CMA issued an invitation to comment.")
    [m] = rs.match(full)
    assert any(r.field == "article" for r in m.reasons)


def test_examples_run(tmp_path: Path) -> None:
    loaded = rules(
        tmp_path,
        '[[rule]]\nid = "r"\ntitle = "R"\nquery = "@cma AND merger*"\n[rule.examples]\nmatch = ["CMA merger inquiry", {title = "x", text = "Competition and Markets Authority mergers"}]\nno_match = ["cinema mergers", "CMA cheese"]\n',
    )
    results = run_examples(loaded)
    assert [r.ok for r in results] == [True, True, True, True]


def test_deterministic_order_over_items(tmp_path: Path) -> None:
    rs = RuleSet(
        rules(
            tmp_path,
            '[[rule]]\nid = "b"\ntitle = "B"\nany = ["inquiry"]\n[[rule]]\nid = "a"\ntitle = "A"\nany = ["merger"]\n',
        )
    )
    items = [Item("f", "1", "merger inquiry", None, "", "", None), Item("f", "2", "inquiry", None, "", "", None)]
    assert [(m.item_key, m.rule_id) for m in match_items(items, rs)] == [("1", "b"), ("1", "a"), ("2", "b")]


def test_disabled_and_empty() -> None:
    assert RuleSet([]).match(item("anything")) == []
