"""Templates per format, and the promise that nothing from a feed becomes markup: hostile
headlines are checked against apprise's own converters (Slack mrkdwn, Markdown -> HTML)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apprise.conversion.format import markdown_to_html
from apprise.plugins.slack import NotifySlack

from watcher.errors import ConfigError
from watcher.model import Alert, Channel, Digest, Severity
from watcher.notify.render import Renderer, group_alerts
from watcher.notify.samples import check_templates, sample_alert, sample_digest

NOW = datetime(2026, 11, 29, 14, 25, tzinfo=UTC)
FORMATS = ("text", "markdown", "html")
HOSTILE = "<!channel> <script>alert(1)</script> *bold* <https://evil.example|click> [x](https://evil.example) @here"


def channel(fmt: str, **options: object) -> Channel:
    return Channel(f"c-{fmt}", format=fmt, **options)  # type: ignore[arg-type]


def render(alert: Alert, ch: Channel) -> tuple[str, str]:
    message = Renderer({ch.name: ch}).render(alert, ch)
    assert message.body_format == ch.format
    return message.title, message.body


def hostile(**changes: object) -> Alert:
    base = replace(
        sample_alert("c", NOW),
        item_title=HOSTILE,
        entities=(),
        snippet=f"Lead: **invitation to comment** then {HOSTILE}",
        feed_title="- feed *one*",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def alert_at(n: int, severity: Severity, story: int | None, hours_ago: float, title: str = "") -> Alert:
    return replace(
        sample_alert("c", NOW),
        delivery_id=n,
        severity=severity,
        story_id=story,
        item_title=title or f"Headline {n:02d}",
        item_link=f"https://news.example/{n}",
        published_at=NOW - timedelta(hours=hours_ago),
    )


# -- every format, default templates ------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_the_samples(fmt: str) -> None:
    ch = channel(fmt)
    renderer = Renderer({ch.name: ch})
    message = renderer.render(sample_alert(ch.name, NOW), ch)
    assert message.title == "[HIGH] CMA invitation to comment (watcher test): Microsoft / Mistral AI"
    assert "Mistral AI partnership: invitation to comment" in message.body
    assert "CMA cases · 2026-11-29 14:05 UTC" in message.body
    assert "reuters-business" in message.body  # also reported by
    assert "Microsoft, Mistral AI" in message.body  # parties
    assert "cma-invitation-to-comment" in message.body
    digest = renderer.render_digest(sample_digest(ch.name, NOW), ch)
    assert digest.title == "Watcher digest: 5 alerts (2 high) since 2026-11-28 14:25"
    assert "UK watchdog invites views" in digest.body and digest.attachments == ()
    assert "more" not in digest.body


@pytest.mark.parametrize("fmt", FORMATS)
def test_title_prefers_entities_and_labels_the_kind(fmt: str) -> None:
    alert = replace(sample_alert("c", NOW), kind="follow_up", rule_title="CMA invitation to comment")
    assert render(alert, channel(fmt))[0] == "[HIGH FOLLOW-UP] CMA invitation to comment: Microsoft / Mistral AI"
    title = render(replace(alert, kind="confirmed", entities=(), item_title="A\nheadline " + "x" * 400), channel(fmt))[
        0
    ]
    assert title.startswith("[HIGH CONFIRMED] CMA invitation to comment: A headline xxx") and title.endswith("…")
    assert len(title) <= 250 and "\n" not in title


def test_times_are_shown_in_the_channel_timezone() -> None:
    ch = channel("text", timezone="America/New_York")
    renderer = Renderer({ch.name: ch})
    assert "2026-11-29 09:05 EST" in renderer.render(sample_alert(ch.name, NOW), ch).body
    digest = renderer.render_digest(sample_digest(ch.name, NOW), ch)
    assert digest.title.endswith("since 2026-11-28 09:25")
    assert "from 2026-11-28 09:25 to 2026-11-29 09:25 (America/New_York)" in digest.body


# -- hostile feed text ----------------------------------------------------------------------------
def test_markdown_hostile_headline_is_inert_in_slack_and_html() -> None:
    title, body = render(hostile(), channel("markdown"))
    slack = NotifySlack._commonmark_to_slack(body)
    # The only live <...> markup is our own link to the item.
    assert re.findall(r"<([^<>|]*)[|>]", slack) == ["https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai"]
    assert "&lt;!channel&gt;" in slack and "&lt;script&gt;" in slack
    assert "evil.example|" not in slack.replace("evil.example\\|", "")
    # *bold* stays escaped; only our own ** markers turn bold.
    assert "*bold*" not in slack.replace("\\*bold\\*", "")
    assert "*invitation to comment*" in slack
    assert "@here" not in slack and "@\u2060here" in slack
    assert "\\- feed \\*one\\*" in slack  # a list marker at the start of a value is escaped
    html = markdown_to_html(body)
    assert "<script" not in html and "<strong>invitation to comment</strong>" in html
    assert set(re.findall(r'href="([^"]*)"', html)) == {"https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai"}
    assert "<em>" not in html and "<li>" not in html
    assert "\n" not in title


def test_markdown_keeps_ordinary_text_clean() -> None:
    alert = hostile(item_title="Mr. Smith's snake_case e-mail to press@cma.gov.uk, 3.5% - ok", feed_title="1. First")
    body = render(alert, channel("markdown"))[1]
    assert "[Mr. Smith's snake_case e-mail to press@\u2060cma.gov.uk, 3.5% - ok](<" in body
    assert "1\\. First" in body


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_only_web_links_are_linked(fmt: str) -> None:
    body = render(hostile(item_title="Click", item_link="javascript:alert(1)"), channel(fmt))[1]
    assert "href" not in body and "](<" not in body
    assert "javascript:alert" in body  # shown as text


def test_markdown_link_destination_cannot_break_out() -> None:
    body = render(hostile(item_title="T", item_link="https://a.example/x>)<b>|y`\\"), channel("markdown"))[1]
    assert "[T](<https://a.example/x%3E)%3Cb%3E%7Cy%60%5C>)" in body
    spaced = render(hostile(item_title="T", item_link="https://a.example/a b"), channel("markdown"))[1]
    assert spaced.startswith("T (https://a.example/a b)\n")  # not a valid URL: shown, not linked


def test_html_hostile_headline_is_escaped() -> None:
    title, body = render(hostile(), channel("html"))
    assert "<script" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert set(re.findall(r'href="([^"]*)"', body)) == {"https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai"}
    assert "<strong>invitation to comment</strong>" in body
    assert "\n" not in title and "<script>" not in title  # a word joiner breaks the tag


def test_titles_are_plain_text_with_mentions_links_and_tags_broken() -> None:
    alert = hostile(item_title="<AI> deal [x](https://evil.example) @everyone", rule_title="R")
    text_title = render(alert, channel("text"))[0]
    assert text_title == "[HIGH] R: <AI> deal [x](https://evil.example) @\u2060everyone"  # apprise escapes the rest
    for fmt in ("markdown", "html"):
        title = render(alert, channel(fmt))[0]
        assert title == "[HIGH] R: <\u2060AI> deal [x]\u2060(https://evil.example) @\u2060everyone"
        assert markdown_to_html(title).count("<") == 2  # just its own <p></p>


def test_text_strips_control_characters_and_keeps_titles_on_one_line() -> None:
    alert = hostile(
        item_title="Line one\nLine two\r\x1b[31mred\x07 \u202eevil", rule_title="Rule\x00 title", entities=()
    )
    title, body = render(alert, channel("text"))
    assert title == "[HIGH] Rule title: Line one Line two [31mred evil"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", title + body)
    assert "**invitation to comment**" in body  # the markers are the only emphasis text has
    assert "@\u2060here" in body and "@here" not in body


# -- template overrides and errors --------------------------------------------------------------
def test_template_dir_overrides_only_its_files(tmp_path: Path) -> None:
    (tmp_path / "body.j2").write_text("Custom: {{ item.title }} ({{ alert.severity }})\n")
    ch = channel("markdown", template_dir=str(tmp_path))
    title, body = render(sample_alert("c", NOW), ch)
    assert body == "Custom: Microsoft / Mistral AI partnership: invitation to comment \\(watcher test\\) (HIGH)\n"
    assert title.startswith("[HIGH] CMA invitation")  # built-in title.j2
    assert check_templates({ch.name: ch}, NOW) == [
        f"channel c-markdown: markdown templates (overrides from {tmp_path}: body.j2)"
    ]


def test_broken_template_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "digest_body.j2").write_text("{{ total }}\n{% for g in groups %}\n{{ g.severity }\n{% endfor %}\n")
    ch = channel("html", template_dir=str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        Renderer({ch.name: ch})
    assert (caught.value.path, caught.value.line) == (tmp_path / "digest_body.j2", 3)
    assert str(caught.value).startswith(f"{tmp_path}/digest_body.j2:3: unexpected '}}'")


def test_undefined_variable_fails_check_templates(tmp_path: Path) -> None:
    (tmp_path / "body.j2").write_text("{{ item.title }}\n\n{{ alert.colour }}\n")
    ch = channel("text", template_dir=str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        check_templates({ch.name: ch}, NOW)
    assert str(caught.value) == f"{tmp_path}/body.j2:3: alert has no attribute 'colour'"


def test_check_templates_renders_every_branch(tmp_path: Path) -> None:
    (tmp_path / "body.j2").write_text('{{ item.title }}\n{% if alert.kind == "update" %}{{ oops }}{% endif %}\n')
    ch = channel("text", template_dir=str(tmp_path))
    Renderer({ch.name: ch}).render(sample_alert("c", NOW), ch)  # the sample alone takes no such branch
    with pytest.raises(ConfigError, match=r"body\.j2:2: 'oops' is undefined"):
        check_templates({ch.name: ch}, NOW)


def test_check_templates_reports_each_channel() -> None:
    channels = {"console": Channel("console", kind="console"), "legal-email": Channel("legal-email", format="html")}
    assert check_templates(channels, NOW) == [
        "channel console: text templates (built-in)",
        "channel legal-email: html templates (built-in)",
    ]


# -- digests --------------------------------------------------------------------------------------
def test_digest_lists_at_most_max_items_and_attaches_the_rest_as_csv() -> None:
    alerts = [alert_at(n, Severity.LOW, None, n) for n in range(30)]
    alerts[3] = alert_at(3, Severity.MEDIUM, None, 3, title='=HYPERLINK("https://evil.example","x")')
    alerts[4] = replace(alert_at(4, Severity.LOW, None, 4, title="@SUM(1+1)"), feed_title="+cmd", rule_id="-r")
    digest = Digest(7, "c", due_at=NOW, since=NOW - timedelta(days=1), alerts=tuple(alerts))
    ch = channel("text", digest_max_items=25)
    message = Renderer({ch.name: ch}).render_digest(digest, ch)
    assert message.title == "Watcher digest: 30 alerts since 2026-11-28 14:25"
    assert len(re.findall(r"^\[(LOW|MEDIUM)\] ", message.body, re.MULTILINE)) == 25
    assert "…and 5 more, not listed here: `watcher alerts --digest 7` lists all 30" in message.body
    assert "watcher-digest-2026-11-29.csv has them" in message.body
    [attachment] = message.attachments
    assert attachment.name == "watcher-digest-2026-11-29.csv"
    assert attachment.content.startswith(b"\xef\xbb\xbf")  # so Excel reads it as UTF-8
    rows = list(csv.reader(io.StringIO(attachment.content.decode("utf-8-sig"))))
    assert rows[0] == ["severity", "rule", "headline", "link", "source", "published", "story"]
    assert len(rows) == 31
    by_link = {row[3]: row for row in rows[1:]}
    assert by_link["https://news.example/3"][:3] == [
        "medium",
        "cma-invitation-to-comment",
        '\'=HYPERLINK("https://evil.example","x")',
    ]
    assert by_link["https://news.example/4"][1:5] == ["'-r", "'@SUM(1+1)", "https://news.example/4", "'+cmd"]
    assert by_link["https://news.example/0"][5] == "2026-11-29 14:25 UTC"


def test_digest_groups_by_story_then_severity_then_time() -> None:
    alerts = [
        alert_at(1, Severity.LOW, 7, 10, "Story seven, first report"),
        alert_at(2, Severity.MEDIUM, None, 1, "Lone medium, newest"),
        alert_at(3, Severity.HIGH, 7, 5, "Story seven, follow-up"),
        alert_at(4, Severity.MEDIUM, None, 2, "Lone medium, older"),
        alert_at(5, Severity.INFO, None, 0, "Lone info"),
    ]
    groups = group_alerts(alerts)
    assert [[a.delivery_id for a in g] for g in groups] == [[1, 3], [2], [4], [5]]
    for fmt in FORMATS:
        ch = channel(fmt)
        body = Renderer({ch.name: ch}).render_digest(Digest(1, "c", NOW, None, tuple(alerts)), ch).body
        positions = [body.find(a.item_title) for a in (alerts[0], alerts[2], alerts[1], alerts[3], alerts[4])]
        assert -1 not in positions and positions == sorted(positions), (fmt, body)
        assert "from" not in body.splitlines()[0]  # no previous digest: no "since"


@pytest.mark.parametrize("fmt", FORMATS)
def test_digest_cap_cuts_inside_a_story_and_says_how_many_more(fmt: str) -> None:
    alerts = tuple(alert_at(n, Severity.HIGH, 1, n) for n in range(4))
    ch = channel(fmt, digest_max_items=3)
    message = Renderer({ch.name: ch}).render_digest(Digest(1, "c", NOW, None, alerts), ch)
    assert "and 1 more" in message.body and len(message.attachments) == 1
    assert "Headline 00" not in message.body  # a story reads oldest first: its newest report is cut
    assert message.title == "Watcher digest: 4 alerts (4 high)"


def test_renderer_refuses_a_channel_it_was_not_built_for() -> None:
    renderer = Renderer({"a": channel("text")})
    with pytest.raises(ConfigError, match="templates were not loaded"):
        renderer.render(sample_alert("c", NOW), channel("html"))
