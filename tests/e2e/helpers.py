"""Build feeds, rules and configs for end-to-end runs, and run the real CLI entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from watcher.cli import main

RULES = """\
[[rule]]
id = "cma-itc-ai"
title = "CMA invitation to comment on an AI partnership"
severity = "high"
any = ["invitation to comment", "invites comment", "inviting comments"]
all = [["CMA", "Competition and Markets Authority"], ["AI", "artificial intelligence", "OpenAI", "Mistral AI"]]
none = ["Country Music Association"]
"""


# The rule and the case page the linked-page tests share: teaser-only entries whose page decides.
ARTICLE_RULES = """\
[lists]
cma = ["CMA", "Competition and Markets Authority"]
ai_labs = ["OpenAI", "Mistral AI", "Anthropic", "Inflection AI"]

[[rule]]
id = "cma-itc"
title = "CMA invitation to comment on an AI deal"
severity = "high"
query = '@cma AND "invitation to comment" AND @ai_labs'
"""

ARTICLE_PAGE = """<html><head><title>{title}</title></head><body><nav>Home Cookies Search</nav>
<main><article><h1>{title}</h1><p>{text}</p><p>Further details on the case timetable and how to respond
are set out on this page, together with the administrative timetable.</p></article></main>
<footer>Privacy Accessibility</footer></body></html>"""


@dataclass(frozen=True)
class Entry:
    key: str
    title: str
    summary: str
    published: datetime


def atom(entries: Sequence[Entry], base: str = "https://www.gov.uk") -> str:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        "<title>CMA news</title>",
        f"<id>{base}/search/news-and-communications</id>",
        f"<updated>{datetime.now(UTC).isoformat()}</updated>",
    ]
    for e in entries:
        parts.append(
            "<entry>"
            f"<id>tag:www.gov.uk,2026:{e.key}</id>"
            f"<title>{escape(e.title)}</title>"
            f'<link rel="alternate" type="text/html" href="{base}/government/news/{e.key}"/>'
            f"<updated>{e.published.isoformat()}</updated>"
            f'<summary type="html">{escape(e.summary)}</summary>'
            "</entry>"
        )
    parts.append("</feed>")
    return "\n".join(parts)


def cma_entries(now: datetime, total: int = 20, matching: int = 3) -> list[Entry]:
    """``total`` items from the last day, ``matching`` of them a CMA invitation to comment on an AI deal."""
    deals = [
        ("microsoft-mistral", "Microsoft / Mistral AI"),
        ("amazon-anthropic", "Amazon / Anthropic"),
        ("google-openai", "Alphabet / OpenAI"),
        ("nvidia-cohere", "Nvidia / Cohere AI"),
    ]
    out = []
    for i in range(total):
        published = now - timedelta(hours=23) + timedelta(minutes=30 * i)
        if i < matching:
            slug, names = deals[i % len(deals)]
            out.append(
                Entry(
                    f"itc-{slug}-{i}",
                    f"{names} partnership: invitation to comment",
                    f"The CMA is inviting comments on the {names} AI partnership.",
                    published,
                )
            )
        else:
            out.append(
                Entry(
                    f"other-{i}",
                    f"CMA updates guidance on consumer law, part {i}",
                    "The Competition and Markets Authority published updated guidance.",
                    published,
                )
            )
    return out


def write_setup(
    tmp_path: Path,
    feed_url: str,
    channel_urls: Sequence[str],
    db_url: str,
    *,
    backoff_initial: str = "30s",
    max_attempts: int = 8,
    extra: str = "",
    parse_workers: int = 0,
) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "cma.toml").write_text(RULES)
    urls = ", ".join(f'"{u}"' for u in channel_urls)
    config = tmp_path / "config.toml"
    config.write_text(f"""\
rules_dir = "rules"

[database]
url = "{db_url}"

[http]
connect_timeout = "2s"
read_timeout = "2s"
deadline = "5s"

[poll]
check_every = "1s"
default_interval = "15m"
parse_workers = {parse_workers}

[delivery]
default_channels = ["email"]
check_every = "1s"
backoff_initial = "{backoff_initial}"
max_attempts = {max_attempts}

[log]
level = "info"

[channels.email]
urls = [{urls}]

[[feed]]
id = "cma-news"
url = "{feed_url}"
title = "CMA news"
{extra}""")
    return config


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """Run the real entry point in-process, with its error handling and exit codes."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


PYTHON = sys.executable
