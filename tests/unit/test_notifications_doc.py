"""The default messages shown in docs/notifications.md are generated, so they stay true.

The block between the samples markers is rebuilt from the built-in templates and apprise's own
converters (Slack mrkdwn, the e-mail text part); a difference fails, and ``pytest --update-golden``
rewrites the block for review.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from apprise import NotifyFormat
from apprise.conversion import convert_between
from apprise.plugins.slack import NotifySlack

from tests.fixtures.golden import Golden
from watcher.model import Channel
from watcher.notify.render import Renderer
from watcher.notify.samples import sample_alert

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
START, END = "<!-- samples:start -->", "<!-- samples:end -->"
NOW = datetime(2026, 11, 29, 14, 25, tzinfo=UTC)


def fence(text: str, lang: str = "text") -> str:
    return f"```{lang}\n{text.rstrip()}\n```"


def samples() -> str:
    """The default Slack, e-mail and plain-text messages for the sample alert."""
    channels = {f: Channel(f"legal-{f}", format=f) for f in ("markdown", "html", "text")}
    renderer = Renderer(channels)
    slack, email, text = (renderer.render(sample_alert(c.name, NOW), c) for c in channels.values())
    parts = [
        "### Slack (format `markdown`)",
        "Title (Slack shows it as the message header, as plain text):",
        fence(slack.title),
        "Body, as watcher hands it to apprise (CommonMark):",
        fence(slack.body, "markdown"),
        "What apprise 2.3 sends Slack (mrkdwn, from `NotifySlack._commonmark_to_slack`):",
        fence(NotifySlack._commonmark_to_slack(slack.body)),
        "### E-mail (format `html`)",
        "Subject:",
        fence(email.title),
        "HTML source:",
        fence(email.body, "html"),
        "The same HTML, embedded (GitHub drops the inline styles; mail clients keep them):",
        email.body.rstrip(),
        "The text/plain part apprise derives from it (`convert_between(HTML, TEXT, body)`):",
        fence(convert_between(NotifyFormat.HTML, NotifyFormat.TEXT, email.body)),
        "### Plain text (format `text`: the console, SMS, ...)",
        fence(f"{text.title}\n\n{text.body}"),
    ]
    return "\n\n".join(parts)


def test_doc_samples_are_current(golden: Golden) -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert doc.count(START) == 1 and doc.count(END) == 1, f"{DOC} needs one {START} ... {END} block"
    head, rest = doc.split(START)
    current, tail = rest.split(END)
    wanted = f"\n\n{samples()}\n\n"
    if current == wanted:
        return
    if golden.update:
        DOC.write_text(f"{head}{START}{wanted}{END}{tail}", encoding="utf-8")
        return
    pytest.fail(
        f"the samples in {DOC} are stale; run pytest --update-golden {__file__} and review the diff",
        pytrace=False,
    )


def test_embedded_html_has_no_blank_line() -> None:
    # A blank line ends a Markdown HTML block: the rest of the e-mail would show as text.
    channel = Channel("legal-email", format="html")
    body = Renderer({"legal-email": channel}).render(sample_alert("legal-email", NOW), channel).body
    assert "\n\n" not in body.strip()
