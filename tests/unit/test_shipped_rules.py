"""The shipped rule packs in rules/: they load, their own examples pass, and noise fires nothing.

Each rule carries its examples in its `[rule.examples]` table (invented headlines and leads in the
style of the real feeds: gov.uk CMA pages, FTC and DOJ releases, the Commission's press corner, the
national authorities, tech news). This module runs them through the real engine, checks the packs'
shape (ids, descriptions, owners, example counts, feed names), and keeps a short table of cross-rule
checks: noise that must fire no rule at all, and the gov.uk acceptance items.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from watcher.examples import run_examples
from watcher.feeds.normalise import normalise_feed
from watcher.feeds.parse import parse_feed
from watcher.match import RuleSet
from watcher.model import And, Condition, Item, Meta, Not, Or, Rule
from watcher.rules import load_rules, rule_files

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "rules"
FEEDS_DIR = ROOT / "tests" / "data" / "feeds"
CONFIG_EXAMPLE = ROOT / "config.example.toml"
EXPECTED_FILES = {
    "cma.toml",
    "deals.toml",
    "doj.toml",
    "eu.toml",
    "ftc.toml",
    "lists.toml",
    "national.toml",
    "stages.toml",
}
MIN_EXAMPLES = 5
ITC = "cma-invitation-to-comment"


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules([RULES_DIR])


@pytest.fixture(scope="module")
def ruleset(rules: list[Rule]) -> RuleSet:
    return RuleSet(rules)


def config_feed_ids() -> set[str]:
    config = tomllib.loads(CONFIG_EXAMPLE.read_text(encoding="utf-8"))
    return {feed["id"] for feed in config.get("feed", [])}


def fired(ruleset: RuleSet, item: Item, feed_tags: tuple[str, ...] = ()) -> set[str]:
    return {m.rule_id for m in ruleset.match(item, feed_tags=feed_tags)}


def item(title: str, summary: str = "", *, feed_id: str = "test", link: str | None = None) -> Item:
    return Item(
        feed_id=feed_id, item_key="test-item", title=title, link=link, summary=summary, content="", published_at=None
    )


# ---- the packs' shape ----------------------------------------------------------------------------


def test_rule_files_are_the_expected_packs() -> None:
    assert {p.name for p in rule_files([RULES_DIR])} == EXPECTED_FILES


def test_rule_files_open_with_a_scope_comment() -> None:
    for path in rule_files([RULES_DIR]):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), path.name


def test_lists_file_holds_only_lists() -> None:
    data = tomllib.loads((RULES_DIR / "lists.toml").read_text(encoding="utf-8"))
    assert set(data) == {"lists"}
    for name in ("cma", "ftc", "doj_antitrust", "european_commission", "microsoft", "big_tech", "ai_labs"):
        assert name in data["lists"], name


def test_stages_file_holds_the_stages_of_the_big_four() -> None:
    data = tomllib.loads((RULES_DIR / "stages.toml").read_text(encoding="utf-8"))
    assert set(data) == {"stages"}
    assert set(data["stages"]) == {"cma", "ec", "ftc", "doj"}


def test_rules_load(rules: list[Rule]) -> None:
    assert len(rules) >= 25
    assert all(rule.enabled for rule in rules)


def test_rule_ids_are_unique(rules: list[Rule]) -> None:
    counts = Counter(rule.id for rule in rules)
    assert [rule_id for rule_id, n in counts.items() if n > 1] == []


def test_every_rule_is_documented(rules: list[Rule]) -> None:
    problems = []
    for rule in rules:
        if len(rule.description.strip()) < 80:
            problems.append(f"{rule.id}: description")
        if rule.owner != "watcher-maintainers":
            problems.append(f"{rule.id}: owner")
        if not rule.tags:
            problems.append(f"{rule.id}: tags")
        if not rule.false_positives.strip():
            problems.append(f"{rule.id}: false_positives")
        if not rule.references or not all(r.startswith("https://") for r in rule.references):
            problems.append(f"{rule.id}: references")
    assert problems == []


def test_every_rule_has_enough_examples_each_way(rules: list[Rule]) -> None:
    short = []
    for rule in rules:
        matches = sum(1 for e in rule.examples if e.expect_match)
        misses = sum(1 for e in rule.examples if not e.expect_match)
        if matches < MIN_EXAMPLES or misses < MIN_EXAMPLES:
            short.append(f"{rule.id}: {matches} match, {misses} no_match")
    assert short == []


def test_rules_leave_channels_and_feeds_to_the_config(rules: list[Rule]) -> None:
    assert [rule.id for rule in rules if rule.channels or rule.feeds] == []


def _feed_patterns(cond: Condition) -> list[str]:
    """The `feed:` patterns anywhere in a condition tree."""
    if isinstance(cond, Meta):
        return list(cond.values) if cond.kind == "feed" else []
    if isinstance(cond, (And, Or)):
        return [p for child in cond.children for p in _feed_patterns(child)]
    if isinstance(cond, Not):
        return _feed_patterns(cond.child)
    return []


def test_feed_names_exist_in_the_example_config(rules: list[Rule]) -> None:
    """A `feed:` pattern or an example's feed must name feeds that the example config defines."""
    known = config_feed_ids()
    bad = []
    for rule in rules:
        for pattern in _feed_patterns(rule.condition):
            if not any(fnmatch.fnmatchcase(feed_id, pattern) for feed_id in known):
                bad.append(f"{rule.id}: feed:{pattern}")
        for example in rule.examples:
            if example.feed != "example" and example.feed not in known:
                bad.append(f"{rule.id}: example feed {example.feed!r}")
    assert bad == []


