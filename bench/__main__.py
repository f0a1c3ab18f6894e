"""Benchmarks for the hot path, each against a naive baseline measured in the same run.

Run with ``make bench`` (or ``.venv/bin/python -m bench``). Prints one table; nothing is asserted:
these machines are noisy, so targets are read from the table, not enforced in tests.

1. match: the shipped rules over items from the saved feeds, one Aho-Corasick pass per item,
   against a naive matcher that runs one word-boundary regex per phrase per rule; then generated
   rule sets of 10, 100 and 1,000 rules over generated ~2 KB items (bench/matching.py).
2. parse: feedparser + our HTML-to-text on a saved FTC feed (multi-paragraph HTML), against
   feedparser with its own HTML sanitiser on (its default).
3. steady-state poll: a feed of 50 entries with 1 new since the last poll, on SQLite, through the
   real pipeline with a ``file://`` URL; against the naive order (match every entry, then dedup).
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
from rich.console import Console
from rich.table import Table

from bench.matching import bench_scaling
from bench.timing import best_of
from watcher.config import load_config
from watcher.feeds.fetch import Fetcher
from watcher.feeds.normalise import html_to_text, normalise_feed
from watcher.feeds.parse import parse_feed
from watcher.logs import configure_logging
from watcher.match import RuleSet
from watcher.model import Item
from watcher.pipeline import Pipeline, parse_and_normalise
from watcher.rules import load_rules
from watcher.store.store import FeedSpec, Store

ROOT = Path(__file__).resolve().parents[1]
FEEDS = ROOT / "tests" / "data" / "feeds"


def corpus(n: int) -> list[Item]:
    """n items built from the saved feeds, varied so no two are identical."""
    base: list[Item] = []
    for path in sorted(FEEDS.glob("*.rss")) + sorted(FEEDS.glob("*.atom")):
        parsed = parse_feed(path.read_bytes(), feed_id=path.stem, url=path.as_uri(), headers={})
        base.extend(normalise_feed(parsed, path.stem)[0])
    return [
        Item(b.feed_id, f"{b.item_key}#{i}", f"{b.title} {i}", b.link, b.summary, b.content, b.published_at)
        for i in range(n)
        for b in [base[i % len(base)]]
    ]


def bench_shipped(rows: list[tuple[str, str, str, str]]) -> None:
    """The shipped packs over real-looking items. Their NEAR, regex and scopes have no naive twin,
    so this row has no baseline; the scaling rows below carry the comparison."""
    rules = load_rules([ROOT / "rules"])
    items = corpus(2000)
    ours = RuleSet(rules)
    t_ours = best_of(lambda: [ours.match(i, feed_tags=("regulator",)) for i in items])
    rows.append(
        (
            f"match: shipped packs, {len(rules)} rules x {len(items)} items",
            f"{len(items) / t_ours:,.0f} items/s",
            "-",
            "-",
        )
    )


def rss(n: int) -> bytes:
    """An FTC-style RSS feed: each release is several paragraphs of HTML with links and lists."""
    para = (
        "<p>The Federal Trade Commission today issued <a href='https://www.ftc.gov/x'>orders</a> under "
        "Section 6(b) to five companies &mdash; Alphabet, Amazon, Anthropic, Microsoft and OpenAI.</p>"
        "<ul><li>Investments</li><li>Partnerships</li></ul><p>&ldquo;We are looking closely,&rdquo; said the Chair.</p>"
    )
    items = "".join(
        f"<item><title>FTC release {i}</title><link>https://www.ftc.gov/news/{i}</link>"
        f"<guid>https://www.ftc.gov/news/{i}</guid><pubDate>Thu, 25 Jan 2024 12:00:00 +0000</pubDate>"
        f"<description><![CDATA[{para * 4}]]></description></item>"
        for i in range(n)
    )
    head = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>FTC</title>'
    return f"{head}{items}</channel></rss>".encode()


def bench_parse(rows: list[tuple[str, str, str, str]]) -> None:
    n = 50
    body = rss(n)
    url = "https://www.ftc.gov/feeds/press-release.xml"

    def naive() -> None:
        # feedparser's default: its HTML sanitiser on, then the same conversion to plain text.
        parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-location": url})
        [html_to_text(e.get("summary", "")) for e in parsed.entries]

    t_ours = best_of(lambda: parse_and_normalise(body, "ftc", url, {}))
    t_naive = best_of(naive)
    rows.append(
        (
            f"parse + normalise: FTC-style RSS, {n} HTML items",
            f"{n / t_ours:,.0f} items/s",
            f"{n / t_naive:,.0f} items/s",
            f"{t_naive / t_ours:.1f}x",
        )
    )


def atom(entries: int, offset: int) -> str:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    parts = ['<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>']
    for i in range(offset, offset + entries):
        parts.append(
            f"<entry><id>tag:e{i}</id><title>CMA update on case {i}: Microsoft and OpenAI partnership</title>"
            f'<link href="https://www.gov.uk/cma-cases/case-{i}"/><updated>{(now - timedelta(minutes=i)).isoformat()}'
            f"</updated><summary>The Competition and Markets Authority invites comment on item {i}.</summary></entry>"
        )
    return "".join(parts) + "</feed>"


def bench_steady_state(rows: list[tuple[str, str, str, str]]) -> None:
    rules = load_rules([ROOT / "rules"])
    polls = 30
    with tempfile.TemporaryDirectory() as tmp:
        feed = Path(tmp) / "feed.atom"
        config_path = Path(tmp) / "config.toml"
        config_path.write_text(
            f'rules_dir = "{ROOT / "rules"}"\n[database]\nurl = "sqlite:///{tmp}/w.db"\n'
            # No linked pages: the entries link to gov.uk, and benchmarks stay on this machine.
            "[poll]\nmax_articles_per_poll = 0\n"
            f'[[feed]]\nid = "cma"\nurl = "{feed.as_uri()}"\n'
        )
        config = load_config(config_path, env={})
        store = Store.open(config.database.url)
        clock = [datetime(2026, 11, 28, tzinfo=UTC)]

        async def run(naive: bool) -> float:
            fetcher = Fetcher()
            pipeline = Pipeline(config, rules, store, fetcher, clock=lambda: clock[0])
            if naive:
                # Naive order: match every entry of the feed, then let the store drop the known ones.
                original = store.item_versions
                store.item_versions = lambda feed_id, keys: {}  # type: ignore[method-assign]
            spent = 0.0
            for _ in range(polls):
                state = store.feed_state("cma")
                assert state is not None
                top = int(clock[0].timestamp()) // 60
                feed.write_text(atom(50, top))
                start = time.perf_counter()
                await pipeline.poll_feed(config.feeds[0], state)
                spent += time.perf_counter() - start
                clock[0] += timedelta(minutes=1)  # one new entry per poll
            if naive:
                store.item_versions = original  # type: ignore[method-assign]
            await fetcher.aclose()
            return spent

        store.sync_feeds([FeedSpec("cma", feed.as_uri())], clock[0])
        asyncio.run(run(False))  # first poll stores the history; warm-up
        t_ours = asyncio.run(run(False))
        t_naive = asyncio.run(run(True))
        store.close()
    rows.append(
        (
            f"steady-state poll: 1 new of 50, {polls} polls",
            f"{t_ours / polls * 1000:.1f} ms/poll",
            f"{t_naive / polls * 1000:.1f} ms/poll",
            f"{t_naive / t_ours:.1f}x",
        )
    )


def main() -> None:
    configure_logging("warning")
    rows: list[tuple[str, str, str, str]] = []
    bench_shipped(rows)
    bench_scaling(rows)
    bench_parse(rows)
    bench_steady_state(rows)
    table = Table(title="watcher benchmarks (best of 5; higher ratio = faster than the baseline)")
    for col in ("benchmark", "watcher", "naive baseline", "ratio"):
        table.add_column(col, justify="left" if col == "benchmark" else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=120).print(table)
    print(f"python {sys.version.split()[0]}, feedparser {feedparser.__version__}")


if __name__ == "__main__":
    main()
