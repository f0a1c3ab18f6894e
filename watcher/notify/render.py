"""Alert -> Message. Pure: no I/O, no clock.

Everything from a feed is untrusted text: it is flattened to one line where it goes into a
title, stripped of control characters, and capped, so a headline cannot forge extra lines of
the message or flood a channel.
"""

from __future__ import annotations

import re
from datetime import datetime

from watcher.model import Alert, Message, Severity

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACE = re.compile(r"\s+")
SNIPPET_CHARS = 400


def _line(text: str, limit: int = 300) -> str:
    text = _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _snippet(text: str) -> str:
    text = _CONTROL.sub("", text).strip()
    text = re.sub(r"\n\s*\n+", "\n", text)
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"


def render_alert(alert: Alert) -> Message:
    """Render the default plain-text message for one alert."""
    severity = alert.severity.value.upper()
    label = {"follow_up": " FOLLOW-UP", "confirmed": " CONFIRMED", "update": " UPDATE"}.get(alert.kind, "")
    title = f"[{severity}{label}] {_line(alert.rule_title, 120)}: {_line(alert.item_title, 200) or '(untitled)'}"
    lines = [_line(alert.item_title) or "(untitled)"]
    if alert.item_link:
        lines.append(_line(alert.item_link, 500))
    source = f"Source: {_line(alert.feed_title, 120)}"
    if alert.published_at is not None:
        source += f" · published {alert.published_at:%Y-%m-%d %H:%M} UTC"
    lines.append(source)
    lines.append(f"Rule: {alert.rule_id} ({_line(alert.rule_title, 120)}), severity {alert.severity.value}")
    if alert.reasons:
        lines.append("Why: " + "; ".join(_line(r, 120) for r in alert.reasons[:8]))
    if alert.kind == "confirmed":
        lines.append(f"Confirmed by an official source: {_line(alert.feed_title, 120)}")
    if len(alert.sources) > 1:
        lines.append(
            f"Reported by {len(alert.sources)} sources: " + ", ".join(_line(x, 60) for x in alert.sources[:12])
        )
    snippet = _snippet(alert.item_text)
    if snippet:
        lines.extend(["", snippet])
    return Message(title=title, body="\n".join(lines), body_format="text")


def sample_alert(channel: str, now: datetime) -> Alert:
    """A realistic alert for `watcher check` (render every template) and `watcher notify-test`."""
    return Alert(
        delivery_id=0,
        channel=channel,
        rule_id="notify-test",
        rule_title="Test notification",
        severity=Severity.INFO,
        reasons=('title contains "invitation to comment"',),
        feed_id="watcher",
        feed_title="watcher",
        item_title="Microsoft / Mistral AI partnership: invitation to comment (watcher test)",
        item_link="https://www.gov.uk/cma-cases",
        item_text="If you can read this, watcher's alerts will arrive here.",
        published_at=now,
    )
