"""Issue 13, faults: `watcher run` killed with SIGKILL at random and at aimed moments (mid-page
fetch, mid-send), restarted each time, then left to finish. Nothing is lost, every alert is
recorded as sent exactly once per channel, and each kill repeats at most one message.

The short run is CI's (8 kills per database); ``python -m tests.faults.soak`` is the 50-kill soak.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.faults.harness import deliveries, item_keys, key_token, run

KILLS = 8


@pytest.mark.timeout(240)
def test_sigkill_loses_nothing_and_repeats_at_most_one_message_per_kill(
    tmp_path: Path, daemon_db: tuple[str, str]
) -> None:
    database, url = daemon_db
    figures, peers, daemon = run(tmp_path, url, database, kills=KILLS, lease="3s")
    expected = peers.arrivals.expected()
    logs = daemon.logs()

    # Every item that arrived is stored, matching or not: no poll was lost to a kill.
    stored = {key_token(k) for k in item_keys(url)}
    assert {peers.arrivals.token(i) for i in range(peers.arrivals.total)} <= stored
    # Exactly one delivery row per alert and channel, and every one of them sent.
    rows = deliveries(url)
    per = Counter((channel, key_token(key)) for channel, _status, key in rows)
    assert set(per) == {(c, t) for c in ("hook", "email") for t in expected}, sorted(
        set(per) ^ {(c, t) for c in ("hook", "email") for t in expected}
    )
    assert max(per.values()) == 1
    assert {status for _c, status, _k in rows} == {"sent"}, Counter(s for _c, s, _k in rows)
    # Each receiver saw each alert at least once; a repeat needs a kill between send and commit.
    for channel, messages in peers.seen().items():
        seen = Counter(t for m in messages for t in m)
        assert expected <= set(seen), (channel, sorted(expected - set(seen)))
        assert set(seen) <= expected, (channel, sorted(set(seen) - expected))  # no non-matching item alerted
    assert sum(figures.duplicates.values()) <= figures.kills, figures.summary()
    assert "Traceback" not in logs, logs[-3000:]
    # The kills were aimed where the issue asks: mid-page fetch and mid-send happened.
    assert figures.kills_by_aim["page"] >= 1 and figures.kills_by_aim["send"] >= 1, figures.summary()
    print(figures.summary())
