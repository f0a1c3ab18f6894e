"""Feed text reaching the terminal and the logs cannot drive them: escapes and bidi overrides are
shown, not acted on."""

from __future__ import annotations

import io
import json

import structlog
from rich.table import Table

from watcher.cli.common import _InertConsole
from watcher.inert import inert
from watcher.logs import configure_logging

EVIL = "CMA clears deal \x1b[2J\x1b]8;;http://x\x07link\u202egnp.exe\r\nFAKE level=error"


def test_inert() -> None:
    assert inert("plain text, with\ttab and\nnewline") == "plain text, with\ttab and\nnewline"
    assert inert("a\x1b[31mb\u202ec\x9bd") == "a\\x1b[31mb\\u202ec\\x9bd"
    assert inert("one\ntwo", keep_newlines=False) == "one\\x0atwo"


def test_the_terminal_shows_escapes_in_tables_and_lines() -> None:
    buf = io.StringIO()
    console = _InertConsole(file=buf, highlight=False, soft_wrap=True, force_terminal=True)
    table = Table()
    table.add_column("title")
    table.add_row(EVIL)
    console.print(table)
    console.print(EVIL)
    shown = buf.getvalue()
    assert "\u202e" not in shown and "\x07" not in shown and "\x1b[2J" not in shown and "\x1b]8" not in shown
    assert "\\x1b[2J" in shown and "\\u202e" in shown


def test_log_lines_cannot_be_forged_or_recoloured() -> None:
    for fmt in ("console", "json"):
        stream = io.StringIO()
        configure_logging("info", fmt, stream=stream)
        structlog.get_logger("test").info("feed.polled", title=EVIL)
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1, lines  # the title's CR LF did not start a second line
        assert "\x1b" not in lines[0] and "\u202e" not in lines[0]
        if fmt == "json":
            assert json.loads(lines[0])["title"].startswith("CMA clears deal \\x1b[2J")
    configure_logging("warning")
