"""Issue 13, crash safety mid-digest: `watcher run` killed with SIGKILL while a digest is being
sent (the receiver has it, the daemon has not recorded it), restarted each time. The digest is
recorded sent exactly once, every alert it carries is sent, the receiver saw it, and it saw it
again at most once per kill.

The alerts are written before the daemon starts, five minutes old, so their digest (every
minute) is due at once instead of at the next minute boundary.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.faults.harness import Daemon, pg_admin
from tests.fixtures.feed_server import RecordedRequest, Response
from watcher.model import Item, Match, Reason, Severity
from watcher.store.decide import PlannedMatch
from watcher.store.store import FeedSpec, Store

ALERTS = 6
KILLS = 2
DELAY = 2.0  # seconds the digest receiver takes to answer: the window a kill lands in


def _seed(db_url: str) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    store = Store.open(db_url)
    try:
        store.sync_feeds([FeedSpec("news", "http://127.0.0.1:9/news.atom", "News")], at)
        for i in range(ALERTS):
            item = Item("news", f"k{i}", f"notice{i} digestcase", f"https://news.example/{i}", "", "", at)
            match = Match("probe", "news", f"k{i}", Severity.HIGH, (Reason("title", "digestcase", 0, 10),))
            planned = PlannedMatch(match, "Probe", ("digest",))
            store.save_poll("news", at, [item], [planned], etag=None, last_modified=None, next_check_at=at)
    finally:
        store.close()


@pytest.mark.timeout(150)
def test_sigkill_mid_digest_sends_it_once_per_record(
    tmp_path: Path, daemon_db: tuple[str, str], feed_server: Any
) -> None:
    _database, url = daemon_db
    _seed(url)
    lock = threading.Lock()
    received: list[set[str]] = []
    in_flight = threading.Event()

    def digest(request: RecordedRequest) -> Response:
        body = json.loads(request.body)
        with lock:
            received.append({f"notice{i}" for i in range(ALERTS) if f"notice{i} " in body.get("message", "") + " "})
        in_flight.set()
        return Response(200, body="ok", delay=DELAY)

    hook = feed_server.handler("/digest", digest, method="POST").replace("http://", "json://")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.toml").write_text('[[rule]]\nid = "probe"\ntitle = "Probe"\nquery = "digestcase"\n')
    config = tmp_path / "config.toml"
    config.write_text(
        f'rules_dir = "rules"\n[database]\nurl = "{url}"\n'
        '[poll]\ncheck_every = "1s"\nclaim_lease = "3s"\n'
        '[delivery]\ndefault_channels = ["digest"]\ncheck_every = "1s"\ntimeout = "10s"\n'
        f'[channels.digest]\nurls = ["{hook}"]\nmode = "digest"\nschedule = "* * * * *"\n'
        '[[feed]]\nid = "news"\nurl = "http://127.0.0.1:9/news.atom"\n'
    )
    daemon = Daemon(config, tmp_path)
    try:
        for _ in range(KILLS):
            in_flight.clear()
            daemon.start()
            assert in_flight.wait(60), daemon.logs()[-3000:]
            time.sleep(DELAY / 4)  # the receiver holds the digest; the daemon waits for its answer
            daemon.kill()
        daemon.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _digest_status(url) != ["sent"]:
            time.sleep(0.2)
        assert daemon.stop() == 0
    finally:
        if daemon.alive():
            daemon.kill()
    assert _digest_status(url) == ["sent"], daemon.logs()[-3000:]  # one digest, recorded sent once
    assert _delivery_status(url) == {"sent": ALERTS}
    everything = {f"notice{i}" for i in range(ALERTS)}
    assert received and all(r == everything for r in received), received  # always the whole digest
    assert 1 <= len(received) <= KILLS + 1, len(received)  # a repeat per kill mid-send, at most
    print(f"mid-digest: {KILLS} kills, the receiver saw the digest {len(received)} times, recorded sent once")


def _digest_status(url: str) -> list[str]:
    engine = create_engine(pg_admin(url))
    try:
        with engine.connect() as conn:
            return [str(s) for (s,) in conn.execute(text("select status from digests")).all()]
    finally:
        engine.dispose()


def _delivery_status(url: str) -> dict[str, int]:
    engine = create_engine(pg_admin(url))
    try:
        with engine.connect() as conn:
            return {str(s): int(n) for s, n in conn.execute(text("select status, count(*) from deliveries group by 1"))}
    finally:
        engine.dispose()
