"""The phrase matcher: whole words, folding, groups, vetoes, reasons."""

from __future__ import annotations

from watcher.fold import fold
from watcher.match import RuleSet, match_items
from watcher.model import Item, Rule, Severity


def item(title: str, text: str = "", feed_id: str = "cma-news", key: str = "k") -> Item:
    return Item(feed_id=feed_id, item_key=key, title=title, link=None, summary=text, content="", published_at=None)


ITC = Rule(
    id="cma-itc",
    title="CMA invitation to comment",
    severity=Severity.HIGH,
    any_of=("invitation to comment", "invites comment", "invites comments"),
    all_of=(("CMA", "Competition and Markets Authority"), ("AI", "OpenAI", "Mistral AI", "Anthropic")),
    none_of=("Country Music Association",),
)


def test_fold() -> None:
    assert fold("Autorité de la concurrence") == "autorite de la concurrence"
    assert fold("“Invitation–to‑comment”") == "invitation to comment"
    assert fold("Section 6(b) orders") == "section 6 b orders"
    assert fold("") == ""


def test_matches_with_reasons_in_fields() -> None:
    rs = RuleSet([ITC])
    [m] = rs.match(item("Microsoft / Mistral AI partnership: invitation to comment", "The CMA is inviting comments."))
    assert m.rule_id == "cma-itc" and m.severity is Severity.HIGH
    reasons = [str(r) for r in m.reasons]
    assert 'title contains "invitation to comment"' in reasons
    assert 'title contains "Mistral AI"' in reasons
    assert 'text contains "CMA"' in reasons
    # Offsets are into the folded field text: "microsoft mistral ai partnership invitation to comment".
    title_reason = next(r for r in m.reasons if r.phrase == "Mistral AI")
    assert (title_reason.start, title_reason.end) == (10, 20)


def test_whole_words_only() -> None:
    rs = RuleSet([ITC])
    assert rs.match(item("Cinema CMAs issue invitation to comment on AI")) == []
    assert rs.match(item("CMA invitation to comment on AIR travel")) == []


def test_case_accents_hyphens() -> None:
    rule = Rule(id="adlc", title="t", severity=Severity.LOW, any_of=("Autorité de la concurrence",))
    rs = RuleSet([rule, ITC])
    assert [m.rule_id for m in rs.match(item("L'AUTORITE DE LA CONCURRENCE ouvre une enquête"))] == ["adlc"]
    assert [m.rule_id for m in rs.match(item("CMA issues Invitation-To-Comment on OpenAI deal"))] == ["cma-itc"]


def test_all_groups_and_vetoes() -> None:
    rs = RuleSet([ITC])
    assert rs.match(item("CMA invitation to comment on a cement merger")) == []  # no AI group
    assert rs.match(item("Country Music Association (CMA) invitation to comment on AI songs")) == []


def test_feed_filter_and_disabled_rules() -> None:
    only_ftc = Rule(id="r", title="t", severity=Severity.LOW, any_of=("6(b)",), feeds=("ftc-press",))
    off = Rule(id="off", title="t", severity=Severity.LOW, any_of=("6(b)",), enabled=False)
    rs = RuleSet([only_ftc, off])
    assert rs.match(item("FTC issues 6(b) orders", feed_id="cma-news")) == []
    assert [m.rule_id for m in rs.match(item("FTC issues 6(b) orders", feed_id="ftc-press"))] == ["r"]


def test_deterministic_order_over_items() -> None:
    a = Rule(id="a", title="t", severity=Severity.LOW, any_of=("merger",))
    b = Rule(id="b", title="t", severity=Severity.LOW, any_of=("inquiry",))
    items = [item("merger inquiry", key="1"), item("inquiry", key="2")]
    assert [(m.item_key, m.rule_id) for m in match_items(items, RuleSet([b, a]))] == [
        ("1", "b"),
        ("1", "a"),
        ("2", "b"),
    ]


def test_no_rules_no_matches() -> None:
    assert RuleSet([]).match(item("anything")) == []
