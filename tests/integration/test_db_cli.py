"""`watcher db status | upgrade`, migrate_on_start = false, and retention as a singleton job."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.e2e.helpers import run_cli
from watcher.store.store import RETENTION_LOCK, Store

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, db_url: str, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'rules_dir = "{ROOT / "rules"}"\n[database]\nurl = "{db_url}"\n{extra}')
    return path


def test_status_then_upgrade(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_config(tmp_path, db_url))
    behind = run_cli(capsys, "-c", config, "db", "status")
    assert behind.code == 1 and "BEHIND" in behind.out and "empty database" in behind.out
    upgraded = run_cli(capsys, "db", "upgrade", "-c", config)
    assert upgraded.code == 0, upgraded.err
    assert "schema upgraded from nothing to" in upgraded.out
    again = run_cli(capsys, "-c", config, "db", "upgrade")
    assert "already at" in again.out
    assert run_cli(capsys, "-c", config, "db", "status").code == 0


def test_daemon_refuses_an_old_schema_when_it_may_not_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_config(tmp_path, f"sqlite:///{tmp_path}/w.db", "migrate_on_start = false\n"))
    result = run_cli(capsys, "-c", config, "run")
    assert result.code == 1, result.out  # a database problem, as when the database is unreachable
    assert "run `watcher db upgrade`" in result.err
    assert "Traceback" not in result.err


def test_retention_runs_on_one_replica_at_a_time(pg_url: str) -> None:
    store = Store.open(pg_url)
    held, release = threading.Event(), threading.Event()

    def other_replica() -> None:  # holds the retention lock, as a replica mid-purge would
        with store.engine.begin() as conn:
            conn.execute(text(f"SELECT pg_advisory_xact_lock({RETENTION_LOCK})"))
            held.set()
            release.wait(10)

    thread = threading.Thread(target=other_replica)
    thread.start()
    try:
        assert held.wait(10)
        now = datetime.now(UTC)
        assert store.purge_text(now - timedelta(days=30), singleton=True) is None  # skipped, not blocked
        assert store.purge_text(now - timedelta(days=30)) == 0  # the CLI's purge never skips
    finally:
        release.set()
        thread.join()
    assert store.purge_text(datetime.now(UTC) - timedelta(days=30), singleton=True) == 0
    store.close()
