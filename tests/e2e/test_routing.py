"""Issue acceptance: rules of three severities, channels routed by severity; each alert arrives
where the routes say (real webhook receivers on loopback), and `watcher routes test` agrees."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Entry, atom, run_cli

NOW = datetime.now(UTC)

RULES = """\
[[rule]]
id = "crit"
title = "Critical"
severity = "critical"
query = "alpha"

[[rule]]
id = "med"
title = "Medium"
severity = "medium"
query = "bravo"

[[rule]]
id = "low"
title = "Low"
severity = "low"
query = "charlie"
"""


def test_alerts_follow_the_routes(tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.toml").write_text(RULES)
    for hook in ("urgent", "team"):
        feed_server.route(f"/{hook}", method="POST", status=200)
    entries = [
        Entry(k, f"{word} news", "", NOW - timedelta(hours=1))
        for k, word in (("a", "alpha"), ("b", "bravo"), ("c", "charlie"))
    ]
    feed = feed_server.feed("/f.atom", atom(entries), etag='"1"')
    port = feed_server.url("/").split(":")[2].split("/")[0]
    config = tmp_path / "config.toml"
    config.write_text(f"""\
rules_dir = "rules"
[database]
url = "sqlite:///{tmp_path}/w.db"
[channels.urgent]
urls = ["json://127.0.0.1:{port}/urgent"]
[channels.team]
urls = ["json://127.0.0.1:{port}/team"]
min_severity = "medium"

[[route]]
name = "page the urgent channel"
severity = "high"
channels = ["urgent"]
continue = true

[[route]]
severity = "low"
channels = ["team"]

[[feed]]
id = "news"
url = "{feed}"
""")
    result = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert result.code == 0, result.err

    def titles(hook: str) -> list[str]:
        return sorted(json.loads(r.body)["title"] for r in feed_server.requests_for(f"/{hook}", method="POST"))

    assert titles("urgent") == ["[CRITICAL] Critical: alpha news"]
    # The second route takes everything from low up, but the team channel wants medium or more.
    assert titles("team") == ["[CRITICAL] Critical: alpha news", "[MEDIUM] Medium: bravo news"]
    for rule_id, expected in (("crit", ["urgent", "team"]), ("med", ["team"]), ("low", [])):
        routed = json.loads(run_cli(capsys, "--config", str(config), "routes", "test", "--rule", rule_id, "--json").out)
        assert [d["channel"] for d in routed] == expected, rule_id
    text = run_cli(capsys, "--config", str(config), "routes", "test", "--rule", "crit").out
    assert "-> urgent  (page the urgent channel takes it)" in text
