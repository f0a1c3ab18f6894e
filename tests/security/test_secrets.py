"""No secret leaves the process: channel URLs, tokens and passwords configured through ``${VAR}``
never appear in logs, CLI output, errors, tracebacks, metrics, probes or the database, even after
everything that can fail has failed.

One daemon run does the failing: the Slack receiver answers 500, the webhook receiver is down,
the SMTP sink refuses AUTH, one feed is unreachable, and the parse worker is killed mid-run. Then
every command an operator would reach for runs against the same config and database, and every
byte they printed (plus every text column of every table) is searched for each secret, raw,
URL-encoded and form-encoded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.e2e.helpers import RULES, atom, cma_entries, run_cli

NOW = datetime.now(UTC)
SLACK_TOKEN = "xoxbSlackT0kenQ7w1zv"
SMTP_PASSWORD = "Sm7p/Pa$$:w0rd@Vault"  # characters that need URL-encoding in a mailto URL
BEARER = "Bearer-9f8e7d6c5b4a3f2e"
SECRETS = {"slack token": SLACK_TOKEN, "smtp password": SMTP_PASSWORD, "bearer token": BEARER}

# Aims apprise's Slack plugin at the loopback receiver, as tests/integration/test_escaping.py does
# in-process; the daemon is a child process, so the seam is set before the CLI starts.
BOOT = """
import os, sys
from apprise.plugins.slack import NotifySlack
NotifySlack.webhook_url = os.environ["TEST_SLACK_ENDPOINT"]
from watcher.cli import main
sys.argv[0] = "watcher"
main(sys.argv[1:])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def forms(secret: str) -> set[str]:
    """The ways a secret can be spelled in text: raw, percent-encoded, form-encoded."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}


def assert_no_secret(where: str, text: str) -> None:
    for name, secret in SECRETS.items():
        for form in forms(secret):
            assert form not in text, f"{name} ({form!r}) leaked in {where}: ...{_around(text, form)}..."


def _around(text: str, needle: str) -> str:
    at = text.find(needle)
    return text[max(0, at - 200) : at + len(needle) + 200]


@dataclass
class Setup:
    config: Path
    db: Path
    env: dict[str, str]
    metrics_port: int


@pytest.fixture
def setup(tmp_path: Path, feed_server: Any, smtp_sink: Any) -> Setup:
    # No validators and a short interval: every poll parses again, so a killed parse worker shows.
    entries = atom(cma_entries(NOW, total=6, matching=2), base=feed_server.url("").rstrip("/"))
    feed_url = feed_server.feed("/cma.atom", entries)
    slack_path = f"/services/T0000/B0000/{SLACK_TOKEN}"
    feed_server.route(slack_path, method="POST", status=500, body=f"server error for {slack_path}")
    down = free_port()  # nothing listens here: the webhook receiver is down
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TEST_SLACK_ENDPOINT": feed_server.url("/services").rstrip("/"),
        "WATCHER_SLACK_URL": f"slack://T0000/B0000/{SLACK_TOKEN}",
        # aiosmtpd refuses AUTH without TLS, so the login fails with the password in hand.
        "WATCHER_MAIL_URL": (
            f"mailto://watcher:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:{smtp_sink.port}"
            "?mode=insecure&from=watcher@example.test&to=legal@example.test&cto=3"
        ),
        "WATCHER_HOOK_URL": f"json://127.0.0.1:{down}/hook?+Authorization={quote('Bearer ' + BEARER)}",
        "WATCHER_BEARER": BEARER,
    }
    env.pop("WATCHER_CONFIG", None)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cma.toml").write_text(RULES)
    db = tmp_path / "w.db"
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f"""\
rules_dir = "rules"

[database]
url = "sqlite:///{db}"

[http]
connect_timeout = "2s"
read_timeout = "2s"
deadline = "5s"

[poll]
check_every = "1s"
default_interval = "15m"
parse_workers = 1

[delivery]
default_channels = ["slack", "email", "hook"]
check_every = "1s"
backoff_initial = "1s"
max_attempts = 2

[log]
level = "debug"
format = "json"

[server]
listen = "127.0.0.1:{port}"

