"""Feed text reaching the operator's terminal and the log stream, through the real commands: a
loopback feed whose headline carries terminal escapes (clear screen, an OSC 8 hyperlink, a bell),
a right-to-left override, a CR LF that would forge a log line, and Rich console markup (which
would otherwise become escapes of our own making). The console is forced to act as a terminal,
so what Rich would send to a real one is what is checked.

tests/unit/test_inert.py covers the console class and the log processor on their own.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from rich.color import ColorSystem

from tests.e2e.helpers import RULES, run_cli
from watcher.cli import common

EVIL_XML = (
    "[link=https://evil.example][blink]CMA[/blink][/link] invitation to comment on AI &#x1b;[2J&#x1b;]8;;https://evil.example&#x7;here&#x1b;]8;;&#x7; "
    "&#x202e;gnp.exe&#x2066; &#13;&#10;{&quot;event&quot;: &quot;forged&quot;, &quot;level&quot;: &quot;error&quot;} "
    "[link=https://evil.example]click[/link] [blink red]now[/]"
)
EVIL_TEXT = (
    "[link=https://evil.example][blink]CMA[/blink][/link] invitation to comment on AI \x1b[2J\x1b]8;;https://evil.example\x07here\x1b]8;;\x07 "
    '\u202egnp.exe\u2066 \r\n{"event": "forged", "level": "error"} '
    "[link=https://evil.example]click[/link] [blink red]now[/]"
)
# What a terminal would act on if feed text reached it: ED (clear), OSC (hyperlinks, titles), BEL,
# SGR blink and conceal (Rich's rendering of "[blink]", "[conceal]"), and the bidi controls.
ACTIVE = re.compile(r"\x1b\[2J|\x1b\]|\x07|\x1b\[(?:[0-9;]*;)?[568](?:;[0-9;]*)?m|[\u202a-\u202e\u2066-\u2069]")


def rss(base: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>News &#x1b;[31mred&#x202e;</title><link>{base}/</link>
<description>d</description>
<item><guid>hostile-1</guid><pubDate>{format_datetime(datetime.now(UTC))}</pubDate><title>{EVIL_XML}</title><link>{base}/a?x=&#x1b;[2J</link>
<description>The Competition and Markets Authority (CMA) invitation to comment on AI. {EVIL_XML}</description>
</item>
</channel></rss>"""


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rich writes styles and hyperlinks only to a terminal; capsys is not one.
    monkeypatch.setattr(common.out, "_force_terminal", True)
    monkeypatch.setattr(common.out, "_color_system", ColorSystem.TRUECOLOR)
    monkeypatch.setattr(common.out, "_width", 240)  # wide enough that no headline is cut


def setup(tmp_path: Path, feed_server: Any, fmt: str) -> Path:
    base = feed_server.url("").rstrip("/")
    feed = feed_server.route("/news.rss", body=rss(base), headers={"content-type": "application/rss+xml"})
    feed_server.route(
        "/broken.rss", body=f"<html><title>{EVIL_XML}</title></html>", headers={"content-type": "text/html"}
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cma.toml").write_text(RULES)
    config = tmp_path / "config.toml"
    config.write_text(f"""\
rules_dir = "rules"

[database]
url = "sqlite:///{tmp_path}/w.db"

[log]
level = "info"
format = "{fmt}"

[delivery]
default_channels = ["console"]

[[feed]]
id = "news"
url = "{feed}"

[[feed]]
id = "broken"
url = "{base}/broken.rss"
""")
    return config


def assert_inert(where: str, text: str) -> None:
    found = ACTIVE.search(text)
    assert found is None, (
        f"{where}: {found.group()!r} in ...{text[max(0, found.start() - 120) : found.end() + 60]!r}..."
    )


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_commands_show_feed_text_inert(
    fmt: str, tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str], terminal: None
) -> None:
    config = str(setup(tmp_path, feed_server, fmt))
    polled = run_cli(capsys, "--config", config, "poll", "--once")
    assert "here" in polled.out, polled  # the console channel printed the alert
    assert_inert("poll --once stdout (console channel and summary)", polled.out)
    assert_inert("poll --once stderr (logs)", polled.err)
    if fmt == "json":
        # One JSON object per line: the feed's CR LF did not start a line of its own.
        for line in polled.err.splitlines():
            if line.startswith("{"):
                assert json.loads(line).get("event") != "forged", line
        assert not any(line.startswith('{"event": "forged"') for line in polled.err.splitlines())
    for args in (
        ("alerts",),
        ("alerts", "--failed"),
        ("alerts", "--explain", "invitation to comment"),
        ("feeds",),
        ("routes", "test", "--rule", "cma-itc-ai"),
    ):
        result = run_cli(capsys, "--config", config, *args)
        assert result.code == 0, (args, result)
        assert_inert(f"watcher {' '.join(args)}", result.out + result.err)
        for line in result.out.splitlines():
            assert not line.lstrip().startswith('{"event": "forged"'), (args, line)
    explained = run_cli(capsys, "--config", config, "alerts", "--explain", "invitation to comment")
    assert "[link=https://evil.example]" in explained.out  # Rich markup in feed text is text


def test_rich_markup_in_feed_text_is_shown_as_text(
    tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str], terminal: None
) -> None:
    # Feed text printed as Rich markup loses its brackets and gains styles (blink) of our making.
    config = str(setup(tmp_path, feed_server, "json"))
    run_cli(capsys, "--config", config, "poll", "--once")
    for args in (("alerts",), ("alerts", "--explain", "invitation to comment")):
        shown = run_cli(capsys, "--config", config, *args).out
        assert "[link=https://evil.example][blink]CMA" in shown, (args, shown)


def test_rules_test_shows_saved_input_inert(tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal: None) -> None:
    # Saved inputs are raw files: a .txt may carry any byte, and its first line is the title.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cma.toml").write_text(RULES)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "evil\x1b[2J\u202e.txt").write_text(f"{EVIL_TEXT}\nThe CMA invitation to comment on AI. {EVIL_TEXT}\n")
    (saved / "evil.json").write_text(json.dumps({"title": EVIL_TEXT, "text": EVIL_TEXT, "link": "https://x.example/a"}))
    for extra in ((), ("--expect-none",), ("--json",)):
        result = run_cli(capsys, "rules", "test", str(saved), "--rules", str(tmp_path / "rules"), *extra)
        assert result.code in (0, 1), result
        assert_inert(f"watcher rules test {' '.join(extra)}", result.out + result.err)
        assert "cma-itc-ai" in result.out, result.out
