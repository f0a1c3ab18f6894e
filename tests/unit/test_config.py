"""Config validation: exact one-line messages with file and line, env secrets, the example file."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from watcher.config import (
    ChannelConfig,
    Config,
    DatabaseConfig,
    DeliveryConfig,
    FeedConfig,
    HealthConfig,
    HttpConfig,
    LogConfig,
    PollConfig,
    ServerConfig,
    load_config,
)
from watcher.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
rules_dir = "rules"

[poll]
default_interval = "15m"

[[feed]]
id = "cma-cases"
url = "https://www.gov.uk/cma-cases.atom"
interval = "30m"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def error_of(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {}, display="config.toml")
    return str(info.value)


def test_valid_config_resolves_paths_and_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE), env={})
    assert config.rules_dir == tmp_path / "rules"
    assert config.database.url == f"sqlite:///{tmp_path.resolve()}/watcher.db"
    assert config.feeds[0].interval == timedelta(minutes=30)
    assert config.poll.default_interval == timedelta(minutes=15)
    assert "console" in config.resolved_channels


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + 'titel = "CMA"\n')
    assert error_of(path) == 'config.toml:10: feed "cma-cases": unknown field "titel" (did you mean "title"?)'


def test_unknown_section_key(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace('default_interval = "15m"', 'default_intervall = "15m"'))
    assert (
        error_of(path) == 'config.toml:4: [poll]: unknown field "default_intervall" (did you mean "default_interval"?)'
    )


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '[http]\nmax_redirects = "many"\n')
    assert error_of(path) == (
        'config.toml:11: [http]: "max_redirects": Input should be a valid integer, '
        "unable to parse string as an integer (got 'many')"
    )


def test_bad_duration(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace('"30m"', '"30 minutes"'))
    assert error_of(path) == (
        'config.toml:9: feed "cma-cases": "interval": "30 minutes" is not a duration; write it like 90s, 15m, 2h or 7d'
    )


def test_feed_url_not_a_url(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("https://www.gov.uk/cma-cases.atom", "www.gov.uk/cma-cases.atom"))
    assert error_of(path) == (
        'config.toml:8: feed "cma-cases": "url": "www.gov.uk/cma-cases.atom" is not an http(s):// or file:// URL'
    )


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '\n[[feed]]\nid = "ftc"\n')
    assert error_of(path) == 'config.toml:11: feed "ftc": missing required field "url"'


def test_toml_syntax_error_keeps_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "oops = \n")
    message = error_of(path)
    assert message.startswith("config.toml:10: invalid TOML: ")


def test_duplicate_feed_id(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '\n[[feed]]\nid = "cma-cases"\nurl = "https://example.org/feed"\n')
    assert error_of(path) == 'config.toml:12: feed "cma-cases": duplicate feed id'


def test_missing_env_var(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '\n[channels.legal-slack]\nurls = ["${SLACK_WEBHOOK_URL}"]\n')
    assert error_of(path) == (
        'config.toml:12: channel "legal-slack": "urls": environment variable SLACK_WEBHOOK_URL is not set'
    )


def test_disabled_channel_may_name_unset_env_var(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '\n[channels.legal-slack]\nurls = ["${SLACK_WEBHOOK_URL}"]\nenabled = false\n')
    config = load_config(path, env={})
    assert "legal-slack" not in config.resolved_channels


def test_env_secret_is_resolved_and_redacted(tmp_path: Path) -> None:
    secret = "https://hooks.slack.com/services/T0001/B0002/s3cr3tT0k3nValue"
    path = write(tmp_path, BASE + '\n[channels.legal-slack]\nurls = ["${SLACK_WEBHOOK_URL}"]\n')
    config = load_config(path, env={"SLACK_WEBHOOK_URL": secret})
    assert config.resolved_channels["legal-slack"].urls == (secret,)
    assert secret not in repr(config.resolved_channels["legal-slack"])
    assert config.redactor(f"failed to post to {secret}") == "failed to post to ***"
    assert "s3cr3tT0k3nValue" not in config.redactor("token s3cr3tT0k3nValue leaked")


def test_urls_and_urls_file_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("json://127.0.0.1:9/hook\n")
    text = BASE + '\n[channels.hook]\nurls = ["json://127.0.0.1:9/x"]\nurls_file = "urls.txt"\n'
    assert error_of(write(tmp_path, text)) == 'config.toml:13: channel "hook": set "urls" or "urls_file", not both'


def test_urls_file_is_read_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("# secret\njson://127.0.0.1:9/hook\n")
    config = load_config(write(tmp_path, BASE + '\n[channels.hook]\nurls_file = "urls.txt"\n'), env={})
    assert config.resolved_channels["hook"].urls == ("json://127.0.0.1:9/hook",)


def test_unknown_default_channel(tmp_path: Path) -> None:
    text = BASE + '\n[delivery]\ndefault_channels = ["slack"]\n'
    assert error_of(write(tmp_path, text)) == (
        'config.toml:12: [delivery] "default_channels": unknown channel "slack" (known: console)'
    )


def test_example_config_loads() -> None:
    config = load_config(ROOT / "config.example.toml", env={})
    assert len(config.feeds) >= 8
    assert {"cma-cases", "cma-news", "ftc-press", "doj-antitrust", "ec-presscorner"} <= {f.id for f in config.feeds}
    assert config.database.url.startswith("sqlite:///")


@pytest.mark.parametrize(
    "model",
    [
        Config,
        DatabaseConfig,
        HttpConfig,
        PollConfig,
        DeliveryConfig,
        LogConfig,
        ServerConfig,
        HealthConfig,
        FeedConfig,
        ChannelConfig,
    ],
)
def test_every_option_is_in_the_example(model: type) -> None:
    """The example config documents every option; a new option without an example fails here."""
    text = (ROOT / "config.example.toml").read_text()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if field.exclude:
            continue
        key = field.alias or name
        if key in (
            "feed",
            "channels",
            "database",
            "http",
            "poll",
            "delivery",
            "log",
            "stories",
            "route",
            "server",
            "health",
        ):
            assert re.search(rf"^#?\s*\[+{key}[\].]", text, re.M), key
        else:
            assert re.search(rf"^#?\s*{re.escape(key)} = ", text, re.M), f"{model.__name__}.{key} missing"


def test_route_to_unknown_channel(tmp_path: Path) -> None:
    text = BASE + '\n[[route]]\nseverity = "high"\nchannels = ["pager"]\n'
    assert (
        error_of(write(tmp_path, text))
        == 'config.toml:13: route #1: "channels": unknown channel "pager" (known: console)'
    )


def test_route_typo(tmp_path: Path) -> None:
    text = BASE + '\n[[route]]\nseverty = "high"\nchannels = ["console"]\n'
    assert (
        error_of(write(tmp_path, text))
        == 'config.toml:12: route #1: unknown field "severty" (did you mean "severity"?)'
    )


def test_fallback_must_be_another_channel(tmp_path: Path) -> None:
    text = BASE + '\n[channels.hook]\nurls = ["json://127.0.0.1:9/x"]\nfallback = "hook"\n'
    assert error_of(write(tmp_path, text)) == (
        'config.toml:13: channel "hook": "fallback": "hook" is the channel itself (known: console, hook)'
    )
    config = load_config(write(tmp_path, text.replace('fallback = "hook"', 'fallback = "console"')), env={})
    assert config.resolved_channels["hook"].fallback == "console"


def test_server_listen(tmp_path: Path) -> None:
    assert error_of(write(tmp_path, BASE + '\n[server]\nlisten = "localhost:http"\n')) == (
        'config.toml:12: [server]: "listen": "localhost:http" is not host:port (for example "127.0.0.1:9464")'
    )


def test_allowed_networks_reach_the_fetch_policy(tmp_path: Path) -> None:
    from watcher.app import fetch_policy

    path = write(
        tmp_path, BASE + '[http]\nblock_private_addresses = true\nallowed_networks = ["10.20.0.0/16", "fd00::5"]\n'
    )
    policy = fetch_policy(load_config(path, env={}))
    assert policy.block_private_addresses
    assert policy.allowed_networks == ("10.20.0.0/16", "fd00::5")


def test_a_bad_allowed_network_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '[http]\nallowed_networks = ["10.20.0.0/33"]\n')
    message = error_of(path)
    assert message.startswith('config.toml:11: [http]: "allowed_networks"'), message
    assert '"10.20.0.0/33" is not a network' in message
