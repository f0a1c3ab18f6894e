"""Feed text on its way out, per medium, through the real path: our renderer, real apprise, a real
loopback receiver. tests/integration/test_escaping.py covers one alert to Slack and e-mail; this
adds every Slack control sequence (user, channel and broadcast mentions, labelled links), digests
and the merged one-message-per-story form, e-mail header injection through the subject, and the
JSON webhook (valid JSON, no control characters), in every message format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apprise.plugins.slack import NotifySlack

from watcher.model import Alert, Channel, Digest, Message, Severity
from watcher.notify.deliver import deliver
from watcher.notify.merge import merge_alerts
from watcher.notify.render import Renderer

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
# Every sequence Slack acts on (api.slack.com "Formatting text for app surfaces"), in the title,
# the text and the snippet; terminal and bidi controls; a CR LF followed by a forged header.
HOSTILE = (
    "<!channel> <!here> <!everyone> <!subteam^S012345|@team> <@U024BE7LH> <#C024BE7LR|general> "
    "<https://evil.example|click here> <mailto:x@evil.example|mail> <script>alert(1)</script> "
    "@channel \x1b[2J\u202egnp.exe\x07 \r\nBcc: victim@evil.example\r\nX-Injected: 1"
)
SLACK_PATH = "/services/T0000/B0000/s3cr3tT0k3n0000000000000"
FORMATS = ("text", "markdown", "html")


def alert(channel: str, *, rule: str = "r", severity: Severity = Severity.HIGH, story: int | None = 7) -> Alert:
    return Alert(
        delivery_id=1,
        channel=channel,
        rule_id=rule,
        rule_title=f"Rule {rule}",
        severity=severity,
        reasons=(f'title contains "{HOSTILE}"',),
        feed_id="news",
        feed_title=f"News {HOSTILE}",
        item_title=HOSTILE,
        item_link="https://news.example/a",
        item_text=f"Lead: {HOSTILE}",
        published_at=NOW,
        snippet=f"Lead: **invitation to comment** {HOSTILE}",
        entities=(f"Evil {HOSTILE}",),
        story_id=story,
        created_at=NOW,
    )


def messages(channel: Channel) -> dict[str, Message]:
    """One alert, the merged form of three rules on one story, and a digest of both."""
    renderer = Renderer({channel.name: channel})
    three = [alert(channel.name, rule=f"rule-{n}", severity=s) for n, s in enumerate(Severity)][:3]
    [merged] = merge_alerts(three)
    digest = Digest(
        1, channel.name, NOW, NOW - timedelta(days=1), (*three, alert(channel.name, story=None, rule="loner"))
    )
    return {
        "alert": renderer.render(alert(channel.name), channel),
        "merged": renderer.render(merged, channel),
        "digest": renderer.render_digest(digest, channel),
    }


@pytest.fixture
def slack(feed_server: Any) -> Iterator[str]:
    original = NotifySlack.webhook_url
    NotifySlack.webhook_url = feed_server.url("/services").rstrip("/")
    feed_server.route(SLACK_PATH, method="POST", body="ok")
    try:
        yield "slack://T0000/B0000/s3cr3tT0k3n0000000000000"
    finally:
        NotifySlack.webhook_url = original


def assert_inert_for_slack(payload: str) -> None:
    """Slack reads control sequences only between real angle brackets; our only one is the item link."""
    sequences = re.findall(r"<([^<>]*)>", payload)
    assert all(s.startswith("https://news.example/a") for s in sequences), sequences
    for mention in ("!channel", "!here", "!everyone", "!subteam", "@U024BE7LH", "#C024BE7LR", "evil.example|"):
        assert f"<{mention}" not in payload
    assert "@channel" not in payload  # a bare @channel is a mention to Slack's legacy parser
    assert "\x1b" not in payload and "\u202e" not in payload and "\x07" not in payload


@pytest.mark.parametrize("fmt", FORMATS)
def test_slack_alerts_merged_alerts_and_digests_are_inert(feed_server: Any, slack: str, fmt: str) -> None:
    channel = Channel("team-slack", "apprise", (slack,), format=fmt)
    for kind, message in messages(channel).items():
        before = len(feed_server.requests_for(SLACK_PATH, method="POST"))
        result = deliver(channel, message)
        assert result.ok, (kind, result.error)
        for request in feed_server.requests_for(SLACK_PATH, method="POST")[before:]:
            payload = json.loads(request.body)
            assert_inert_for_slack(json.dumps(payload, ensure_ascii=False))
            assert payload["attachments"][0]["text"], kind


@pytest.mark.parametrize("fmt", FORMATS)
def test_email_subject_cannot_carry_headers_and_bodies_carry_no_markup(smtp_sink: Any, fmt: str) -> None:
    channel = Channel("legal-email", "apprise", (smtp_sink.mailto_url(),), format=fmt)
    sent = messages(channel)
    for message in sent.values():
        assert deliver(channel, message).ok
    received = smtp_sink.wait_for(len(sent))
    for mail in received:
        # One Subject, on one line; the feed's "Bcc:" and "X-Injected:" are words in it, not headers.
        assert mail.get_all("Subject") and len(mail.get_all("Subject")) == 1
        assert mail["Bcc"] is None and mail["X-Injected"] is None
        assert "\r" not in mail["Subject"] and "\n" not in mail["Subject"]
        assert mail.get_all("To") == ["alerts@example.test"]
        for part in mail.walk():
            if part.get_content_maintype() != "text":
                continue
            body = part.get_content()
            assert "\x1b" not in body and "\u202e" not in body and "\x07" not in body
            if part.get_content_type() == "text/html":
                assert "<script" not in body.lower() and "&lt;script&gt;" in body
                assert set(re.findall(r'href="([^"]*)"', body)) <= {"https://news.example/a"}
                assert not re.search(
                    r"<(?!/?(?:a|p|br|strong|em|b|i|ul|ol|li|h\d|div|span|table|tr|td|th|hr|small|blockquote|code|pre)\b)",
                    body,
                )


def test_json_webhook_is_valid_json_without_control_characters(feed_server: Any) -> None:
    feed_server.route("/hook", method="POST", body="ok")
    for fmt in FORMATS:
        channel = Channel("team-hook", "apprise", (f"json://127.0.0.1:{feed_server.port}/hook",), format=fmt)
        for kind, message in messages(channel).items():
            before = len(feed_server.requests_for("/hook", method="POST"))
            assert deliver(channel, message).ok, (fmt, kind)
            [request] = feed_server.requests_for("/hook", method="POST")[before:]
            text = request.body.decode("utf-8")
            payload = json.loads(text)  # strict JSON: raises on a raw control character
            assert isinstance(payload, dict) and payload["title"] and payload["message"]
            strings = [v for v in payload.values() if isinstance(v, str)]
            for value in strings:
                assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", value), (
                    fmt,
                    kind,
                    value,
                )
            assert "\n" not in payload["title"], (fmt, kind)
