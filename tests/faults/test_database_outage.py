"""Issue 13, the database goes away: a private PostgreSQL cluster restarted mid-cycle, and the
SQLite file locked for 30 s by another process holding ``BEGIN EXCLUSIVE``. The daemon waits,
retries and resumes: it does not exit, loses no item, sends each alert exactly once (no process
died, so no repeat is allowed), and the failed cycles are logged and counted on /metrics.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Arrivals, Daemon, Peers, deliveries, item_keys, key_token, write_config
from tests.faults.pgcluster import PrivateCluster, free_port


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    if not PrivateCluster.available():
        message = "PostgreSQL 15 binaries (initdb, pg_ctl) not found"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = PrivateCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


def _store_errors(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("watcher_store_errors_total")
    )


def _ride_out(tmp: Path, db_url: str, outage: object, *, items: int, gap: float) -> tuple[Peers, Daemon, float]:
    """Run the daemon with items arriving; call ``outage()`` once the first alerts are out; wait
    for everything; return the peers, the daemon and the store errors it counted."""
    arrivals = Arrivals(time.monotonic(), gap, items, random.Random(5))
    peers = Peers(arrivals)
    peers.start()
    port = free_port()
    # A short lease: work that was claimed when the database went away comes back within it.
    server = f'\n[server]\nlisten = "127.0.0.1:{port}"\n'
    daemon = Daemon(write_config(tmp, db_url, peers, lease="5s", extra=server), tmp)
    try:
        daemon.start()
        deadline = time.monotonic() + 60
        while not peers.seen()["hook"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert peers.seen()["hook"], daemon.logs()[-3000:]
        outage()  # type: ignore[operator]
        assert daemon.alive(), daemon.logs()[-3000:]
        arrivals.all_released()
        expected = arrivals.expected()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            seen = peers.seen()
            rows = deliveries(db_url)
            recorded = len(rows) == 2 * len(expected) and all(s == "sent" for _c, s, _k in rows)
            if recorded and all(expected <= set().union(set(), *seen[ch]) for ch in seen):
                break
            time.sleep(0.2)
        errors = _store_errors(port)
        assert daemon.stop() == 0, daemon.logs()[-3000:]
        return peers, daemon, errors
    finally:
        if daemon.alive():
            daemon.kill()
        peers.close()


def _check(peers: Peers, daemon: Daemon, db_url: str) -> None:
    arrivals = peers.arrivals
    assert {arrivals.token(i) for i in range(arrivals.total)} <= {key_token(k) for k in item_keys(db_url)}
    rows = deliveries(db_url)
    assert sorted((c, key_token(k)) for c, _s, k in rows) == sorted(
        (c, t) for c in ("hook", "email") for t in arrivals.expected()
    )
    assert {s for _c, s, _k in rows} == {"sent"}
    for channel, messages in peers.seen().items():
        tokens = [t for m in messages for t in m]
        assert sorted(tokens) == sorted(arrivals.expected()), channel  # each exactly once


@pytest.mark.postgres
@pytest.mark.timeout(200)
def test_postgresql_restarted_mid_cycle(tmp_path: Path, private_pg: PrivateCluster) -> None:
    def restart() -> None:
        private_pg.stop()
        time.sleep(5)  # several poll and drain ticks find no server
        private_pg.start()

    peers, daemon, errors = _ride_out(tmp_path, private_pg.url, restart, items=12, gap=1.0)
    logs = daemon.logs()
    _check(peers, daemon, private_pg.url)
    assert "store_failed" in logs, logs[-3000:]
    assert errors >= 1
    print(f"postgresql restart: {errors:g} failed transactions counted, daemon stayed up")


@pytest.mark.timeout(200)
def test_sqlite_locked_by_another_process_for_30_seconds(tmp_path: Path) -> None:
    db = tmp_path / "watcher.db"
    holder = (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30); c.execute('COMMIT')"
    )

    def lock_for_30_seconds() -> None:
        with subprocess.Popen([sys.executable, "-c", holder, str(db)], stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
            assert proc.wait(timeout=60) == 0

    peers, daemon, errors = _ride_out(tmp_path, f"sqlite:///{db}", lock_for_30_seconds, items=12, gap=3.0)
    logs = daemon.logs()
    _check(peers, daemon, f"sqlite:///{db}")
    assert "database is locked" in logs, logs[-3000:]
    assert errors >= 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    print(f"sqlite lock: {errors:g} failed transactions counted, daemon stayed up")
