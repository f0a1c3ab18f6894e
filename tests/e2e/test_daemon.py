"""The daemon as a process: it polls, delivers once, survives failing feeds, and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import atom, cma_entries, write_setup

NOW = datetime.now(UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(config: Path) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher.cli", "--config", str(config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met before the deadline")


def test_daemon_delivers_once_and_stops_on_sigterm(
    tmp_path: Path, feed_server: Any, smtp_sink: Any, daemon: Any
) -> None:
    url = feed_server.feed("/cma.atom", atom(cma_entries(NOW)), etag='"v1"')
    # A process pool for parsing, as on a busy server: items must survive the trip between processes.
    config = write_setup(tmp_path, url, [smtp_sink.mailto_url()], f"sqlite:///{tmp_path}/w.db", parse_workers=1)
    proc = daemon(config)
    smtp_sink.wait_for(3, timeout=30)
    # Several more scheduler ticks: nothing new may go out.
    polled = len(feed_server.requests_for("/cma.atom"))
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert len(smtp_sink.messages) == 3
    assert "daemon.stopped" in err
    assert polled >= 1


def test_daemon_survives_failing_feeds_and_exits_on_ctrl_c(tmp_path: Path, daemon: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}/feed.xml"
    config = write_setup(
        tmp_path,
        dead,
        ["json://127.0.0.1:9/hook"],
        f"sqlite:///{tmp_path}/w.db",
        extra=f'\n[[feed]]\nid = "second"\nurl = "{dead}?b"\n',
    )
    proc = daemon(config)
    assert proc.stderr is not None
    seen: list[str] = []

    def failed_twice() -> bool:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        seen.append(line)
        return sum("feed.failed" in s for s in seen) >= 2

    wait_until(failed_twice, timeout=30)
    assert proc.poll() is None  # still running
    failures = [s for s in seen if "feed.failed" in s]
    assert any("cma-news" in s for s in failures) and any("second" in s for s in failures)
    assert all("network" in s for s in failures)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def test_sighup_reloads_and_keeps_last_good_rules(
    tmp_path: Path, feed_server: Any, smtp_sink: Any, daemon: Any
) -> None:
    url = feed_server.feed("/cma.atom", atom(cma_entries(NOW, total=3, matching=0)), etag='"v1"')
    config = write_setup(tmp_path, url, [smtp_sink.mailto_url()], f"sqlite:///{tmp_path}/w.db")
    proc = daemon(config)
    assert proc.stderr is not None
    lines: list[str] = []

    def saw(event: str) -> Any:
        def check() -> bool:
            lines.append(proc.stderr.readline())  # type: ignore[union-attr]
            return event in lines[-1]

        return check

    wait_until(saw("feed.polled"))
    rules = tmp_path / "rules" / "cma.toml"
    good = rules.read_text()
    rules.write_text(good.replace("severity =", "severty ="))
    proc.send_signal(signal.SIGHUP)
    wait_until(saw("config.reload_failed"))
    assert "severty" in lines[-1]
    assert proc.poll() is None
    rules.write_text(good)
    proc.send_signal(signal.SIGHUP)
    wait_until(saw("config.reloaded"))
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one series in the Prometheus text format, or None if absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        series, _, value = line.rpartition(" ")
        if series == (f"{name}{{{wanted}}}" if labels else name):
            return float(value)
    return None


def test_health_readiness_and_metrics(tmp_path: Path, feed_server: Any, smtp_sink: Any, daemon: Any) -> None:
    port = free_port()
    url = feed_server.feed("/cma.atom", atom(cma_entries(NOW)), etag='"v1"')
    config = write_setup(
        tmp_path,
        url,
        [smtp_sink.mailto_url()],
        f"sqlite:///{tmp_path}/w.db",
        extra=f'\n[server]\nlisten = "127.0.0.1:{port}"\n',
    )
    base = f"http://127.0.0.1:{port}"
    proc = daemon(config)
    wait_until(lambda: _get(f"{base}/healthz")[0] == 200)
    wait_until(lambda: _get(f"{base}/readyz") == (200, "ready\n"))
    smtp_sink.wait_for(3, timeout=30)

    def delivered() -> bool:
        text = _get(f"{base}/metrics")[1]
        return _sample(text, "watcher_deliveries_total", channel="email", result="sent") == 3

    wait_until(delivered)
    status, text = _get(f"{base}/metrics")
    assert status == 200
    assert _sample(text, "watcher_feed_polls_total", feed="cma-news", result="updated") == 1
    assert _sample(text, "watcher_items_total", feed="cma-news", kind="new") == 20
    assert _sample(text, "watcher_matches_total", rule="cma-itc-ai", decision="alerted") == 3
    assert _sample(text, "watcher_feed_consecutive_failures", feed="cma-news") == 0
    assert (_sample(text, "watcher_feed_last_success_timestamp_seconds", feed="cma-news") or 0) > NOW.timestamp() - 60
    assert _sample(text, "watcher_outbox_pending") == 0
    assert _sample(text, "watcher_outbox_oldest_pending_seconds") == 0
    assert _sample(text, "watcher_poll_duration_seconds_count", feed="cma-news") == 1
    assert (_sample(text, "watcher_match_duration_seconds_count") or 0) >= 1
    assert "127.0.0.1:" + str(smtp_sink.port) not in text  # no channel URL in any label

    assert _get(f"{base}/readyz")[0] == 200
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert _get(f"{base}/healthz")[0] == 0  # the server went with the process


def test_sigterm_during_a_busy_poll_exits_cleanly(tmp_path: Path, feed_server: Any, daemon: Any) -> None:
    """Stopped mid-cycle, with some feeds answered and others still waiting on a slow server: the
    process exits 0 within the grace period, and each feed is either stored whole or not at all."""
    fast = [
        feed_server.feed(f"/fast{i}.atom", atom(cma_entries(NOW, total=5, matching=1)), etag=f'"f{i}"')
        for i in range(5)
    ]
    slow = [feed_server.route(f"/slow{i}.atom", body=atom(cma_entries(NOW, total=5)), delay=30) for i in range(5)]
    extra = "".join(f'\n[[feed]]\nid = "feed{i}"\nurl = "{url}"\n' for i, url in enumerate(fast + slow))
    db = tmp_path / "w.db"
    config = write_setup(tmp_path, fast[0], ["json://127.0.0.1:9/hook"], f"sqlite:///{db}", extra=extra)
    config.write_text(
        config.read_text()
        .replace('deadline = "5s"', 'deadline = "60s"\nmax_per_host = 20')
        .replace('read_timeout = "2s"', 'read_timeout = "60s"')
    )
    proc = daemon(config)
    wait_until(
        lambda: len(feed_server.requests_for("/slow4.atom")) >= 1 and len(feed_server.requests_for("/fast4.atom")) >= 1
    )
    time.sleep(1.0)  # the fast feeds are stored; the slow ones are mid-request
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    stopped_in = time.monotonic() - started
    assert proc.returncode == 0, err[-2000:]
    assert "daemon.stopped" in err
    assert stopped_in < 15  # the grace period (3 s) and closing, not the 30 s the server would take
    with sqlite3.connect(db) as conn:
        counts = dict(conn.execute("select feed_id, count(*) from items group by feed_id").fetchall())
    assert all(n == 5 for n in counts.values()), counts  # whole polls only
    assert not any(f"feed{i}" in counts for i in range(5, 10))  # the interrupted ones stored nothing
