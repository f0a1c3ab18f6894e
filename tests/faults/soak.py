"""The 50-kill soak (issue 13): ``python -m tests.faults.soak --kills 50 --db sqlite|postgresql``.

The harness of tests/faults/test_crash_safety.py, run longer, with its figures printed: kills
(by aim), alerts, duplicates the receivers saw, the longest recovery (restart to first poll).
Exits 1 if anything was lost, recorded twice, left unsent, or repeated more than once per kill.
PostgreSQL: a fresh schema on WATCHER_TEST_POSTGRES_URL (default the local test database).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text

from tests.faults.harness import deliveries, item_keys, key_token, run


def _schema(base: str) -> tuple[str, str]:
    schema = f"soak_{uuid.uuid4().hex[:10]}"
    engine = create_engine("postgresql+psycopg://" + base.split("://", 1)[1])
    with engine.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def _drop(base: str, schema: str) -> None:
    engine = create_engine("postgresql+psycopg://" + base.split("://", 1)[1])
    with engine.begin() as conn:
        conn.execute(text(f'drop schema if exists "{schema}" cascade'))
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    from tests.fixtures.db import PG_URL

    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--lease", default="3s", help="poll.claim_lease for the run (PostgreSQL waits it out)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="watcher-soak-") as tmp:
        schema = None
        if args.db == "sqlite":
            url = f"sqlite:///{tmp}/watcher.db"
        else:
            schema, url = _schema(PG_URL)
        try:
            figures, peers, daemon = run(
                Path(tmp), url, args.db, kills=args.kills, seed=args.seed, lease=args.lease, say=print
            )
            expected = peers.arrivals.expected()
            rows = deliveries(url)
            per = Counter((c, key_token(k)) for c, _s, k in rows)
            problems = []
            stored = {key_token(k) for k in item_keys(url)}
            lost_items = {peers.arrivals.token(i) for i in range(peers.arrivals.total)} - stored
            if lost_items:
                problems.append(f"items never stored: {sorted(lost_items)}")
            if set(per) != {(c, t) for c in ("hook", "email") for t in expected} or max(per.values()) != 1:
                problems.append("delivery rows are not exactly one per alert and channel")
            unsent = [r for r in rows if r[1] != "sent"]
            if unsent:
                problems.append(f"{len(unsent)} deliveries not sent")
            for channel, messages in peers.seen().items():
                missing = expected - {t for m in messages for t in m}
                if missing:
                    problems.append(f"{channel} never received {sorted(missing)}")
            if sum(figures.duplicates.values()) > figures.kills:
                problems.append("more duplicates than kills")
            if "Traceback" in daemon.logs():
                problems.append("a traceback in the daemon's logs")
        finally:
            if schema is not None:
                _drop(PG_URL, schema)
    print(figures.summary())
    print(f"soak took {time.monotonic() - started:.0f}s")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
