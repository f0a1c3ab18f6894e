"""Merging the deliveries of several rules into one message per channel and story."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.model import Alert, Channel, Digest, Severity
from watcher.notify.merge import merge_alerts
from watcher.notify.render import Renderer

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def alert(delivery_id: int, rule: str, severity: Severity, *, channel: str = "team", story: int | None = 7,
          item: int = 1, tags: tuple[str, ...] = ()) -> Alert:  # fmt: skip
    return Alert(
        delivery_id=delivery_id,
        channel=channel,
        rule_id=rule,
        rule_title=f"Rule {rule}",
        severity=severity,
        reasons=(f'title contains "{rule}"',),
        feed_id="cma-news",
        feed_title="CMA news",
        item_title="Microsoft / Mistral AI partnership",
        item_link="https://www.gov.uk/x",
        item_text="",
        published_at=T0,
        story_id=story,
        item_id=item,
        entities=("Microsoft", "Mistral AI"),
        tags=tags,
    )


def test_rules_of_one_story_and_channel_become_one_alert_most_severe_first() -> None:
    merged = merge_alerts(
        [
            alert(1, "low", Severity.LOW, tags=("watch",)),
            alert(2, "high", Severity.HIGH, tags=("cma",)),
            alert(3, "med", Severity.MEDIUM, tags=("cma", "deals")),
            alert(4, "high", Severity.HIGH, channel="legal"),
            alert(5, "other", Severity.LOW, story=8, item=2),
        ]
    )
    assert [(a.channel, a.rule_id, a.carried) for a in merged] == [
        ("team", "high", (2, 3, 1)),
        ("legal", "high", (4,)),
        ("team", "other", (5,)),
    ]
    top = merged[0]
    assert top.severity is Severity.HIGH
    assert [h.rule_id for h in top.hits] == ["high", "med", "low"]
    assert top.tags == ("cma", "deals", "watch")
    assert top.reasons == ('title contains "high"', 'title contains "med"', 'title contains "low"')


def test_without_a_story_alerts_merge_by_item() -> None:
    merged = merge_alerts([alert(1, "a", Severity.LOW, story=None), alert(2, "b", Severity.LOW, story=None)])
    assert [a.carried for a in merged] == [(1, 2)]
    apart = merge_alerts(
        [alert(1, "a", Severity.LOW, story=None, item=1), alert(2, "b", Severity.LOW, story=None, item=2)]
    )
    assert [a.carried for a in apart] == [(1,), (2,)]


def test_messages_name_every_rule() -> None:
    channel = Channel(name="team", format="text")
    renderer = Renderer({"team": channel})
    one = merge_alerts([alert(1, "high", Severity.HIGH), alert(2, "low", Severity.LOW)])[0]
    message = renderer.render(one, channel)
    assert message.title == "[HIGH] Rule high (+1 more): Microsoft / Mistral AI"
    assert "Rules: Rule high · high (high); Rule low · low (low)" in message.body
    single = renderer.render(alert(3, "high", Severity.HIGH), channel)
    assert single.title == "[HIGH] Rule high: Microsoft / Mistral AI"
    assert "Rule: Rule high · high" in single.body


def test_a_digest_lists_an_item_once_with_all_its_rules() -> None:
    channel = Channel(name="team", format="text", mode="digest", digest_schedule="0 8 * * *")
    renderer = Renderer({"team": channel})
    digest = Digest(1, "team", T0, None, (alert(1, "high", Severity.HIGH), alert(2, "low", Severity.LOW)))
    body = renderer.render_digest(digest, channel).body
    assert body.startswith("1 alert ")
    assert body.count("Microsoft / Mistral AI partnership") == 1
    assert "Rule high + Rule low" in body
