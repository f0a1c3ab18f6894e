"""Issue 13, restart after a crash: the feeds a killed daemon had claimed do not stay claimed for
the whole lease. On SQLite (one process) a restarted daemon takes its stale claims back at start
and polls at once, even in a crash loop shorter than the lease; on PostgreSQL the claims of a
live replica are renewed by its heartbeat, and a dead replica's move to the others within a lease.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import RULES, atom, cma_entries
from tests.e2e.test_daemon import wait_until
from tests.faults.harness import Daemon

NOW_ENTRIES = cma_entries(datetime.now(UTC), total=4, matching=0)


def _config(tmp: Path, db_url: str, feed_server: Any, lease: str) -> Path:
    """A slow feed (its first poll takes 30 s, like a big first poll killed by an OOM) and a fast one."""
    slow = feed_server.route("/slow.atom", body=atom(NOW_ENTRIES), delay=30)
    fast = feed_server.feed("/fast.atom", atom(NOW_ENTRIES), etag='"f"')
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "cma.toml").write_text(RULES)
    config = tmp / "config.toml"
    config.write_text(
        f'rules_dir = "rules"\n[database]\nurl = "{db_url}"\n'
        '[http]\nread_timeout = "60s"\ndeadline = "60s"\n'
        f'[poll]\ncheck_every = "1s"\ndefault_interval = "1h"\nclaim_lease = "{lease}"\n'
        '[delivery]\ndefault_channels = ["console"]\n[log]\nlevel = "info"\n'
        f'[[feed]]\nid = "slow"\nurl = "{slow}"\n[[feed]]\nid = "fast"\nurl = "{fast}"\n'
    )
    return config


@pytest.mark.timeout(150)
def test_sqlite_restart_takes_back_its_claims_and_polls_at_once(tmp_path: Path, feed_server: Any) -> None:
    # A 10-minute lease, as before issue 13: waiting it out would poll nothing for ten minutes.
    config = _config(tmp_path, f"sqlite:///{tmp_path}/w.db", feed_server, lease="10m")
    daemon = Daemon(config, tmp_path)
    resumed_in = []
    try:
        for loop in range(2):  # a crash loop: killed each time in the middle of the slow first poll
            started = daemon.start()
            wait_until(lambda n=loop: len(feed_server.requests_for("/slow.atom")) > n, timeout=60)
            resumed_in.append(time.monotonic() - started)
            time.sleep(0.5)
            daemon.kill()
        daemon.start()
        wait_until(lambda: len(feed_server.requests_for("/slow.atom")) > 2, timeout=60)
    finally:
        if daemon.alive():
            daemon.kill()
    logs = daemon.logs()
    # Each restart found the slow feed still claimed by the dead process and took it back.
    assert logs.count("claims.released") == 2, logs[-3000:]
    assert "feeds=1" in logs
    # Polled again on every restart, long before the 10-minute lease would have let it.
    assert max(resumed_in) < 60, resumed_in
    print(f"sqlite: restart to first poll of the claimed feed, per restart: {[round(s, 1) for s in resumed_in]}")


@pytest.mark.postgres
@pytest.mark.timeout(150)
def test_postgresql_dead_replicas_feeds_move_within_a_lease(tmp_path: Path, pg_url: str, feed_server: Any) -> None:
    lease = 4.0
    config = _config(tmp_path, pg_url, feed_server, lease=f"{lease:g}s")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Daemon(config, tmp_path / "a"), Daemon(config, tmp_path / "b")
    try:
        first.start()
        wait_until(lambda: len(feed_server.requests_for("/slow.atom")) == 1, timeout=60)
        second.start()
        wait_until(lambda: "daemon.started" in second.logs(), timeout=60)
        # Longer than two leases: the heartbeat keeps the live replica's claim, nobody polls twice.
        time.sleep(2.5 * lease)
        assert len(feed_server.requests_for("/slow.atom")) == 1
        first.kill()
        killed = time.monotonic()
        wait_until(lambda: len(feed_server.requests_for("/slow.atom")) == 2, timeout=lease + 30)
        moved_in = time.monotonic() - killed
    finally:
        for d in (first, second):
            if d.alive():
                d.kill()
    # Not a speed test: the guarantee itself. The lease, a scheduler tick, and slack for a busy machine.
    assert moved_in < lease + 10, moved_in
    print(f"postgresql: a dead replica's feed polled by another {moved_in:.1f}s after the kill (lease {lease:g}s)")
