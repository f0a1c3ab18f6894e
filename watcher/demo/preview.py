"""The demo's HTML preview: every message it sent, rendered again by the real renderer as HTML.

Owns: recording what the outbox sends (through its ``deliver`` and ``renderer`` seams) and
writing ``preview.html``. Must not: change what is sent; the console channels get exactly what
they would without the preview.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

import jinja2

from watcher.model import Alert, Channel, DeliveryResult, Digest, Message
from watcher.notify.deliver import deliver
from watcher.notify.render import Renderer

PREVIEW_TEMPLATE = "preview.html.j2"


@dataclass(frozen=True, slots=True)
class Sent:
    """One message a channel accepted, with its HTML rendition for the preview."""

    channel: str
    at: datetime  # simulated time of the send
    message: Message
    html: Message
    alerts: tuple[Alert, ...]  # the alert, or the digest's alerts
    is_digest: bool


class PreviewRenderer(Renderer):
    """The real renderer, which also renders each message in the html format for the preview.

    An html twin of every channel (same name and timezone, built-in templates) is loaded with the
    channels themselves, so the twin's templates are compiled at start-up like any others.
    """

    def __init__(self, channels: Mapping[str, Channel]) -> None:
        self._twins = {name: replace(c, format="html", template_dir=None) for name, c in channels.items()}
        super().__init__({**channels, **{f"{name}.html": twin for name, twin in self._twins.items()}})
        self._pending: list[tuple[Message, Message, tuple[Alert, ...], bool]] = []

    def render(self, alert: Alert, channel: Channel) -> Message:
        message = super().render(alert, channel)
        self._pending.append((message, super().render(alert, self._twin(channel)), (alert,), False))
        return message

    def render_digest(self, digest: Digest, channel: Channel) -> Message:
        message = super().render_digest(digest, channel)
        self._pending.append((message, super().render_digest(digest, self._twin(channel)), digest.alerts, True))
        return message

    def take(self, message: Message) -> tuple[Message, tuple[Alert, ...], bool] | None:
        """The html rendition and alerts of a message this renderer produced (then forgotten)."""
        for index, (rendered, html, alerts, is_digest) in enumerate(self._pending):
            if rendered is message:
                del self._pending[index]
                return html, alerts, is_digest
        return None

    def _twin(self, channel: Channel) -> Channel:
        return self._twins.get(channel.name) or replace(channel, format="html", template_dir=None)


@dataclass
class Recorder:
    """The outbox's deliverer: the real one (console channels print to ``console``), and a note
    of each message the channel accepted."""

    renderer: PreviewRenderer
    clock: Callable[[], datetime]
    console: TextIO | None = None
    sent: list[Sent] = field(default_factory=list)

    def __call__(self, channel: Channel, message: Message) -> DeliveryResult:
        result = deliver(channel, message, console=self.console)
        rendered = self.renderer.take(message)
        if result.ok and rendered is not None:
            html, alerts, is_digest = rendered
            self.sent.append(Sent(channel.name, self.clock(), message, html, alerts, is_digest))
        return result


def write_preview(path: Path, sent: list[Sent], title: str) -> Path:
    """Write one self-contained HTML page showing every sent message, in order; return its path."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("watcher.demo", "data"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template(PREVIEW_TEMPLATE).render(title=title, messages=sent)
    path.write_text(html, encoding="utf-8")
    return path
