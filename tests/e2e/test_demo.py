"""`watcher demo`: offline, no config, the bundled feeds through the real pipeline; alerts on the
console, one alert for a story two feeds carry, a stage update, a digest and an HTML preview."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.helpers import run_cli
from watcher.store.store import Store


def titles(out: str) -> list[str]:
    """The subject lines of the messages the console channels printed."""
    return [line for line in out.splitlines() if line.startswith("[") or line.startswith("Watcher digest")]


def test_demo_replays_the_sample_feeds_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "demo"
    result = run_cli(capsys, "demo", "--dir", str(folder))
    assert result.code == 0, result.err
    assert "Traceback" not in result.err

    sent = titles(result.out)
    steps = result.out.split("── ")[1:]  # each step's header, its messages and its summary line
    assert len(steps) == 4
    per_step = [titles(step) for step in steps]
    assert sorted(per_step[0]) == [
        "[HIGH] CMA inquiry into a big-tech / AI partnership: Google / Halcyon AI",
        "[MEDIUM] FTC 6(b) orders on AI or big tech: FTC Issues 6(b) Orders to Five Firms on AI Chip Supply and Cloud Credit Deals",
        "[MEDIUM] Press: a big-tech / AI deal draws regulators' attention: Microsoft / Kestrel AI",
    ]
    assert per_step[1] == []  # The Verge's report of the same story: no second alert
    assert per_step[2] == ["[HIGH UPDATE] CMA inquiry into a big-tech / AI partnership: Google / Halcyon AI"]
    # One story, one alert: TechCrunch and The Verge both carry the Kestrel AI stake.
    assert "reported by techcrunch-ai, verge-policy; the later report joined story" in result.out
    assert "(duplicate)" in result.out
    assert 'alerted once more: new stage reached: "phase-2"' in result.out
    # The look-alike and the old case never alert.
    assert not [t for t in sent if "Country Music" in t or "Lumina" in t]
    assert 'Not alerted: "Country Music Association (CMA) invites comment' in result.out
    assert 'Not alerted: "Amazon / Lumina Robotics merger inquiry": old news' in result.out

    # The digest: one message at 08:00 carrying every alert, one entry per item.
    assert per_step[3] == [
        "Watcher digest: 3 alerts (1 high)",
        "[HIGH] Google / Halcyon AI partnership merger inquiry",
        "[MEDIUM] FTC Issues 6(b) Orders to Five Firms on AI Chip Supply and Cloud Credit Deals",
        "[MEDIUM] Microsoft takes a 20% stake in Kestrel AI in $3B deal",
    ]
    assert "morning-digest: 1 digest at 08:00 with the 4 alerts (3 items), grouped by story." in result.out

    # The preview: every message sent (4 alerts and the digest), as the html templates render them.
    match = re.search(r"Every message as HTML: (\S+)", result.out)
    assert match is not None
    preview = Path(match.group(1))
    assert preview == folder / "preview.html"
    html = preview.read_text(encoding="utf-8")
    assert html.count('<section class="message">') == 5
    assert "Subject: <b>Watcher digest: 3 alerts (1 high)</b>" in html
    assert "Subject: <b>[HIGH UPDATE] CMA inquiry into a big-tech / AI partnership: Google / Halcyon AI</b>" in html
    assert "<b>Update:</b> the item was edited and still matches." in html  # the html template's body

    # Nothing left the machine: every feed and every linked page is a file in the folder, and
    # every page was read (none waits or failed, as it would for an http link without network).
    store = Store.open(f"sqlite:///{folder / 'watcher-demo.db'}")
    try:
        items = store.items_since(datetime(2000, 1, 1, tzinfo=UTC))
        statuses = store.feed_statuses()
        waiting = store.pages_waiting()
    finally:
        store.close()
    local = "file://localhost" + folder.resolve().as_uri().removeprefix("file://") + "/pages/"
    assert len(items) == 10
    assert all(i.link and i.link.startswith(local) for i in items)
    assert all(s.error_count == 0 and s.last_error is None for s in statuses)
    assert not any(waiting.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]

    # The folder is a working setup: its config and rules pass the checks the README gives.
    check = run_cli(capsys, "rules", "check", str(folder / "rules"))
    assert check.code == 0, check.out + check.err


def test_demo_again_in_the_same_folder_starts_afresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_cli(capsys, "demo", "--dir", str(tmp_path))
    again = run_cli(capsys, "demo", "--dir", str(tmp_path))
    assert first.code == again.code == 0, again.err
    assert titles(first.out).count("Watcher digest: 3 alerts (1 high)") == 1
    assert titles(again.out).count("Watcher digest: 3 alerts (1 high)") == 1
    assert len(titles(again.out)) == len(titles(first.out))


def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli(capsys, "demo", "--dir", str(tmp_path))
    assert result.code == 2
    assert f"Invalid value for --dir: {tmp_path} is not empty and holds no earlier demo" in result.err
    assert "Traceback" not in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_demo_without_dir_uses_a_temporary_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = run_cli(capsys, "demo")
    assert result.code == 0, result.err
    [folder] = tmp_path.iterdir()
    assert folder.name.startswith("watcher-demo-")
    assert f"The demo folder is temporary ({folder})" in result.out
    assert (folder / "preview.html").exists()
