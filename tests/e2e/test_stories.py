"""Acceptance: the same story from five feeds alerts once per rule, follow-ups as the rule says,
and an official notice arriving last confirms it; on both databases, one process per poll."""

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
[lists]
parties = ["Microsoft", "Mistral AI"]

[[rule]]
id = "itc"
title = "Invitation to comment"
severity = "high"
query = '@parties AND ("invitation to comment" OR "inviting comments" OR "seeks views" OR "scrutiny")'

[[rule]]
id = "itc-threaded"
title = "Invitation to comment, with follow-ups"
severity = "medium"
follow_up = "notify"
query = '@parties AND ("invitation to comment" OR "inviting comments" OR "seeks views" OR "scrutiny")'
"""

SOURCES = [
    (
        "techwire",
        "https://techwire.example/ms-mistral",
        "UK regulator seeks views on Microsoft's Mistral AI tie-up",
        "Britain's competition watchdog is inviting comments on Microsoft's partnership with Mistral AI.",
    ),
    (
        "dailybiz",
        "https://dailybiz.example/ms-mistral",
        "Microsoft's Mistral deal faces CMA scrutiny",
        "The CMA opened an invitation to comment on Microsoft's partnership with Mistral AI.",
    ),
    (
        "policyblog",
        "https://policyblog.example/ms-mistral",
        "Competition and Markets Authority looks at Microsoft and Mistral AI",
        "Microsoft's partnership with Mistral AI draws an invitation to comment.",
    ),
    (
        "aggregator",
        "https://aggregator.example/r/1",
        "Microsoft, Mistral AI partnership: CMA invitation to comment - Law Times",
        "CMA invitation to comment on the Microsoft Mistral AI partnership.",
    ),
    (
        "cma-news",
        "https://www.gov.uk/government/news/cma-ms-mistral",
        "CMA invites comment on Microsoft's partnership with Mistral AI",
        "The CMA is inviting comments on whether Microsoft's partnership with Mistral AI is a merger.",
    ),
]


def rss(link: str, title: str, lead: str) -> str:
    date = (NOW - timedelta(hours=2)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item>'
        f"<guid>{escape(link)}</guid><title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<description>{escape(lead)}</description><pubDate>{date}</pubDate></item></channel></rss>"
    )


def test_five_sources_one_story(
    tmp_path: Path, db_url: str, feed_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.toml").write_text(RULES)
    feeds = ""
    for feed_id, link, title, lead in SOURCES:
        url = feed_server.feed(f"/{feed_id}.rss", rss(link, title, lead), etag='"1"')
        feeds += f'[[feed]]\nid = "{feed_id}"\nurl = "{url}"\n'
    config = tmp_path / "config.toml"
    config.write_text(f'rules_dir = "rules"\n[database]\nurl = "{db_url}"\n{feeds}')
    sent: list[str] = []
    for feed_id, *_ in SOURCES:  # one poll per feed, in order: the official notice arrives last
        result = run_cli(capsys, "--config", str(config), "poll", "--once", "--feed", feed_id)
        assert result.code == 0, result.err
        sent += [line for line in result.out.splitlines() if line.startswith("[")]
    # Both rules fire on the first report and on the official one: one message each time,
    # naming both rules (the most severe first); the follow-ups are the threaded rule's alone.
    assert [s.split("]")[0] + "]" for s in sent] == [
        "[HIGH]",
        "[MEDIUM FOLLOW-UP]",
        "[MEDIUM FOLLOW-UP]",
        "[MEDIUM FOLLOW-UP]",
        "[HIGH CONFIRMED]",
    ]
    assert "] Invitation to comment (+1 more): " in sent[0] and "] Invitation to comment (+1 more): " in sent[4]
    assert all("] Invitation to comment, with follow-ups: " in s for s in sent[1:4])
    trail = json.loads(run_cli(capsys, "--config", str(config), "alerts", "--explain", SOURCES[2][1], "--json").out)
    decisions = {m["rule_id"]: m["decision"] for m in trail[0]["matches"]}
    assert decisions == {"itc": "duplicate", "itc-threaded": "alerted"}
    assert trail[0]["story_sources"] == [feed_id for feed_id, *_ in SOURCES]  # all five sources
    text = run_cli(capsys, "--config", str(config), "alerts", "--explain", SOURCES[4][1]).out
    assert "reported by 5: techwire, dailybiz, policyblog, aggregator, cma-news" in text
    out = run_cli(capsys, "--config", str(config), "poll", "--once", "--feed", "cma-news").out
    assert "Reported by" not in out  # nothing new: no repeat
