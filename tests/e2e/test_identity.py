"""One alert per story: re-served items with new tracking parameters, AMP links, changed ids or
fetch times alert nothing new; edits alert only when the rule asks; silences and throttles
suppress with a reason on record. On SQLite and PostgreSQL, each poll a fresh process state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from tests.e2e.helpers import run_cli

NOW = datetime.now(UTC)

RULES = """\
[[rule]]
id = "itc"
title = "Invitation to comment"
severity = "high"
query = 'CMA AND "invitation to comment"'
on_update = "{on_update}"
{extra}
"""


def rss(items: list[dict[str, str]], built: datetime) -> str:
    body = "".join(
        "<item>"
        + (f'<guid isPermaLink="false">{escape(i["guid"])}</guid>' if i.get("guid") else "")
        + f"<title>{escape(i['title'])}</title><link>{escape(i['link'])}</link>"
        + f"<description>{escape(i.get('text', ''))}</description>"
        + f"<pubDate>{(NOW - timedelta(hours=1)).strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
        + "</item>"
        for i in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
        f"<lastBuildDate>{built.strftime('%a, %d %b %Y %H:%M:%S +0000')}</lastBuildDate>{body}</channel></rss>"
    )


class Setup:
    def __init__(
        self, tmp_path: Path, db_url: str, feed_server: Any, capsys: Any, on_update: str = "ignore", extra: str = ""
    ):
        self.feed_server, self.capsys, self.version = feed_server, capsys, 0
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "r.toml").write_text(RULES.format(on_update=on_update, extra=extra))
        self.config = tmp_path / "config.toml"
        self.config.write_text(
            f'rules_dir = "rules"\n[database]\nurl = "{db_url}"\n'
            f'[[feed]]\nid = "news"\nurl = "{feed_server.url("/news.rss")}"\n'
        )

    def serve(self, items: list[dict[str, str]]) -> None:
        self.version += 1
        self.feed_server.feed("/news.rss", rss(items, NOW + timedelta(minutes=self.version)), etag=f'"{self.version}"')

    def poll(self) -> dict[str, Any]:
        result = run_cli(self.capsys, "--config", str(self.config), "poll", "--once", "--json")
        assert result.code == 0, result.err
        return json.loads(result.out)

    def cli(self, *args: str) -> Any:
        return run_cli(self.capsys, "--config", str(self.config), *args)


STORY = {"title": "CMA issues invitation to comment on Microsoft / Mistral AI", "text": "The CMA invites comments."}


def test_reserved_items_with_tracking_amp_ids_and_fetch_time_alert_once(
    tmp_path: Path, db_url: str, feed_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Setup(tmp_path, db_url, feed_server, capsys)
    s.serve(
        [
            {**STORY, "link": "https://news.example/2024/cma-mistral"},
            {**STORY, "guid": "g-1", "link": "https://other.example/a"},
        ]
    )
    # Two outlets, one story: one alert.
    assert s.poll()["deliveries"]["sent"] == 1
    variants = [
        {**STORY, "link": "https://news.example/2024/cma-mistral?utm_source=rss&utm_medium=feed"},
        {**STORY, "link": "https://news.example/amp/2024/cma-mistral"},
        {**STORY, "guid": "g-2-changed-on-every-fetch", "link": "https://other.example/a?fbclid=abc"},
    ]
    s.serve(variants)
    second = s.poll()
    assert second["deliveries"]["sent"] == 0
    assert second["feeds"][0]["new_items"] == 0


@pytest.mark.parametrize(("on_update", "alerts"), [("ignore", 0), ("notify", 1)])
def test_edited_item_alerts_only_when_the_rule_asks(
    tmp_path: Path, db_url: str, feed_server: Any, capsys: pytest.CaptureFixture[str], on_update: str, alerts: int
) -> None:
    s = Setup(tmp_path, db_url, feed_server, capsys, on_update=on_update)
    case = {
        "guid": "case-1",
        "title": "Microsoft / Mistral AI",
        "link": "https://www.gov.uk/cma-cases/ms",
        "text": "CMA case opened.",
    }
    s.serve([case])
    assert s.poll()["deliveries"]["sent"] == 0  # no invitation to comment yet
    s.serve([{**case, "text": "CMA case opened. The CMA issued an invitation to comment."}])
    assert s.poll()["deliveries"]["sent"] == alerts
    s.serve([{**case, "text": "CMA case opened.   The CMA issued an  invitation to comment."}])  # whitespace only
    assert s.poll()["deliveries"]["sent"] == 0
    trail = json.loads(s.cli("alerts", "--explain", "case-1", "--json").out)
    [item] = trail
    assert item["revision"] == 2
    expected = "alerted" if on_update == "notify" else "update_ignored"
    assert [m["decision"] for m in item["matches"]] == [expected]


def test_silence_and_throttle_suppress_with_reasons(
    tmp_path: Path, db_url: str, feed_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Setup(tmp_path, db_url, feed_server, capsys, extra='throttle = { max = 1, per = "1d" }')
    added = s.cli("silence", "add", "--rule", "itc", "--match", "Vodafone", "--for", "7d", "--comment", "known case")
    assert added.code == 0, added.err
    listed = json.loads(s.cli("silence", "list", "--json").out)
    assert [(x["rule_id"], x["match_text"], x["active"]) for x in listed] == [("itc", "Vodafone", True)]
    items = [
        {"guid": "v", "title": "CMA invitation to comment: Vodafone / Three", "link": "https://x.example/v"},
        {"guid": "a", "title": "CMA invitation to comment: Amazon / Anthropic", "link": "https://x.example/a"},
        {"guid": "b", "title": "CMA invitation to comment: Google / Anthropic", "link": "https://x.example/b"},
    ]
    s.serve(items)
    assert s.poll()["deliveries"]["sent"] == 1
    decisions = {}
    for key in ("v", "a", "b"):
        [item] = json.loads(s.cli("alerts", "--explain", key, "--json").out)
        decisions[key] = (item["matches"][0]["decision"], item["matches"][0]["reason"])
    assert decisions["v"][0] == "silenced" and "known case" in decisions["v"][1]
    assert sorted(d for d, _ in (decisions["a"], decisions["b"])) == ["alerted", "throttled"]
    assert any(r and "the rule allows 1" in r for _, r in decisions.values())
    text = s.cli("alerts", "--explain", "Vodafone")
    assert "silenced" in text.out and "known case" in text.out
    silence_id = str(listed[0]["id"])
    assert s.cli("silence", "expire", silence_id).code == 0
    assert json.loads(s.cli("silence", "list", "--json").out) == []
    assert s.cli("silence", "expire", silence_id).code == 2