# ---- every rule's own examples -------------------------------------------------------------------


def test_every_example_passes(rules: list[Rule]) -> None:
    results = run_examples(rules)
    assert len(results) == sum(len(rule.examples) for rule in rules)
    failures = [
        f"{r.rule.id}: {r.example.title!r} expected {'match' if r.example.expect_match else 'no_match'}, "
        f"fired={r.fired}"
        for r in results
        if not r.ok
    ]
    assert failures == [], "\n".join(failures)


# ---- cross-rule checks: the whole rule set at once -----------------------------------------------

# (title, summary, feed id, feed tags, the exact set of rules that must fire)
CROSS: list[tuple[str, str, str, tuple[str, ...], set[str]]] = [
    # Noise: another CMA, a trading indicator, a product launch, consumer protection.
    (
        "CMA Awards 2024: Country Music Association partners with Amazon Music",
        "The Country Music Association is inviting comments from fans on its partnership with Amazon Music, which "
        "will stream the CMA Awards; nominees were announced after a phase 2 of voting.",
        "techcrunch-ai",
        ("news", "tech"),
        set(),
    ),
    (
        "CMA CGM takes stake in Mistral AI partnership as it acquires logistics AI start-up",
        "The shipping group CMA CGM said the investment and acquisition were cleared by the competition authorities.",
        "techcrunch-ai",
        ("news", "tech"),
        set(),
    ),
    (
        "Nvidia slips below its 50-day CMA",
        "Traders watched the cumulative moving average (CMA); one analyst invited comments on whether the AI "
        "chipmaker's acquisition spree is over before its phase 2 data centre build-out.",
        "techcrunch-ai",
        ("news", "tech"),
        set(),
    ),
    (
        "OpenAI launches GPT-5 in ChatGPT and on Azure",
        "The Microsoft-backed lab, in which Microsoft has invested more than $13 billion, says its new model beats "
        "Google and Anthropic on coding benchmarks.",
        "techcrunch-ai",
        ("news", "tech"),
        set(),
    ),
    (
        "FTC Sues to Stop Robocall Operation That Used AI Voice Cloning",
        "The Federal Trade Commission's complaint alleges the operators placed millions of illegal robocalls with "
        "AI-generated voices; a proposed settlement bans them from telemarketing.",
        "ftc-press",
        ("regulator", "us"),
        set(),
    ),
    (
        "CMA publishes final report in vets market investigation",
        "The CMA found that large vet groups charge too much and proposed remedies.",
        "cma-news",
        ("regulator", "uk"),
        set(),
    ),
    # The gov.uk acceptance items: the news feed, the press release and the case entry.
    (
        "Microsoft / Mistral AI partnership: invitation to comment",
        "The CMA is inviting comments on the partnership between Microsoft and Mistral AI.",
        "cma-news",
        ("regulator", "uk"),
        {ITC},
    ),
    (
        "CMA invites comment on Microsoft\u2019s partnership with Mistral AI",
        "The Competition and Markets Authority is seeking views on whether Microsoft's partnership with Mistral AI "
        "has resulted in a relevant merger situation.",
        "cma-news",
        ("regulator", "uk"),
        {ITC},
    ),
    (
        "Microsoft / Mistral AI partnership merger inquiry",
        "Invitation to comment: the CMA is considering whether it is or may be the case that Microsoft "
        "Corporation's partnership with Mistral AI has resulted in the creation of a relevant merger situation.",
        "cma-cases",
        ("regulator", "uk"),
        {ITC},
    ),
    # The case entry alone (gov.uk case feeds have no summary), and the same deal as tech news.
    (
        "Microsoft / Mistral AI partnership merger inquiry",
        "",
        "cma-cases",
        ("regulator", "uk"),
        {"cma-merger-case-update"},
    ),
    (
        "Microsoft invests \u20ac15 million in Mistral AI",
        "Microsoft will take a minority stake in the Paris start-up as part of a multi-year partnership.",
        "techcrunch-ai",
        ("news", "tech"),
        {"deals-bigtech-ai-investment"},
    ),
    # One alert per item, at the most specific rule.
    (
        "CMA decides not to refer Microsoft / Inflection to phase 2",
        "The CMA has found that Microsoft's hiring of Inflection AI staff is a relevant merger situation and decided "
        "not to refer the merger to a phase 2 investigation.",
        "cma-news",
        ("regulator", "uk"),
        {"cma-merger-phase-1"},
    ),
    (
        "FTC Launches Inquiry into Generative AI Investments and Partnerships",
        "The Federal Trade Commission issued 6(b) orders to Alphabet, Amazon, Anthropic, Microsoft and OpenAI "
        "about their investments and partnerships.",
        "ftc-press",
        ("regulator", "us"),
        {"ftc-6b-orders"},
    ),
    (
        "Justice Department Sues Google for Monopolizing Digital Advertising Technologies",
        "After a lengthy investigation, the Department of Justice filed a civil antitrust lawsuit against Google.",
        "doj-antitrust",
        ("regulator", "us"),
        {"doj-antitrust-tech-lawsuit"},
    ),
]


