"""Everything from a feed is untrusted: a headline crafted to ping a Slack channel, inject links
or markup, or run script in an email must arrive inert. Real apprise, real loopback receivers:
the Slack plugin is aimed at the loopback server through its endpoint class attribute."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from apprise.plugins.slack import NotifySlack

from watcher.model import Alert, Channel, Severity
from watcher.notify.deliver import deliver
from watcher.notify.render import render_alert

HOSTILE = "<!channel> <script>alert(1)</script> *bold* <https://evil.example|click here> @here"


def alert(channel: str) -> Alert:
    return Alert(
        delivery_id=1,
        channel=channel,
        rule_id="r",
        rule_title="CMA invitation to comment",
        severity=Severity.HIGH,
        reasons=('title contains "invitation to comment"',),
        feed_id="news",
        feed_title="News",
        item_title=HOSTILE,
        item_link="https://news.example/a",
        item_text=f"Lead: {HOSTILE}",
        published_at=datetime(2026, 11, 28, tzinfo=UTC),
    )


@pytest.fixture
def slack_at(feed_server: Any) -> Iterator[str]:
    original = NotifySlack.webhook_url
    NotifySlack.webhook_url = feed_server.url("/services").rstrip("/")
    feed_server.route("/services/T0000/B0000/s3cr3tT0k3n0000000000000", method="POST", body="ok")
    try:
        yield "slack://T0000/B0000/s3cr3tT0k3n0000000000000"
    finally:
        NotifySlack.webhook_url = original


def test_slack_payload_is_inert(feed_server: Any, slack_at: str) -> None:
    result = deliver(Channel("team-slack", "apprise", (slack_at,)), render_alert(alert("team-slack")))
    assert result.ok, result.error
    [request] = feed_server.requests_for("/services/T0000/B0000/s3cr3tT0k3n0000000000000", method="POST")
    payload = json.loads(request.body)
    assert payload.get("mrkdwn") is False  # *bold* stays asterisks
    text = json.dumps(payload)
    # Slack only acts on <!channel>, <@user> and <url|text> written with real angle brackets.
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil.example|click here>" not in text
    assert "<script>" not in text


def test_email_is_plain_text(smtp_sink: Any) -> None:
    result = deliver(Channel("legal-email", "apprise", (smtp_sink.mailto_url(),)), render_alert(alert("legal-email")))
    assert result.ok, result.error
    smtp_sink.wait_for(1)
    [message] = smtp_sink.messages
    assert message.get_content_type() == "text/plain" or not any(
        part.get_content_type() == "text/html" for part in message.walk()
    )
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "<script>alert(1)</script>" in body  # shown as text, never as HTML
    assert "\n" not in message["subject"]
