"""The redactor masks what identifies a secret on its own, and no ordinary word.

Over-masking is not harmless: a mailto login "watcher" masked everywhere turned every log line
about `watcher feeds add` into `*** feeds add`, and "insecure" (apprise's ``mode=``) vanished
from every sentence containing it, which hides what the operator needs to read.
"""

from __future__ import annotations

from watcher.errors import ConfigError, RuleError
from watcher.redact import Redactor, secret_fragments

MAILTO = "mailto://watcher:Sm7p%2FPa%24%24%3Aw0rd%40Vault@smtp.example.test:587?mode=insecure&to=legal@example.test"
HOOK = "json://hooks.example.test/in?+Authorization=Bearer%20Bearer-9f8e7d6c5b4a3f2e"
SLACK = "slack://T0000/B0000/xoxbSlackT0kenQ7w1zv"


def test_each_secret_is_masked_in_every_spelling() -> None:
    redact = Redactor()
    redact.add_urls([MAILTO, HOOK, SLACK])
    text = (
        "login Sm7p/Pa$$:w0rd@Vault failed (Sm7p%2FPa%24%24%3Aw0rd%40Vault); "
        "header Authorization: Bearer Bearer-9f8e7d6c5b4a3f2e; POST /services/T0000/B0000/xoxbSlackT0kenQ7w1zv; "
        f"url {SLACK}; to legal@example.test"
    )
    shown = redact(text)
    for secret in ("Sm7p/Pa$$:w0rd@Vault", "Sm7p%2FPa%24", "Bearer-9f8e7d6c5b4a3f2e", "xoxbSlackT0kenQ7w1zv"):
        assert secret not in shown, shown
    assert "legal@example.test" not in shown  # an address is personal data


def test_ordinary_words_of_a_url_are_not_masked() -> None:
    redact = Redactor()
    redact.add_urls([MAILTO, HOOK])
    line = "watcher feeds add: mode insecure, Bearer tokens are masked"
    assert redact(line) == line
    assert "watcher" not in secret_fragments(MAILTO)  # the login beside a password
    assert "watcher" in secret_fragments("json://watcher@hooks.example.test/x")  # alone, a token
    assert "alerts@corp.example" in secret_fragments("mailto://alerts%40corp.example:pw@smtp.example")  # an address


def test_config_errors_are_one_line_whatever_the_file_says() -> None:
    error = RuleError('unknown top-level key "a\r\nb\u202e\x1b[2J"', "rules/x.toml", 3)
    assert str(error) == 'rules/x.toml:3: unknown top-level key "a\\x0d\\x0ab\\u202e\\x1b[2J"'
    assert "\n" not in str(ConfigError("one\ntwo", "config.toml"))