[channels.slack]
urls = ["${{WATCHER_SLACK_URL}}"]
format = "markdown"

[channels.email]
urls = ["${{WATCHER_MAIL_URL}}"]

[channels.hook]
urls = ["${{WATCHER_HOOK_URL}}"]

[[feed]]
id = "cma-news"
url = "{feed_url}"
interval = "2s"

[[feed]]
id = "gone"
url = "http://127.0.0.1:{down}/feed.atom"
""")
    return Setup(config, db, env, port)


@pytest.fixture
def daemon(setup: Setup, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", BOOT, "--debug", "--config", str(setup.config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=setup.env,
        cwd=tmp_path,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=10)


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met before the deadline")


def dead_deliveries(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM deliveries WHERE status = 'failed'").fetchone()[0])
        except sqlite3.OperationalError:  # schema not created yet
            return 0


def get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def every_text_in(db: Path) -> str:
    """Every text (and blob) value of every table, one per line."""
    out: list[str] = []
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # table names from sqlite_master
                for value in row:
                    if isinstance(value, bytes):
                        out.append(value.decode("utf-8", "replace"))
                    elif isinstance(value, str):
                        out.append(value)
    return "\n".join(out)


def test_no_secret_in_any_output_after_every_failure(
    feed_server: Any,
    setup: Setup,
    daemon: subprocess.Popen[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2 matching items x 3 channels, each refused twice (max_attempts = 2): six dead letters.
    wait_until(lambda: dead_deliveries(setup.db) >= 6, timeout=60)
    probes = {path: get(setup.metrics_port, path) for path in ("/healthz", "/readyz", "/metrics", "/nowhere")}
    assert "watcher_" in probes["/metrics"]
    workers = children(daemon.pid)
    for pid in workers:  # a crash in the parse worker: the pool is replaced, and polling goes on
        os.kill(pid, signal.SIGKILL)
    assert workers, "the parse worker pool was not running"
    polled = len(feed_server.requests_for("/cma.atom"))
    wait_until(lambda: len(feed_server.requests_for("/cma.atom")) >= polled + 2, timeout=30)
    os.kill(daemon.pid, signal.SIGHUP)  # a reload, which logs the config it loaded
    time.sleep(1.5)
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=30)
    # The secrets were in use (the receivers were reached through them) and every failure was
    # logged with its reason. (Crash tracebacks are checked below, from the CLI's own crashes.)
    assert feed_server.requests_for(f"/services/T0000/B0000/{SLACK_TOKEN}", method="POST")
    for event in ('"delivery.failed"', '"feed.failed"', '"config.reloaded"'):
        assert event in err, event
    assert_no_secret("`watcher run` stdout", out)
    assert_no_secret("`watcher run` stderr (JSON logs, debug level, tracebacks)", err)
    for path, body in probes.items():
        assert_no_secret(f"GET {path}", body)

    for name, value in setup.env.items():
        if name.startswith(("WATCHER_", "TEST_")):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(setup.config.parent)
    cfg = str(setup.config)
    commands = [
        ("check",),
        ("alerts",),
        ("alerts", "--failed"),
        ("alerts", "--json"),
        ("alerts", "--explain", "invitation to comment"),
        ("alerts", "--explain", "invitation to comment", "--json"),
        ("feeds",),
        ("feeds", "--json"),
        ("routes", "test", "--rule", "cma-itc-ai"),
        ("notify-test", "slack"),
        ("notify-test", "email"),
        ("notify-test", "hook"),
    ]
    for args in commands:
        for debug in ((), ("--debug",)):
            result = run_cli(capsys, *debug, "--config", cfg, *args)
            assert_no_secret(f"`watcher {' '.join((*debug, *args))}` (exit {result.code})", result.out + result.err)
    assert_no_secret("the database", every_text_in(setup.db))


BAD_CONFIGS = {
    "a channel URL given as a string": 'urls = "${WATCHER_SLACK_URL}"',
    "an unknown option next to the secret": 'urls = ["${WATCHER_SLACK_URL}"]\nformat = "${WATCHER_BEARER}"',
    "an unknown apprise scheme": 'urls = ["nosuchservice://${WATCHER_BEARER}@example.test"]',
    "a malformed URL": 'urls = ["json://[::1${WATCHER_BEARER}/x"]',
    "a secret as the time zone": 'urls = ["${WATCHER_SLACK_URL}"]\ntimezone = "${WATCHER_BEARER}"',
    "a secret as the schedule": 'urls = ["${WATCHER_SLACK_URL}"]\nmode = "digest"\nschedule = "${WATCHER_BEARER}"',
    "a secret as the rate": 'urls = ["${WATCHER_SLACK_URL}"]\nrate_limit = "${WATCHER_BEARER}"',
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_config_names_the_field_not_the_secret(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHER_SLACK_URL", f"slack://T0000/B0000/{SLACK_TOKEN}")
    monkeypatch.setenv("WATCHER_BEARER", BEARER)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cma.toml").write_text(RULES)
    config = tmp_path / "config.toml"
    config.write_text(f'rules_dir = "rules"\n\n[channels.legal]\n{BAD_CONFIGS[case]}\n')
    for debug in ((), ("--debug",)):
        for command in (("check",), ("notify-test", "legal")):
            result = run_cli(capsys, *debug, "--config", str(config), *command)
            shown = result.out + result.err
            assert_no_secret(f"`watcher {' '.join(command)}` on {case}", shown)
            if result.code != 0:
                assert "legal" in shown or "config.toml" in shown, shown  # the error names what to fix


def test_a_feed_url_with_a_token_from_the_environment_is_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A private feed authorised by a token in its query string, refused as a URL: the message says
    # which feed and why, without the token.
    monkeypatch.setenv("WATCHER_FEED_URL", f"ftp://feeds.example.test/private?token={BEARER}")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cma.toml").write_text(RULES)
    config = tmp_path / "config.toml"
    config.write_text('rules_dir = "rules"\n\n[[feed]]\nid = "private"\nurl = "${WATCHER_FEED_URL}"\n')
    result = run_cli(capsys, "--config", str(config), "check")
    assert result.code != 0
    assert "config.toml:" in result.out + result.err
    assert_no_secret("`watcher check` on a bad feed URL", result.out + result.err)


def test_json_logs_of_a_failed_delivery_carry_no_secret(smtp_sink: Any) -> None:
    # The same check one level down, without a process: the delivery error itself is clean.
    from watcher.model import Channel
    from watcher.notify.deliver import deliver
    from watcher.notify.render import Renderer
    from watcher.notify.samples import sample_alert

    url = (
        f"mailto://watcher:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:{smtp_sink.port}"
        "?mode=insecure&from=a@example.test&to=b@example.test&cto=3"
    )
    channel = Channel("legal-email", "apprise", (url,), format="text")
    result = deliver(channel, Renderer({channel.name: channel}).render(sample_alert(channel.name, NOW), channel))
    assert not result.ok
    assert_no_secret("DeliveryResult.error", json.dumps(str(result.error)))


@pytest.mark.parametrize("port", ["1", "5432"])
def test_a_database_password_is_masked_when_the_database_refuses(
    port: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1: nothing listens. 5432: PostgreSQL answers, but the database does not exist.
    monkeypatch.setenv("WATCHER_DB_PASSWORD", quote(SMTP_PASSWORD, safe=""))  # URL-encoded, as a URL needs
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cma.toml").write_text(RULES)
    config = tmp_path / "config.toml"
    url = f"postgresql://watcher:${{WATCHER_DB_PASSWORD}}@127.0.0.1:{port}/no_such_database_for_watcher"
    config.write_text(f'rules_dir = "rules"\n\n[database]\nurl = "{url}"\n')
    for debug in ((), ("--debug",)):
        for command in (("alerts",), ("feeds",), ("poll", "--once"), ("db", "status"), ("check",)):
            try:
                result = run_cli(capsys, *debug, "--config", str(config), *command)
                shown = result.out + result.err
            except Exception:  # a crash: what the interpreter would print is the traceback
                captured = capsys.readouterr()
                shown = captured.out + captured.err + traceback.format_exc()
            assert_no_secret(f"`watcher {' '.join((*debug, *command))}` with the database refusing", shown)
