"""Every item is judged on its full text: a burst larger than one cycle's page budget waits in the
page queue and is matched when its page arrives, each page fetched once; a page that never
arrives is matched on the feed's text after its retries, and the decision trail says so."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import ARTICLE_PAGE, ARTICLE_RULES, Entry, atom, run_cli
from watcher.config import load_config
from watcher.feeds.fetch import Fetcher
from watcher.pipeline import PAGE_ATTEMPTS, Pipeline
from watcher.rules import load_rules
from watcher.store.store import FeedSpec, Store

NOW = datetime.now(UTC)
BURST = 300
BUDGET = 40  # pages per host per cycle

RULES = ARTICLE_RULES
PAGE = ARTICLE_PAGE


def page_path(key: str) -> str:
    return f"/government/news/{key}"


def serve_burst(feed_server: Any) -> tuple[list[Entry], set[str]]:
    """A teaser-only case feed publishing BURST items at once; one in three is a relevant notice."""
    entries, relevant = [], set()
    labs = ["OpenAI", "Mistral AI", "Anthropic", "Inflection AI"]
    for i in range(BURST):
        key = f"case-{i:03d}"
        title = f"Case update {i:03d}"  # the feed says nothing: only the page can decide
        if i % 3 == 0:
            text = f"The CMA has issued an invitation to comment on the partnership with {labs[i % 4]} (case {i})."
            relevant.add(title)
        else:
            text = f"The CMA published its provisional findings in the groceries market study, part {i}."
        feed_server.route(
            page_path(key), body=PAGE.format(title=title, text=text), headers={"Content-Type": "text/html"}
        )
        entries.append(Entry(key, title, "", NOW - timedelta(minutes=i)))
    return entries, relevant


def write_config(tmp_path: Path, feed_url: str) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.toml").write_text(RULES)
    config = tmp_path / "config.toml"
    config.write_text(
        f'rules_dir = "rules"\n[database]\nurl = "sqlite:///{tmp_path}/w.db"\n'
        f"[poll]\nmax_articles_per_poll = {BUDGET}\n"
        f'[[feed]]\nid = "cma-cases"\nurl = "{feed_url}"\nfull_text = true\n'
    )
    return config


def test_a_burst_waits_for_its_pages_and_each_relevant_item_alerts_once_on_its_page(
    tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    entries, relevant = serve_burst(feed_server)
    feed_url = feed_server.feed("/cases.atom", atom(entries, base=feed_server.url("").rstrip("/")), etag='"burst"')
    config = write_config(tmp_path, feed_url)

    alerted: list[str] = []
    waiting = []
    bound = BURST // BUDGET + 2
    for _ in range(bound):
        result = run_cli(capsys, "--config", str(config), "poll", "--once", "--json")
        assert result.code == 0, result.err
        summary = json.loads(result.out)
        waiting.append(sum(f["pages_waiting"] for f in summary["feeds"]))
        alerted += [line for line in result.err.splitlines() if line.startswith("[HIGH]")]
        if waiting[-1] == 0:
            break
    # The queue drains by one cycle's budget per cycle, within a bounded number of polls.
    assert waiting[0] == BURST - BUDGET
    assert waiting[-1] == 0, waiting
    assert len(waiting) <= bound
    # Every relevant item alerted exactly once, and the reason is the page, not the teaser.
    titles = [line.split(": ", 1)[1] for line in alerted]
    assert sorted(titles) == sorted(relevant)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # No page was fetched twice, and the feed itself answered 304 after the first poll.
    for entry in entries:
        assert len(feed_server.requests_for(page_path(entry.key))) == 1, entry.key
    feeds = run_cli(capsys, "--config", str(config), "feeds", "--json")
    assert json.loads(feeds.out)[0]["pages_waiting"] == 0


def test_a_page_that_never_arrives_is_matched_on_the_feed_text_and_explained(
    tmp_path: Path, feed_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = Entry(
        "itc-mistral",
        "Microsoft / Mistral AI partnership: invitation to comment",
        "The CMA is inviting comments.",
        NOW - timedelta(hours=1),
    )
    feed_server.route(page_path(entry.key), status=404)
    feed_url = feed_server.feed("/cases.atom", atom([entry], base=feed_server.url("").rstrip("/")), etag='"1"')
    config_path = write_config(tmp_path, feed_url)
    config = load_config(config_path, env={})
    rules = load_rules([tmp_path / "rules"])
    clock = [NOW]
    store = Store.open(config.database.url)

    async def cycles() -> list[int]:
        fetcher = Fetcher()
        pipeline = Pipeline(config, rules, store, fetcher, clock=lambda: clock[0])
        waiting = []
        try:
            for _ in range(PAGE_ATTEMPTS + 1):
                outcomes = await pipeline.poll_due(force=True)
                waiting.append(sum(o.pages_waiting for o in outcomes))
                clock[0] += timedelta(hours=2)  # past every retry delay
        finally:
            await fetcher.aclose()
        return waiting

    try:
        store.sync_feeds([FeedSpec("cma-cases", feed_url)], NOW)
        waiting = asyncio.run(cycles())
        assert waiting[: PAGE_ATTEMPTS - 1] == [1] * (PAGE_ATTEMPTS - 1)  # retried, not judged on the teaser
        assert waiting[-1] == 0
        assert len(feed_server.requests_for(page_path(entry.key))) == PAGE_ATTEMPTS
        statuses = store.alert_statuses()
        assert [s.rule_id for s in statuses] == ["cma-itc"]  # the title alone decides, in the end
    finally:
        store.close()
    explained = run_cli(capsys, "--config", str(config_path), "alerts", "--explain", "Mistral AI partnership")
    assert explained.code == 0, explained.err
    assert f"page not read after {PAGE_ATTEMPTS} tries" in explained.out
    assert "matched on the feed's text" in explained.out
