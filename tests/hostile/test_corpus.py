"""The hostile-feed corpus (issue 13), one test per case in cases.py, through the real pipeline.

Each case is polled in one cycle beside a healthy feed, against real loopback servers and a real
SQLite store. Every case must: finish within its timeout, keep the resident set within its
bound, leave either a clear per-feed error (what `watcher feeds` shows) or stored items that are
safe for what comes later (database, message, log line), and let the healthy feed's items in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.feed_server import FeedServer
from tests.hostile.cases import CASES, Case, Env
from tests.hostile.harness import HEALTHY, HEALTHY_ITEMS, Cycle, run_cycle
from watcher.model import Item

# What no stored text may hold: C0 and C1 controls (newline and tab aside), DEL, lone surrogates
# (PostgreSQL and SQLite's driver refuse them).
_UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_TITLE = 1_000
MAX_KEY = 1_000
MAX_LINK = 2_048
MAX_ERROR = 300


@pytest.fixture
def env(feed_server: FeedServer, tmp_path: Path) -> Iterator[Env]:
    environment = Env(feed_server, tmp_path)
    try:
        yield environment
    finally:
        for server in environment.raw_servers:
            server.close()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=pytest.mark.timeout(c.timeout)) for c in CASES])
def test_hostile_feed(case: Case, env: Env) -> None:
    healthy = env.feed_server.route("/healthy.xml", body=HEALTHY, headers={"Content-Type": "application/rss+xml"})
    cycle = run_cycle(
        env.tmp_path,
        case.serve(env),
        healthy,
        http=case.http,
        full_text=case.full_text,
        allowed_networks=case.allowed_networks,
    )

    assert (cycle.healthy.items, cycle.healthy.last_error) == (HEALTHY_ITEMS, None)
    assert cycle.rss_growth_bytes <= case.memory_mib << 20, f"{cycle.rss_growth_bytes / 2**20:.0f} MiB"
    if case.error is not None:
        error = cycle.status.last_error
        assert error is not None and case.error in error, error
        assert cycle.status.error_count == 1 and cycle.items == []
        assert len(error) <= MAX_ERROR and not _UNSAFE_LINE.search(error), error
    else:
        assert cycle.status.last_error is None and cycle.status.error_count == 0, cycle.status.last_error
        assert case.check is not None
        case.check(cycle)
    for item in cycle.items:
        _assert_safe(item)
    _record(case, cycle)
    for url, page_error in cycle.articles.items():
        # Loopback only: the one page off loopback is the metadata address, refused unconnected.
        assert url.startswith("http://127.0.0.1:") or "block_private_addresses" in (page_error or ""), url
        assert page_error is None or (len(page_error) <= MAX_ERROR and not _UNSAFE_LINE.search(page_error)), url


def _assert_safe(item: Item) -> None:
    assert len(item.title) <= MAX_TITLE + 1 and not _UNSAFE_LINE.search(item.title), item.title[:80]
    assert len(item.item_key) <= MAX_KEY + 100 and not _UNSAFE_LINE.search(item.item_key)
    for text in (item.summary, item.content, *item.authors, *item.tags):
        assert not _UNSAFE_TEXT.search(text), text[:80]
    if item.link is not None:
        assert item.link.startswith(("http://", "https://")) and len(item.link) <= MAX_LINK, item.link[:80]
        assert not _UNSAFE_LINE.search(item.link) and " " not in item.link


def test_the_corpus_is_large_enough_and_described() -> None:
    assert len(CASES) >= 40
    assert all(c.attack and "\n" not in c.attack for c in CASES)


def _record(case: Case, cycle: Cycle) -> None:
    """With WATCHER_HOSTILE_REPORT set to a file, append the case's outcome and figures to it (one
    tab-separated line: the table in docs/reliability.md is made from these)."""
    path = os.environ.get("WATCHER_HOSTILE_REPORT")
    if not path:
        return
    if cycle.status.last_error:
        outcome = f"error: {cycle.status.last_error}"
    else:
        pages = "; ".join(f"page error: {e}" for e in cycle.articles.values() if e)
        outcome = f"safe: {len(cycle.items)} items stored" + (f"; {pages}" if pages else "")
    figures = f"{cycle.seconds:.1f} s, +{cycle.rss_growth_bytes / 2**20:.0f} MiB RSS"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{case.id}\t{case.attack}\t{outcome}\t{figures}\n")
