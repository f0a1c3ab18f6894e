"""One message per story per channel: three rules fire on one article, and each channel (a real
webhook receiver and a real SMTP server) gets one message naming all three, with the highest
severity; the decision trail still records each rule's match. Digests do the same per item."""

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
id = "cma-itc"
title = "CMA invites comment on an AI partnership"
severity = "high"
tags = ["cma", "mergers"]
query = 'CMA AND "invitation to comment"'

[[rule]]
id = "deal-ai-partnership"
title = "Big tech partnership with an AI developer"
severity = "medium"
tags = ["deals"]
query = 'Microsoft AND "Mistral AI" AND partnership'

[[rule]]
id = "watch-mistral"
title = "Mistral AI or the groceries study"
severity = "low"
query = '"Mistral AI" OR groceries'
"""


def write(tmp_path: Path, feed_url: str, hook_url: str, mailto: str, db_url: str, extra: str = "") -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.toml").write_text(RULES)
    config = tmp_path / "config.toml"
    config.write_text(f"""\
rules_dir = "rules"
[database]
url = "{db_url}"
[channels.team]
urls = ["{hook_url}"]
[channels.legal]
urls = ["{mailto}"]
{extra}
[delivery]
default_channels = ["team", "legal"]

[[feed]]
id = "cma-news"
url = "{feed_url}"
""")
    return config


def test_three_rules_on_one_article_make_one_message_per_channel(
    tmp_path: Path, feed_server: Any, smtp_sink: Any, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.route("/hook", method="POST", status=200)
    article = Entry(
        "ms-mistral",
        "Microsoft / Mistral AI partnership: invitation to comment",
        "The CMA has issued an invitation to comment on the partnership between Microsoft and Mistral AI.",
        NOW - timedelta(hours=1),
    )
    other = Entry("groceries", "Groceries market study: update", "Provisional findings.", NOW - timedelta(hours=2))
    feed = feed_server.feed("/f.atom", atom([article, other]), etag='"1"')
    port = feed_server.url("/").split(":")[2].split("/")[0]
    config = write(tmp_path, feed, f"json://127.0.0.1:{port}/hook", smtp_sink.mailto_url(), db_url)

    result = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert result.code == 0, result.err

    posts = [json.loads(r.body) for r in feed_server.requests_for("/hook", method="POST")]
    mails = smtp_sink.messages
    # The article: one message per channel, not three; another story: its own message.
    assert sorted(p["title"] for p in posts) == [
        "[HIGH] CMA invites comment on an AI partnership (+2 more): Microsoft / Mistral AI",
        "[LOW] Mistral AI or the groceries study: Groceries market study: update",
    ]
    assert sorted(m["Subject"] for m in mails) == sorted(p["title"] for p in posts)
    merged = next(p for p in posts if p["title"].startswith("[HIGH]"))
    mail = next(m for m in mails if m["Subject"].startswith("[HIGH]"))
    body = mail.get_body(("plain",)).get_content()
    for text in (merged["message"], body):
        for rule_id in ("cma-itc", "deal-ai-partnership", "watch-mistral"):
            assert rule_id in text
        assert "Rules:" in text
    # The decision trail still has each rule's own match, each alerted.
    trail = json.loads(run_cli(capsys, "--config", str(config), "alerts", "--explain", "invitation", "--json").out)
    assert sorted((m["rule_id"], m["decision"]) for m in trail[0]["matches"]) == [
        ("cma-itc", "alerted"),
        ("deal-ai-partnership", "alerted"),
        ("watch-mistral", "alerted"),
    ]
    # Every delivery the merged message carried is recorded as sent, on each channel.
    listed = json.loads(run_cli(capsys, "--config", str(config), "alerts", "--json").out)
    assert len(listed) == 8 and {a["status"] for a in listed} == {"sent"}
    # Nothing more goes out on the next poll.
    assert run_cli(capsys, "--config", str(config), "poll", "--once").code == 0
    assert len(feed_server.requests_for("/hook", method="POST")) == 2
    assert len(smtp_sink.messages) == 2
