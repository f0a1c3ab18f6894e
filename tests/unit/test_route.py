"""Routing: rule channels, first-match-or-continue routes, the default, channel severity floors."""

from __future__ import annotations

from watcher.model import Route, Rule, Severity, Term
from watcher.notify.route import destinations


def rule(
    severity: Severity, channels: tuple[str, ...] = (), rule_id: str = "cma-itc", tags: tuple[str, ...] = ()
) -> Rule:
    return Rule(rule_id, "t", severity, Term(("x",)), channels=channels, tags=tags)


ROUTES = (
    Route(("urgent",), min_severity=Severity.HIGH, continue_=True, name="urgent"),
    Route(("team",), min_severity=Severity.MEDIUM, name="team"),
    Route(("regulators",), feed_tags=("regulator",)),
)


def chans(r: Rule, tags: tuple[str, ...] = (), floors: dict[str, Severity | None] | None = None) -> list[str]:
    return [d.channel for d in destinations(r, tags, ROUTES, ["console"], floors or {})]


def test_first_match_and_continue() -> None:
    assert chans(rule(Severity.CRITICAL)) == ["urgent", "team"]
    assert chans(rule(Severity.MEDIUM)) == ["team"]
    assert chans(rule(Severity.LOW), ("regulator",)) == ["regulators"]
    assert chans(rule(Severity.LOW)) == ["console"]  # nothing took it: the default


def test_rule_channels_come_first_and_floors_apply() -> None:
    assert chans(rule(Severity.HIGH, ("slack",))) == ["slack", "urgent", "team"]
    assert chans(rule(Severity.MEDIUM, ("slack",)), floors={"slack": Severity.HIGH}) == ["team"]


def test_globs_and_rule_tags() -> None:
    routes = (Route(("uk",), rules=("cma-*",), rule_tags=("uk",)),)
    found = destinations(rule(Severity.LOW, tags=("uk",)), (), routes, ["console"], {})
    assert [(d.channel, d.why) for d in found] == [("uk", "route #1 takes it")]
    assert [
        d.channel for d in destinations(rule(Severity.LOW, rule_id="ftc-6b", tags=("uk",)), (), routes, ["console"], {})
    ] == ["console"]
