"""Acceptance: `watcher poll --once` against a loopback feed and a loopback SMTP server,
on SQLite and PostgreSQL: exactly one email per matching item, none again, one more per new item;
a refusing SMTP server loses nothing and sends nothing twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Entry, atom, cma_entries, run_cli, write_setup

NOW = datetime.now(UTC)


def serve(feed_server: Any, entries: list[Entry], version: int) -> str:
    modified = (NOW + timedelta(minutes=version)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    return feed_server.feed("/cma.atom", atom(entries), etag=f'"v{version}"', last_modified=modified)


def test_poll_once_delivers_each_match_exactly_once(
    tmp_path: Path, db_url: str, feed_server: Any, smtp_sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = cma_entries(NOW)
    url = serve(feed_server, entries, 1)
    config = write_setup(tmp_path, url, [smtp_sink.mailto_url()], db_url)

    first = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert first.code == 0, first.err
    assert "3 sent" in first.out
    smtp_sink.wait_for(3)
    subjects = sorted(m["subject"] for m in smtp_sink.messages)
    assert len(subjects) == 3
    assert all(s.startswith("[HIGH] CMA invitation to comment on an AI partnership: ") for s in subjects)
    assert any("Microsoft / Mistral AI partnership: invitation to comment" in s for s in subjects)

    second = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert second.code == 0, second.err
    assert "not_modified" in second.out
    last = feed_server.requests_for("/cma.atom")[-1]
    assert last.headers["if-none-match"] == '"v1"'
    assert "if-modified-since" in {k.lower() for k in last.headers}
    assert len(smtp_sink.messages) == 3

    newer = Entry(
        "itc-meta-llama",
        "Meta / Scale AI partnership: invitation to comment",
        "The CMA invites comments on the Meta and Scale AI partnership.",
        NOW,
    )
    serve(feed_server, [newer, *entries], 2)
    third = run_cli(capsys, "--config", str(config), "poll", "--once", "--json")
    assert third.code == 0, third.err
    summary = json.loads(third.out)
    assert summary["deliveries"] == {"sent": 1, "retried": 0, "failed": 0, "held": 0, "digests": 0}
    assert summary["feeds"][0]["new_items"] == 1
    smtp_sink.wait_for(4)
    assert len(smtp_sink.messages) == 4
    assert "Meta / Scale AI" in smtp_sink.messages[-1]["subject"]

    alerts = run_cli(capsys, "--config", str(config), "alerts", "--json")
    rows = json.loads(alerts.out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"sent"}


def test_refusing_smtp_keeps_deliveries_pending_then_sends_once(
    tmp_path: Path, db_url: str, feed_server: Any, smtp_sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = serve(feed_server, cma_entries(NOW), 1)
    config = write_setup(tmp_path, url, [smtp_sink.mailto_url()], db_url, backoff_initial="0s")
    smtp_sink.reject()

    refused = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert refused.code == 1  # deliveries to retry
    assert "Traceback" not in refused.err
    assert "0 sent, 3 to retry" in refused.out
    rows = json.loads(run_cli(capsys, "--config", str(config), "alerts", "--json").out)
    assert len(rows) == 3
    assert {r["status"] for r in rows} == {"pending"}
    assert all(r["attempts"] == 1 and r["last_error"] for r in rows)
    assert smtp_sink.messages == []

    smtp_sink.accept()
    accepted = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert accepted.code == 0, accepted.err
    smtp_sink.wait_for(3)
    again = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert again.code == 0
    assert len(smtp_sink.messages) == 3
    rows = json.loads(run_cli(capsys, "--config", str(config), "alerts", "--json").out)
    assert {r["status"] for r in rows} == {"sent"}


def test_first_poll_alerts_only_recent_items(
    tmp_path: Path, feed_server: Any, smtp_sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    old = [
        Entry(
            f"old-{i}",
            f"Old deal {i}: invitation to comment",
            "The CMA invites comments on an AI deal.",
            NOW - timedelta(days=30 + i),
        )
        for i in range(5)
    ]
    recent = cma_entries(NOW, total=2, matching=1)
    url = serve(feed_server, old + recent, 1)
    config = write_setup(tmp_path, url, [smtp_sink.mailto_url()], f"sqlite:///{tmp_path}/w.db")
    result = run_cli(capsys, "--config", str(config), "poll", "--once", "--json")
    summary = json.loads(result.out)
    assert summary["feeds"][0]["new_items"] == 7
    assert summary["deliveries"]["sent"] == 1

    # The decision trail says why the old ones never alerted, not that no rule matched them.
    trail = run_cli(capsys, "--config", str(config), "alerts", "--explain", "Old deal 3")
    assert trail.code == 0, trail.err
    assert "never reached the rules: stored as history by the feed's first poll" in trail.out
    assert "within poll.backlog_max_age, 7d" in trail.out
    assert "no rule matched it" not in trail.out
    recent_trail = run_cli(capsys, "--config", str(config), "alerts", "--explain", recent[1].title)
    assert "never reached the rules" not in recent_trail.out


def test_dry_run_prints_and_records_nothing(
    tmp_path: Path, feed_server: Any, smtp_sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = serve(feed_server, cma_entries(NOW), 1)
    config = write_setup(tmp_path, url, [smtp_sink.mailto_url()], f"sqlite:///{tmp_path}/w.db")
    dry = run_cli(capsys, "--config", str(config), "poll", "--once", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.count("(dry run) to email: [HIGH]") == 3
    assert smtp_sink.messages == []
    real = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert "3 sent" in real.out
