"""The rule author's commands as a user runs them: check, test (every input format), backtest, save."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import run_cli
from watcher.model import Item
from watcher.store.store import FeedSpec, Store

ROOT = Path(__file__).resolve().parents[2]
ARTICLES = ROOT / "tests" / "data" / "articles"

RULES = """\
[lists]
cma = ["CMA", "Competition and Markets Authority"]
big_tech = ["Microsoft", "Google", "Amazon", "Alphabet"]
ai_labs = ["OpenAI", "Anthropic", "Mistral AI", "Inflection AI"]

[[rule]]
id = "cma-itc"
title = "CMA invitation to comment on a big-tech or AI deal"
severity = "high"
query = '@cma AND ("invitation to comment" OR "invites comment*" OR "inviting comment*") AND (@big_tech OR @ai_labs) AND NOT "Country Music Association"'

[rule.examples]
match = ["CMA: Microsoft / Mistral AI partnership, invitation to comment", "Competition and Markets Authority invites comments on Amazon's Anthropic stake"]
no_match = ["Country Music Association (CMA) invites comments on AI songs", "Cinema chain invites comments on Microsoft"]

[[rule]]
id = "ftc-6b"
title = "FTC 6(b) orders"
severity = "high"
query = '(FTC OR "Federal Trade Commission") AND /6\\(b\\)/'

[[rule]]
id = "cma-sms"
title = "CMA strategic market status"
severity = "medium"
query = '@cma AND ("strategic market status" OR SMS) AND @big_tech'

[[rule]]
id = "acquihire"
title = "Big tech hires an AI lab"
severity = "low"
query = '@big_tech NEAR/8 @ai_labs AND (hire* OR hiring OR licens*)'
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "test.toml").write_text(RULES)
    return folder


def test_rules_check_runs_examples(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "rules", "check", str(rules_dir))
    assert result.code == 0, result.out + result.err
    assert "4 rules, 4 examples (2 must match, 2 must not): all passed" in result.out


def test_rules_check_reports_failing_example(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = rules_dir / "test.toml"
    path.write_text(
        path.read_text().replace(
            'no_match = ["Country', 'no_match = ["CMA invitation to comment on OpenAI deal", "Country'
        )
    )
    result = run_cli(capsys, "rules", "check", str(rules_dir))
    assert result.code == 1
    assert "example should not match but did: 'CMA invitation to comment on OpenAI deal'" in result.out
    assert "4 rules, 5 examples (2 must match, 3 must not): 1 failed" in result.out


def test_shipped_rules_pass_with_enough_examples(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "rules", "check", str(ROOT / "rules"), "--json")
    assert result.code == 0, result.out + result.err
    summary = json.loads(result.out)
    assert summary["failed"] == [] and summary["examples"] >= 10 * summary["rules"]


@pytest.mark.parametrize(
    ("text", "expected", "caret"),
    [
        (
            "query = '(@cma AND merger'",
            'r.toml:4:10: rule "bad": "query": unbalanced parenthesis: "(" is never closed',
            "    (@cma AND merger\n    ^",
        ),
        (
            "query = '/phase(2/'",
            'r.toml:4:16: rule "bad": "query": bad regular expression: missing ), unterminated subpattern at position 5',
            "    /phase(2/\n          ^",
        ),
        ('titel = "x"\nquery = "merger"', 'r.toml:4: rule "bad": unknown field "titel" (did you mean "title"?)', None),
    ],
)
def test_bad_rule_files_are_one_line_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    expected: str,
    caret: str | None,
) -> None:
    monkeypatch.chdir(tmp_path)
    title = "" if "titel" in text else 'title = "Bad"\n'
    Path("r.toml").write_text(f'[lists]\ncma = ["CMA"]\n[[rule]]\n{text}\nid = "bad"\n{title}')
    result = run_cli(capsys, "rules", "check", "r.toml")
    assert result.code == 2
    lines = result.err.rstrip("\n").splitlines()
    assert lines[0] == expected
    assert "Traceback" not in result.err
    if caret:
        assert "\n".join(lines[1:]) == caret
    else:
        assert len(lines) == 1


def test_rules_test_reads_every_format(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "rules", "test", "--rules", str(rules_dir), str(ARTICLES), "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    fired = {
        Path(e["input"].split("#")[0]).name + ("#" + e["input"].split("#")[1] if "#" in e["input"] else ""): sorted(
            m["rule"] for m in e["matches"]
        )
        for e in data["inputs"]
    }
    assert fired["itc-note.txt"] == ["cma-itc"]
    assert fired["ftc-6b.md"] == ["ftc-6b"]
    assert fired["cma-sms.html"] == ["cma-sms"]
    assert fired["newsletter.eml"] == ["cma-itc"]
    assert fired["noise.json"] == []
    assert fired["mixed.jsonl#1"] == ["acquihire"] and fired["mixed.jsonl#2"] == []
    feed_entries = [e for e in data["inputs"] if "saved-feed.atom#" in e["input"]]
    assert len(feed_entries) >= 5  # every entry of a saved feed is an input
    assert feed_entries[0]["title"] == "CMA invites comment on Northwind / Lumen AI partnership"
    html = next(e for e in data["inputs"] if e["input"].endswith("cma-sms.html"))
    assert html["title"].startswith("CMA launches first strategic market status investigation")
    reasons = html["matches"][0]["reasons"]
    assert any(r["snippet"].count("**") == 2 for r in reasons)
    assert all("Cookies" not in r["snippet"] for r in reasons)  # menus and footers are not the article


