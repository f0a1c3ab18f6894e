"""What every command shares: the context (config path, debug), the console, output helpers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich import errors
from rich.console import Console
from rich.style import Style
from rich.text import Text

from watcher.app import Loaded, load
from watcher.config import config_path_from
from watcher.inert import inert
from watcher.logs import configure_logging


class _InertConsole(Console):
    """Every string printed (table cells included) has its control and bidi characters shown as
    escapes: feed text reaches this terminal, and must not drive it.

    Strings are also Rich markup, and a call site that forgets ``rich.markup.escape`` on feed
    text lets ``[link=https://evil.example]`` through as an OSC 8 hyperlink (a link disguised as
    any text), or ``[conceal]`` hide what follows. We never print links, blinking or hidden text,
    so those styles are dropped here, wherever they came from.
    """

    def render_str(self, text: str, **kwargs: Any) -> Any:
        rendered = super().render_str(inert(text), **kwargs)
        if isinstance(rendered, Text) and rendered.spans:
            rendered.spans = [s for s in rendered.spans if not self._is_unsafe(s.style)]
        if isinstance(rendered, Text) and self._is_unsafe(rendered.style):
            rendered.style = ""
        return rendered

    def _is_unsafe(self, style: str | Style) -> bool:
        if not style:
            return False
        try:
            found = self.get_style(style)
        except errors.StyleSyntaxError:  # not a style Rich can apply
            return False
        return bool(found.link or found.blink or found.blink2 or found.conceal)


out = _InertConsole(highlight=False, soft_wrap=True)


class Ctx:
    def __init__(self, config: str | None, debug: bool):
        self.config_path = config_path_from(config)
        self.debug = debug

    def load(self) -> Loaded:
        loaded = load(self.config_path)
        cfg = loaded.config
        configure_logging("debug" if self.debug else cfg.log.level, cfg.log.format, redactor=cfg.redactor)
        return loaded


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default))
