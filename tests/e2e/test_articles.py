"""Matching sees the article, not only the teaser: linked pages are fetched (politely, cached by
URL) for full_text feeds and for items that already satisfy part of a rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import ARTICLE_PAGE, ARTICLE_RULES, Entry, atom, run_cli

NOW = datetime.now(UTC)

RULES = ARTICLE_RULES
PAGE = ARTICLE_PAGE


def page(feed_server: Any, path: str, title: str, text: str) -> str:
    return feed_server.route(path, body=PAGE.format(title=title, text=text), headers={"Content-Type": "text/html"})


def setup(tmp_path: Path, feed_server: Any, entries: list[Entry], *, full_text: bool) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.toml").write_text(RULES)
    feed_url = feed_server.feed(
        "/cases.atom", atom(entries, base=feed_server.url("").rstrip("/")), etag=f'"{len(entries)}"'
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'rules_dir = "rules"\n[database]\nurl = "sqlite:///{tmp_path}/w.db"\n'
        f'[[feed]]\nid = "cma-cases"\nurl = "{feed_url}"\nfull_text = {"true" if full_text else "false"}\n'
    )
    return config


def link_path(key: str) -> str:
    return f"/government/news/{key}"


@pytest.mark.parametrize("full_text", [True, False])
def test_article_text_completes_a_teaser(
    tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str], full_text: bool
) -> None:
    teaser = Entry("ms-mistral", "Microsoft / Mistral AI partnership", "", NOW - timedelta(hours=1))
    other = Entry("vets", "Veterinary services market investigation", "", NOW - timedelta(hours=2))
    page(
        feed_server,
        link_path(teaser.key),
        "Microsoft / Mistral AI partnership",
        "The Competition and Markets Authority has issued an invitation to comment on the partnership.",
    )
    page(feed_server, link_path(other.key), "Vets", "The CMA published its provisional findings on vets.")
    config = setup(tmp_path, feed_server, [teaser, other], full_text=full_text)

    result = run_cli(capsys, "--config", str(config), "poll", "--once")
    assert result.code == 0, result.err
    assert "[HIGH] CMA invitation to comment on an AI deal: Microsoft / Mistral AI partnership" in result.out
    assert 'article contains "invitation to comment"' in result.out
    # full_text fetches every new item's page; otherwise only pages of items that partly match.
    assert len(feed_server.requests_for(link_path(other.key))) == (1 if full_text else 0)
    assert len(feed_server.requests_for(link_path(teaser.key))) == 1


def test_pages_are_cached_by_url_and_failures_do_not_stop_the_poll(
    tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Entry("a", "Microsoft / Mistral AI partnership", "", NOW - timedelta(hours=1))
    broken = Entry("gone", "OpenAI case page", "", NOW - timedelta(hours=1))
    page(feed_server, link_path(first.key), "x", "The CMA has issued an invitation to comment.")
    feed_server.route(link_path(broken.key), status=404)
    config = setup(tmp_path, feed_server, [first, broken], full_text=True)
    assert run_cli(capsys, "--config", str(config), "poll", "--once").code == 0
    # Same page linked again by a new entry: served from the cache, not fetched again.
    again = Entry("a2", "Mistral AI: CMA update", "", NOW)
    feed_server.feed(
        "/cases.atom",
        atom([again, first, broken], base=feed_server.url("").rstrip("/")).replace(link_path("a2"), link_path("a")),
        etag='"3"',
    )
    result = run_cli(capsys, "--config", str(config), "poll", "--once", "--json")
    assert result.code == 0, result.err
    assert len(feed_server.requests_for(link_path(first.key))) == 1
    assert len(feed_server.requests_for(link_path(broken.key))) == 1  # failure cached too, retried later
