"""Everything from a feed is untrusted: a headline crafted to ping a Slack channel, inject links
or markup, or run script in an email must arrive inert. Real apprise, real loopback receivers:
the Slack plugin is aimed at the loopback server through its endpoint class attribute."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from apprise.plugins.slack import NotifySlack

from watcher.model import Alert, Channel, Message, Severity
from watcher.notify.deliver import deliver
from watcher.notify.render import Renderer

HOSTILE = (
    "<!channel> <script>alert(1)</script> *bold* <https://evil.example|click here> [x](https://evil.example) @here"
)
SLACK_PATH = "/services/T0000/B0000/s3cr3tT0k3n0000000000000"


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
        snippet=f"Lead: **invitation to comment** {HOSTILE}",
    )


def render(channel: Channel) -> Message:
    return Renderer({channel.name: channel}).render(alert(channel.name), channel)


@pytest.fixture
def slack_at(feed_server: Any) -> Iterator[str]:
    original = NotifySlack.webhook_url
    NotifySlack.webhook_url = feed_server.url("/services").rstrip("/")
    feed_server.route(SLACK_PATH, method="POST", body="ok")
    try:
        yield "slack://T0000/B0000/s3cr3tT0k3n0000000000000"
    finally:
        NotifySlack.webhook_url = original


def sent_to_slack(feed_server: Any, channel: Channel) -> dict[str, Any]:
    result = deliver(channel, render(channel))
    assert result.ok, result.error
    [request] = feed_server.requests_for(SLACK_PATH, method="POST")
    payload: dict[str, Any] = json.loads(request.body)
    assert_inert_for_slack(json.dumps(payload, ensure_ascii=False))
    return payload


def assert_inert_for_slack(text: str) -> None:
    # Slack only acts on <!channel>, <@user> and <url|text> written with real angle brackets.
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<script>" not in text
    links = re.findall(r"<([^<>|]*)[|>]", text)
    assert all(link.startswith("https://news.example/") for link in links), links
    assert not re.search(r"<[^<>|\s]*evil\.example", text)  # in a label, as text, is fine


def test_slack_text_payload_is_inert(feed_server: Any, slack_at: str) -> None:
    payload = sent_to_slack(feed_server, Channel("team-slack", "apprise", (slack_at,), format="text"))
    assert payload["mrkdwn"] is False  # *bold* stays asterisks
    assert "*bold*" in payload["attachments"][0]["text"]


def test_slack_markdown_payload_is_inert(feed_server: Any, slack_at: str) -> None:
    payload = sent_to_slack(feed_server, Channel("team-slack", "apprise", (slack_at,), format="markdown"))
    assert payload["mrkdwn"] is True
    body = payload["attachments"][0]["text"]
    # The headline is linked to the item, our own markers are bold, the feed's asterisks escaped.
    assert body.startswith("<https://news.example/a|&lt;!channel&gt; ")
    assert "*invitation to comment*" in body
    assert "\\*bold\\*" in body and "*bold*" not in body.replace("\\*bold\\*", "")
    # @here reaches Slack with a word joiner in it, so no service reads it as a mention.
    assert "@here" not in body and "@\u2060here" in body
    # The title is plain text, which Slack shows as it is: asterisks and all, never as markup.
    assert payload["attachments"][0]["title"].startswith("[HIGH] CMA invitation to comment: &lt;")


def test_email_text_is_plain_text(smtp_sink: Any) -> None:
    channel = Channel("legal-email", "apprise", (smtp_sink.mailto_url(),), format="text")
    result = deliver(channel, render(channel))
    assert result.ok, result.error
    smtp_sink.wait_for(1)
    [message] = smtp_sink.messages
    assert not any(part.get_content_type() == "text/html" for part in message.walk())
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "<script>alert(1)</script>" in body  # shown as text, never as HTML
    assert "\n" not in message["subject"]


def test_email_html_is_escaped_and_has_a_readable_text_part(smtp_sink: Any) -> None:
    channel = Channel("legal-email", "apprise", (smtp_sink.mailto_url(),), format="html")
    result = deliver(channel, render(channel))
    assert result.ok, result.error
    smtp_sink.wait_for(1)
    [message] = smtp_sink.messages
    assert "\n" not in message["subject"] and message["subject"].startswith("[HIGH] CMA invitation to comment: ")
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert set(re.findall(r'href="([^"]*)"', html)) == {"https://news.example/a"}
    # apprise builds the text/plain part from the HTML: the headline, source and link are there.
    text = message.get_body(preferencelist=("plain",)).get_content()
    # @here carries an invisible word joiner: an html channel may be a chat service too.
    assert HOSTILE.replace("@here", "@\u2060here") in text
    assert "https://news.example/a" in text
    assert "News · 2026-11-28 00:00 UTC" in text
