"""The command line as a user meets it: one-line errors with file and line, exit codes, help."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import RULES, run_cli
from watcher.cli import cli

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
rules_dir = "rules"

[database]
url = "sqlite:///watcher.db"

[[feed]]
id = "cma-news"
url = "https://www.gov.uk/search/news-and-communications.atom"
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cma.toml").write_text(RULES)
    (tmp_path / "config.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_ok(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "check")
    assert result.code == 0, result.err
    assert "OK      config.toml (1 feeds, 1 channels)" in result.out
    assert "(1 rules)" in result.out


def test_check_renders_templates_and_names_a_broken_one(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (setup / "slack").mkdir()
    (setup / "slack" / "body.j2").write_text("{{ item.title | link(item.link) }}\n{{ alert.colour }}\n")
    config = setup / "config.toml"
    config.write_text(
        CONFIG + '\n[channels.team]\nurls = ["json://127.0.0.1:9/hook"]\nformat = "markdown"\ntemplate_dir = "slack"\n'
    )
    result = run_cli(capsys, "check")
    assert result.code == 2
    assert result.err.strip().endswith("slack/body.j2:2: alert has no attribute 'colour'"), result.err
    assert "Traceback" not in result.err
    # The daemon's own loading renders the templates too: it would not start (nor reload) on them.
    polled = run_cli(capsys, "poll", "--once")
    assert polled.code == 2 and "slack/body.j2:2:" in polled.err, polled

    (setup / "slack" / "body.j2").write_text("{{ item.title | link(item.link) }}\n")
    result = run_cli(capsys, "check")
    assert result.code == 0, result.err
    assert "channel team: markdown templates (overrides from" in result.out and "body.j2)" in result.out


def test_check_example_config(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "--config", str(ROOT / "config.example.toml"), "check")
    assert result.code == 0, result.err
    assert result.out.count("OK") >= 3


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--config", "{config}"),
        ("check", "--config={config}", "--debug"),
        ("rules", "check", "-c", "{config}"),
        ("--debug", "check", "-c", "{config}"),
    ],
)
def test_global_options_go_before_or_after_the_subcommand(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(ROOT / "config.example.toml")
    result = run_cli(capsys, *(a.format(config=config) for a in args))
    assert result.code == 0, result.err
    assert "OK" in result.out or "all passed" in result.out


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "config.toml",
            'url = "sqlite',
            'ur = "sqlite',
            'config.toml:4: [database]: unknown field "ur" (did you mean "url"?)',
        ),
        (
            "config.toml",
            "https://www.gov.uk/search/news-and-communications.atom",
            "gov.uk/news",
            'config.toml:8: feed "cma-news": "url": "gov.uk/news" is not an http(s):// or file:// URL',
        ),
        (
            "rules/cma.toml",
            'severity = "high"',
            'severity = "high"\nchanels = ["email"]',
            'rules/cma.toml:5: rule "cma-itc-ai": unknown field "chanels" (did you mean "channels"?)',
        ),
    ],
)
@pytest.mark.parametrize("command", [["check"], ["poll", "--once"], ["run"]])
def test_bad_input_is_one_line_exit_2(
    setup: Path,
    capsys: pytest.CaptureFixture[str],
    file: str,
    old: str,
    new: str,
    expected: str,
    command: list[str],
) -> None:
    path = setup / file
    path.write_text(path.read_text().replace(old, new))
    result = run_cli(capsys, *command)
    assert result.code == 2
    assert result.err.strip().splitlines() == [expected]
    assert "Traceback" not in result.err


def test_rule_naming_unknown_channel(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = setup / "rules" / "cma.toml"
    rules.write_text(rules.read_text() + 'channels = ["slack"]\n')
    result = run_cli(capsys, "check")
    assert result.code == 2
    assert (
        result.err.strip()
        == 'rules/cma.toml:1: rule "cma-itc-ai": "channels": unknown channel "slack" (known: console)'
    )


def test_missing_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WATCHER_CONFIG", raising=False)
    result = run_cli(capsys, "check")
    assert (result.code, result.err.strip()) == (2, "config.toml: file not found")


def test_config_from_environment(
    setup: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (setup / "config.toml").rename(setup / "other.toml")
    monkeypatch.setenv("WATCHER_CONFIG", str(setup / "other.toml"))
    assert run_cli(capsys, "check").code == 0


def test_debug_shows_traceback(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (setup / "config.toml").write_text("bogus = 1\n")
    result = run_cli(capsys, "--debug", "check")
    assert result.code == 2
    assert "Traceback" in result.err
    assert result.err.strip().splitlines()[-1] == 'config.toml:1: unknown field "bogus"'


def test_unknown_channel_for_notify_test(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "notify-test", "nowhere")
    assert result.code == 2
    assert "unknown channel 'nowhere'" in result.err


def test_notify_test_console(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "notify-test", "console")
    assert result.code == 0, result.err
    assert "Microsoft / Mistral AI partnership: invitation to comment (watcher test)" in result.out
    assert "OK      sent a test alert to console" in result.out


def test_feeds_and_alerts_on_empty_database(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "feeds").code == 0
    assert run_cli(capsys, "alerts").code == 0
    assert run_cli(capsys, "alerts", "--failed", "--json").out.strip() == "[]"


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    top = run_cli(capsys, "--help")
    assert top.code == 0 and "Example" in top.out
    names = list(cli.commands)  # type: ignore[attr-defined]
    assert {"run", "poll", "check", "feeds", "alerts", "notify-test"} <= set(names)
    for name in names:
        result = run_cli(capsys, name, "--help")
        assert result.code == 0, name
        assert "Example" in result.out, name
    assert "Example" in run_cli(capsys, "alerts", "retry", "--help").out


def test_poll_with_an_unreachable_database_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 1 on loopback refuses at once: the store cannot even be opened to read stored feeds.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cma.toml").write_text(RULES)
    config = tmp_path / "config.toml"
    config.write_text(
        'rules_dir = "rules"\n[database]\nurl = "postgresql://postgres@127.0.0.1:1/test"\n'
        '[[feed]]\nid = "x"\nurl = "http://127.0.0.1:9/feed"\n'
    )
    result = run_cli(capsys, "-c", str(config), "poll", "--once")
    assert result.code == 1
    assert result.err.startswith("error: cannot open the database: connection failed"), result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