def test_rules_test_prints_highlighted_reasons(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "rules", "test", "--rules", str(rules_dir), str(ARTICLES / "itc-note.txt"))
    assert result.code == 0
    assert "HIGH" in result.out and "cma-itc" in result.out
    assert 'title contains "Mistral AI" (from @ai_labs)' in result.out
    assert "1 inputs from 1 files, 1 fired at least one rule" in result.out


def test_expectations(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = run_cli(
        capsys, "rules", "test", "--rules", str(rules_dir), str(ARTICLES / "itc-note.txt"), "--expect", "cma-itc"
    )
    assert ok.code == 0
    missed = run_cli(
        capsys, "rules", "test", "--rules", str(rules_dir), str(ARTICLES / "noise.json"), "--expect", "cma-itc"
    )
    assert missed.code == 1
    assert "expected cma-itc to fire, it did not" in missed.out
    none_ok = run_cli(capsys, "rules", "test", "--rules", str(rules_dir), str(ARTICLES / "noise.json"), "--expect-none")
    assert none_ok.code == 0
    none_bad = run_cli(
        capsys, "rules", "test", "--rules", str(rules_dir), str(ARTICLES / "itc-note.txt"), "--expect-none", "--json"
    )
    assert none_bad.code == 1
    assert json.loads(none_bad.out)["expectations_failed"]
    unknown = run_cli(capsys, "rules", "test", "--rules", str(rules_dir), str(ARTICLES), "--expect", "nope")
    assert unknown.code == 2


def test_rules_test_bad_input(rules_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    result = run_cli(capsys, "rules", "test", "--rules", str(rules_dir), str(tmp_path / "x.pdf"))
    assert result.code == 2 and "unsupported file type" in result.err
    missing = run_cli(capsys, "rules", "test", "--rules", str(rules_dir), str(tmp_path / "missing.txt"))
    assert missing.code == 2 and "no such file or folder" in missing.err


def test_backtest_against_shows_added_and_lost(
    tmp_path: Path, db_url: str, rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    store = Store.open(db_url)
    store.sync_feeds([FeedSpec("cma-news", "https://example.org/cma.atom")], now)
    items = [
        Item(
            "cma-news", "1", "CMA invitation to comment: Microsoft / Mistral AI", "https://example.org/1", "", "", now
        ),
        Item("cma-news", "2", "FTC issues 6(b) orders to Alphabet and OpenAI", "https://example.org/2", "", "", now),
        Item("cma-news", "3", "Old CMA invitation to comment on OpenAI", "https://example.org/3", "", "", now),
    ]
    store.save_poll(
        "cma-news", now - timedelta(days=1), items[:2], [], etag=None, last_modified=None, next_check_at=now
    )
    store.save_poll(
        "cma-news", now - timedelta(days=60), items[2:], [], etag=None, last_modified=None, next_check_at=now
    )
    store.close()
    config = tmp_path / "config.toml"
    config.write_text(
        f'rules_dir = "{rules_dir}"\n[database]\nurl = "{db_url}"\n[[feed]]\nid = "cma-news"\nurl = "https://example.org/cma.atom"\n'
    )
    new = tmp_path / "new"
    new.mkdir()
    (new / "test.toml").write_text(
        RULES.replace('id = "ftc-6b"', 'id = "ftc-6b"\nenabled = false').replace(
            'AND NOT "Country Music Association"', 'AND "Mistral AI"'
        )
    )
    args = [
        "--config",
        str(config),
        "rules",
        "backtest",
        "--since",
        "30d",
        "--rules",
        str(new),
        "--against",
        str(rules_dir),
    ]
    result = run_cli(capsys, *args, "--json")
    assert result.code == 0, result.err
    diff = json.loads(result.out)
    assert diff["items"] == 2
    assert diff["added"] == []
    assert [(r["rule"], r["title"]) for r in diff["lost"]] == [
        ("ftc-6b", "FTC issues 6(b) orders to Alphabet and OpenAI")
    ]
    assert diff["unchanged"] == 1
    text = run_cli(capsys, *args)
    assert "Lost with the new rules (1)" in text.out and "0 added, 1 lost, 1 unchanged" in text.out


def test_save_keeps_body_and_metadata(
    tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str], rules_dir: Path
) -> None:
    html = (ARTICLES / "cma-sms.html").read_bytes()
    url = feed_server.route("/cma-cases/google-search", body=html, headers={"Content-Type": "text/html; charset=utf-8"})
    result = run_cli(capsys, "save", url, "-o", str(tmp_path / "saved"))
    assert result.code == 0, result.err
    [saved] = [p for p in (tmp_path / "saved").iterdir() if not p.name.endswith(".meta.json")]
    assert saved.suffix == ".html" and saved.read_bytes() == html
    meta = json.loads(saved.with_name(saved.name + ".meta.json").read_text())
    assert meta["final_url"] == url and meta["status"] == 200
    tested = run_cli(capsys, "rules", "test", "--rules", str(rules_dir), str(tmp_path / "saved"), "--json")
    [entry] = json.loads(tested.out)["inputs"]
    assert entry["link"] == url and [m["rule"] for m in entry["matches"]] == ["cma-sms"]


def test_schema_command_prints_the_published_schema(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "rules", "schema")
    assert json.loads(result.out) == json.loads((ROOT / "docs" / "rules.schema.json").read_text())
