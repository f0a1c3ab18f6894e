"""Case stages in ordinary words: a CMA case entry whose page is edited as the case moves on
alerts once per stage reached (rules/stages.toml), whichever words the edit uses; a re-worded
page, or one that repeats a stage already alerted, does not alert again."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Entry, atom, run_cli

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)

RULE = """\
[[rule]]
id = "cma-ai-case"
title = "CMA merger inquiry into an AI partnership"
severity = "high"
authority = "cma"
on_update = "notify"
query = '(CMA OR "Competition and Markets Authority") AND ("Mistral AI" OR OpenAI)'
"""

PAGE = "<html><body><main><article><h1>Microsoft / Mistral AI partnership merger inquiry</h1>{}</article></main></body></html>"

VERSIONS = [
    # (page text, alerts expected)
    ("<p>The CMA is inviting comments on Microsoft's partnership with Mistral AI: an invitation to comment.</p>", 1),
    (
        "<p>Following its invitation to comment, the CMA has launched a formal phase 1 investigation into the "
        "partnership between Microsoft and Mistral AI.</p>",
        1,
    ),
    (
        "<p>The Competition and Markets Authority's phase 1 investigation of Microsoft and Mistral AI is under way; "
        "the statutory deadline for its phase 1 decision is 4 October.</p>",
        0,  # the same stage in other words
    ),
    (
        "<p>The CMA found a realistic prospect of a substantial lessening of competition and has accepted "
        "undertakings in lieu of a reference from Microsoft concerning Mistral AI.</p>",
        1,
    ),
    (
        "<p>The CMA has accepted undertakings from Microsoft; its inquiry into Mistral AI has cleared.</p>",
        0,  # still at undertakings: "cleared" names an earlier step
    ),
]


def edit_the_case_page(
    tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str], versions: list[tuple[str, int]]
) -> tuple[Path, list[list[str]]]:
    """Serve a cma-cases feed whose one entry is edited once per version (page text and updated
    time), poll after each edit, and return the config and the messages each poll printed."""
    base = feed_server.url("").rstrip("/")
    config = tmp_path / "config.toml"
    feed_url = feed_server.url("/cases.atom")
    config.write_text(
        f'rules_dir = "rules"\n[database]\nurl = "sqlite:///{tmp_path}/w.db"\n'
        f'[[feed]]\nid = "cma-cases"\nurl = "{feed_url}"\ntags = ["regulator", "uk"]\nfull_text = true\n'
    )
    printed: list[list[str]] = []
    for n, (text, _) in enumerate(versions):
        feed_server.route("/government/news/ms-mistral", body=PAGE.format(text), headers={"Content-Type": "text/html"})
        entry = Entry("ms-mistral", "Microsoft / Mistral AI partnership merger inquiry", "", NOW + timedelta(minutes=n))
        feed_server.feed("/cases.atom", atom([entry], base=base), etag=f'"{n}"')
        result = run_cli(capsys, "--config", str(config), "poll", "--once")
        assert result.code == 0, result.err
        printed.append([line for line in result.out.splitlines() if line.startswith("[")])
    return config, printed


def test_each_new_stage_alerts_once(tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(ROOT / "rules" / "lists.toml", rules / "lists.toml")
    shutil.copy(ROOT / "rules" / "stages.toml", rules / "stages.toml")
    (rules / "case.toml").write_text(RULE)
    config, alerts = edit_the_case_page(tmp_path, feed_server, capsys, VERSIONS)
    assert [len(a) for a in alerts] == [expected for _, expected in VERSIONS]
    assert alerts[0][0].startswith("[HIGH] ")
    assert all(a[0].startswith("[HIGH UPDATE] ") for a in (alerts[1], alerts[3]))
    trail = run_cli(capsys, "--config", str(config), "alerts", "--explain", "Mistral AI partnership").out
    assert 'new stage reached: "phase-1"' in trail
    assert 'new stage reached: "undertakings"' in trail
    assert 'stage "phase-1" already alerted' in trail
    assert 'stage "undertakings" already alerted' in trail


SHIPPED_VERSIONS = [
    # A gov.uk case page as the CMA edits it over a case: (page text, alerts expected)
    (
        "<p>The Competition and Markets Authority is considering whether Microsoft's partnership with Mistral AI "
        "has resulted in a relevant merger situation. Invitation to comment: comments are invited by 30 April.</p>",
        1,
    ),
    (
        "<p>Following its invitation to comment, the CMA has launched a formal phase 1 investigation into "
        "Microsoft's partnership with Mistral AI. The statutory deadline is 4 October.</p>",
        1,
    ),
    (
        "<p>The CMA's formal phase 1 investigation of Microsoft's partnership with Mistral AI continues; the "
        "statutory deadline for the phase 1 decision is 4 October.</p>",
        0,
    ),
    (
        "<p>The CMA has referred Microsoft's partnership with Mistral AI for an in-depth phase 2 investigation by "
        "an inquiry group.</p>",
        1,
    ),
]


def test_shipped_cma_rules_alert_once_per_stage_of_a_case_page(
    tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    _, printed = edit_the_case_page(tmp_path, feed_server, capsys, SHIPPED_VERSIONS)
    # One message per version at most: the rules that fire on one page are merged.
    counts = [len(lines) for lines in printed]
    assert counts == [expected for _, expected in SHIPPED_VERSIONS]