@pytest.mark.parametrize(
    ("title", "summary", "feed_id", "feed_tags", "expected"), CROSS, ids=[f"{c[2]}:{c[0][:40]}" for c in CROSS]
)
def test_cross_rule(
    ruleset: RuleSet, title: str, summary: str, feed_id: str, feed_tags: tuple[str, ...], expected: set[str]
) -> None:
    got = fired(ruleset, item(title, summary, feed_id=feed_id), feed_tags)
    assert got == expected, f"{title!r}: fired {sorted(got)}, expected {sorted(expected)}"


# ---- the saved fixture feeds, parsed and matched -------------------------------------------------

ACCEPTANCE_ATOM = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <id>https://www.gov.uk/search/news-and-communications</id>
  <title>News and communications from Competition and Markets Authority</title>
  <updated>2024-04-04T10:00:00+01:00</updated>
  <entry>
    <id>https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership-merger-inquiry</id>
    <updated>2024-04-04T10:00:00+01:00</updated>
    <link rel="alternate" type="text/html"
          href="https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership-merger-inquiry"/>
    <title>Microsoft / Mistral AI partnership: invitation to comment</title>
    <summary type="html">The CMA is inviting comments on the partnership between Microsoft and Mistral AI.</summary>
  </entry>
  <entry>
    <id>https://www.gov.uk/government/news/cma-invites-comment-on-microsofts-partnership-with-mistral-ai</id>
    <updated>2024-04-04T09:30:00+01:00</updated>
    <link rel="alternate" type="text/html"
          href="https://www.gov.uk/government/news/cma-invites-comment-on-microsofts-partnership-with-mistral-ai"/>
    <title>CMA invites comment on Microsoft&#8217;s partnership with Mistral AI</title>
    <summary type="html">The Competition and Markets Authority is seeking views on whether Microsoft&#39;s
      partnership with Mistral AI has resulted in a relevant merger situation.</summary>
  </entry>
  <entry>
    <id>https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership-merger-inquiry#itc</id>
    <updated>2024-04-04T09:00:00+01:00</updated>
    <link rel="alternate" type="text/html"
          href="https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership-merger-inquiry"/>
    <title>Microsoft / Mistral AI partnership merger inquiry</title>
    <summary type="html">&lt;p&gt;Invitation to comment: the CMA is considering whether it is or may be the
      case that Microsoft Corporation&amp;rsquo;s partnership with Mistral AI has resulted in the
      creation of a relevant merger situation.&lt;/p&gt;</summary>
  </entry>
