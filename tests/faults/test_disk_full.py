"""Issue 13, disk full or a read-only database file: `watcher run` stops with a clear error and a
non-zero exit, and the database is not corrupted (``PRAGMA integrity_check``).

Disk full: SQLite's ``PRAGMA max_page_count`` caps the file a few pages above its size, set on
every connection the daemon opens (an SQLAlchemy connect listener installed before the real CLI
entry point runs). When a write needs a page past the cap SQLite fails it with SQLITE_FULL,
"database or disk is full": the same result code, through the same rollback path, as a write
that meets ENOSPC on a full disk, and it works without root or mounts on any CI runner. (A small
tmpfs works here as root too, but not on an unprivileged runner.)

Read-only: the file is mode 0444; as root, whom file modes do not bind, its folder is shown to
the daemon through a read-only bind mount (a read-only filesystem, as a full or failing disk
remounted read-only by the kernel would be).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.harness import Arrivals, Peers, python_env, write_config
from watcher.store.store import Store

CAPPED = """\
import sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "connect")
def _cap(dbapi_conn, _record):
    dbapi_conn.execute("PRAGMA max_page_count = {pages}")

from watcher.cli import main
main(sys.argv[1:])
"""


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _pages(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


@pytest.mark.timeout(120)
def test_disk_full_stops_with_a_clear_error_and_no_corruption(tmp_path: Path) -> None:
    db = tmp_path / "watcher.db"
    url = f"sqlite:///{db}"
    Store.open(url).close()  # the schema, as a first start would leave it
    arrivals = Arrivals(time.monotonic() - 1000, 0.01, 400, random.Random(3))  # 400 items at once
    peers = Peers(arrivals)
    peers.start()
    try:
        config = write_config(tmp_path, url, peers)
        boot = CAPPED.format(pages=_pages(db) + 8)
        proc = subprocess.run(
            [sys.executable, "-c", boot, "--config", str(config), "run"],
            capture_output=True,
            text=True,
            env=python_env(),
            cwd=tmp_path,
            timeout=90,
        )
    finally:
        peers.close()
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "error: the database cannot be written: database or disk is full", last
    assert "store_unwritable" in proc.stderr and "Traceback" not in proc.stderr
    assert _integrity(db) == "ok"
    # Nothing half-written: the failed poll left no item behind, and a start with room works.
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from items").fetchone()[0] == 0


@pytest.mark.timeout(120)
def test_read_only_database_stops_with_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "db"
    home.mkdir()
    db = home / "watcher.db"
    Store.open(f"sqlite:///{db}").close()
    os.chmod(db, 0o444)
    mounted = None
    if os.geteuid() == 0:
        # Root ignores file modes: show it the folder through a read-only bind mount instead.
        mounted = tmp_path / "ro"
        mounted.mkdir()
        subprocess.run(["mount", "--bind", str(home), str(mounted)], check=True, timeout=30)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)], check=True, timeout=30)
        db = mounted / "watcher.db"
    arrivals = Arrivals(time.monotonic(), 1.0, 4, random.Random(3))
    peers = Peers(arrivals)
    peers.start()
    try:
        config = write_config(tmp_path, f"sqlite:///{db}", peers)
        cmd = [sys.executable, "-m", "watcher.cli", "--config", str(config), "run"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=python_env(), cwd=tmp_path, timeout=90)
    finally:
        peers.close()
        if mounted is not None:
            subprocess.run(["umount", str(mounted)], check=True, timeout=30)
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    # SQLite's own words: "attempt to write a readonly database" for a file it may not write,
    # "unable to open database file" when even its WAL index cannot be made (a read-only mount).
    assert last.startswith("error: ") and ("readonly database" in last or "unable to open" in last), last
    assert "Traceback" not in proc.stderr
    assert _integrity(home / "watcher.db") == "ok"