</feed>
"""


def test_acceptance_feed_fires_only_the_invitation_to_comment(ruleset: RuleSet) -> None:
    parsed = parse_feed(ACCEPTANCE_ATOM, feed_id="cma-news", url="https://www.gov.uk/search/news.atom")
    items, warnings = normalise_feed(parsed, "cma-news")

    assert warnings == []
    assert len(items) == 3
    for entry in items:
        assert fired(ruleset, entry, ("regulator", "uk")) == {ITC}, entry.title


# What a lawyer would expect from each saved fixture feed: {title: rules}; titles not listed fire nothing.
SAVED_FEEDS: dict[str, dict[str, set[str]]] = {
    "cma-news.atom": {"CMA invites comment on Northwind / Lumen AI partnership": {ITC}},
    # Case entries have a title only: the AI merger inquiry alerts as a case update and the cloud market
    # investigation as big tech market work; the telecom merger, infant formula and vets stay quiet.
    "cma-cases.atom": {
        "Northwind / Lumen AI partnership merger inquiry": {"cma-merger-case-update"},
        "Cloud services market investigation": {"cma-bigtech-market-and-conduct"},
    },
    "ftc-press.rss": {
        "FTC Issues 6(b) Orders to Five Companies Seeking Information on AI Investments and Partnerships": {
            "ftc-6b-orders"
        }
    },
    "doj-antitrust.rss": {},
    "google-news.rss": {
        "UK watchdog invites comment on Northwind's AI tie-up - The Merger Wire": {ITC},
        "Lumen AI deal faces UK competition scrutiny - City Ledger": {"deals-ai-regulatory-scrutiny"},
    },
    "latin1.rss": {
        "Consultation publique : \u00ab Les march\u00e9s de l\u2019intelligence artificielle g\u00e9n\u00e9rative \u00bb": {
            "fr-autorite-tech"
        }
    },
    "no-guid.rss": {},
}


@pytest.mark.parametrize("name", sorted(SAVED_FEEDS))
def test_saved_feeds_fire_where_expected(ruleset: RuleSet, name: str) -> None:
    body = (FEEDS_DIR / name).read_bytes()
    feed_id = Path(name).stem
    items, _ = normalise_feed(parse_feed(body, feed_id=feed_id, url="https://example.org/feed"), feed_id)
    assert items
    got = {entry.title: ids for entry in items if (ids := fired(ruleset, entry))}
    assert got == SAVED_FEEDS[name]
