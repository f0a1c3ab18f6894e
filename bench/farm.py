"""Feed-farm benchmark: the whole poll pipeline against N feeds of K items served on 127.0.0.1.

Run with ``make bench-farm`` (or ``.venv/bin/python -m bench.farm --feeds 100 --items 50``).
Each feed is RSS or Atom with 1-2 KB summaries, ETag and Last-Modified, and answers 304 to a
conditional GET when it has not changed. Scenarios, each on the same SQLite store:

- cold: the first cycle, every item new (and published within the backlog window, so all of them
  are matched, clustered and stored);
- warm: every feed unchanged (all 304);
- 10% new: one new item in a tenth of the feeds.

For each: wall time, CPU seconds of this process (all threads), peak RSS, requests served
(feeds and the linked pages the page queue reads), and items per second through the pipeline.
Not yet: the share of time per stage (the stages run in worker threads, which cProfile does not
see; a sampling profiler across threads is the next step).

The naive baseline, measured in the same run, fetches the same feeds one by one with urllib
(conditional GET too), parses them with feedparser, runs 200 phrase regexes one by one over each
entry and inserts each into SQLite: what a first script does. The farm answers from memory in a
thread pool; its own cost is printed (server CPU per request) so it is known not to be the
bottleneck. A first step of issue 11: rss2email and the 1,000 / 10,000-feed scenarios come next.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import io
import random
import re
import resource
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import feedparser
from rich.console import Console
from rich.table import Table

from watcher.app import make_fetcher
from watcher.config import load_config
from watcher.logs import configure_logging
from watcher.pipeline import Pipeline
from watcher.rules import load_rules
from watcher.store.store import FeedSpec, Store

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "market", "competition", "authority", "merger", "review", "cloud", "model", "partnership", "investment",
    "stake", "board", "regulator", "inquiry", "phase", "decision", "remedy", "platform", "search", "browser",
    "mobile", "advertising", "data", "chips", "developer", "startup", "funding", "round", "licence", "staff",
    "report", "study", "consultation", "response", "court", "appeal",
]  # fmt: skip
PARTIES = ["Microsoft", "Alphabet", "Amazon", "Meta", "Apple", "Nvidia", "OpenAI", "Anthropic", "Mistral AI", "Cohere"]
STAGES = {
    "cold": "first cycle, every item new",
    "warm": "nothing changed (all 304)",
    "ten": "one new item in 10% of feeds",
}


@dataclass
class FeedState:
    version: int = 0
    extra: int = 0  # items added since the first version


class Farm:
    """N feeds of K items on 127.0.0.1; ``bump`` adds a new item to a feed."""

    def __init__(self, feeds: int, items: int, latency: float = 0.0):
        self.feeds = feeds
        self.items = items
        self.latency = latency
        self.state = [FeedState() for _ in range(feeds)]
        self.requests = 0
        self.not_modified = 0
        self.cpu = 0.0
        self._lock = threading.Lock()
        self._now = datetime.now(UTC)
        self._bodies: dict[tuple[int, int], bytes] = {}
        farm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                farm.serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Farm:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{i}.{'rss' if i % 2 else 'atom'}"

    def bump(self, i: int) -> None:
        with self._lock:
            self.state[i].version += 1
            self.state[i].extra += 1

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        start = time.thread_time()
        if self.latency:
            time.sleep(self.latency)
        path = handler.path.split("?", 1)[0]
        if path.startswith("/feed/"):
            i = int(path.split("/")[2].split(".")[0])
            state = self.state[i]
            etag = f'"{i}-{state.version}"'
            status, body, headers = 200, b"", {"ETag": etag, "Last-Modified": self._modified(state)}
            if handler.headers.get("If-None-Match") == etag:
                status = 304
            else:
                body = self._body(i, state)
                headers["Content-Type"] = "application/rss+xml" if i % 2 else "application/atom+xml"
        else:  # an article page: a few paragraphs
            status, body = (
                200,
                f"<html><body><main><p>{_text(random.Random(path), 120)}</p></main></body></html>".encode(),
            )
            headers = {"Content-Type": "text/html"}
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        with self._lock:
            self.requests += 1
            self.not_modified += status == 304
            self.cpu += time.thread_time() - start

    def _modified(self, state: FeedState) -> str:
        return email.utils.format_datetime(self._now + timedelta(seconds=state.version), usegmt=True)

    def _body(self, i: int, state: FeedState) -> bytes:
        key = (i, state.version)
        if key not in self._bodies:
            self._bodies[key] = self._render(i, state)
        return self._bodies[key]

    def _render(self, i: int, state: FeedState) -> bytes:
        total = self.items + state.extra
        entries = []
        for j in range(total - 1, max(-1, total - 1 - self.items), -1):  # newest first, K items
            rng = random.Random(i * 100_003 + j)
            a, b = rng.sample(PARTIES, 2)
            title = f"{a} and {b}: {rng.choice(WORDS)} {_text(rng, 6)} {i}-{j}"
            link = f"http://127.0.0.1:{self.port}/a/{i}/{j}"
            when = self._now - timedelta(minutes=(total - j) * 7)
            summary = escape(_text(rng, rng.randrange(150, 300)))
            if i % 2:
                entries.append(
                    f"<item><title>{escape(title)}</title><link>{link}</link><guid>{link}</guid>"
                    f"<pubDate>{email.utils.format_datetime(when)}</pubDate><description>{summary}</description></item>"
                )
            else:
                entries.append(
                    f'<entry><id>{link}</id><title>{escape(title)}</title><link href="{link}"/>'
                    f"<updated>{when.isoformat()}</updated><summary>{summary}</summary></entry>"
                )
        if i % 2:
            channel = f"<channel><title>feed {i}</title>{''.join(entries)}</channel>"
            return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'.encode()
        return (
            f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>feed {i}</title>'
            f"<updated>{self._now.isoformat()}</updated>{''.join(entries)}</feed>"
        ).encode()


# News text is mostly ordinary words drawn from a large vocabulary with a Zipf-like spread, with a
# few terms of the trade and parties in it: a small vocabulary would make every item look like
# every other, which no real feed does.
_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "te",
    "su",
    "no",
    "vi",
    "ze",
    "po",
    "an",
    "el",
    "or",
    "us",
    "ix",
    "qu",
    "be",
    "da",
]
_VOCAB = sorted({"".join(random.Random(n).choices(_SYLLABLES, k=3)) for n in range(6000)})
_WEIGHTS = [1 / (rank + 1) for rank in range(len(_VOCAB))]


def _text(rng: random.Random, words: int) -> str:
    ordinary = rng.choices(_VOCAB, _WEIGHTS, k=words)
    for _ in range(max(1, words // 25)):
        ordinary[rng.randrange(words)] = rng.choice(WORDS)
    for _ in range(max(1, words // 60)):
        ordinary[rng.randrange(words)] = rng.choice(PARTIES)
    return " ".join(ordinary)


@dataclass
class Measure:
    wall: float
    cpu: float
    requests: int
    items: int


def run_watcher(farm: Farm, tmp: Path, scenarios: list[str]) -> dict[str, Measure]:
    feeds = "".join(f'[[feed]]\nid = "f{i}"\nurl = "{farm.url(i)}"\n' for i in range(farm.feeds))
    config_path = tmp / "config.toml"
    config_path.write_text(
        f'rules_dir = "{ROOT / "rules"}"\n[database]\nurl = "sqlite:///{tmp}/w.db"\n'
        f"[http]\nmax_per_host = 32\nmax_connections = 64\n{feeds}"
    )
    config = load_config(config_path, env={})
    rules = load_rules([ROOT / "rules"])
    store = Store.open(config.database.url)
    store.sync_feeds([FeedSpec(f.id, f.url) for f in config.feeds], datetime.now(UTC))
    out: dict[str, Measure] = {}

    async def cycle(pipeline: Pipeline) -> int:
        outcomes = await pipeline.poll_due(force=True)
        return sum(o.new_items for o in outcomes)

    async def main() -> None:
        fetcher = make_fetcher(config)
        pipeline = Pipeline(config, rules, store, fetcher, clock=lambda: datetime.now(UTC))
        try:
            for name in scenarios:
                if name == "ten":
                    for i in range(0, farm.feeds, 10):
                        farm.bump(i)
                requests = farm.requests
                start, cpu = time.perf_counter(), time.process_time()
                items = await cycle(pipeline)
                wall, used = time.perf_counter() - start, time.process_time() - cpu
                out[name] = Measure(wall, used, farm.requests - requests, items)
        finally:
            await fetcher.aclose()

    asyncio.run(main())
    store.close()
    return out


def run_naive(farm: Farm, tmp: Path, scenarios: list[str]) -> dict[str, Measure]:
    """One feed after another: urllib, feedparser, 200 regexes, one INSERT per entry."""
    rng = random.Random(3)
    phrases = [" ".join(rng.sample(WORDS + PARTIES, 2)) for _ in range(200)]
    regexes = [re.compile(r"\b" + re.escape(p) + r"\b", re.IGNORECASE) for p in phrases]
    db = sqlite3.connect(tmp / "naive.db")
    db.execute("create table items (feed text, key text, title text, matched int, primary key (feed, key))")
    etags: dict[int, str] = {}
    out: dict[str, Measure] = {}
    for name in scenarios:
        if name == "ten":
            for i in range(0, farm.feeds, 10):
                farm.bump(i)
        requests, items = farm.requests, 0
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(farm.feeds):
            request = urllib.request.Request(farm.url(i))
            if i in etags:
                request.add_header("If-None-Match", etags[i])
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    body, etag = response.read(), response.headers.get("ETag")
            except urllib.error.HTTPError as exc:
                if exc.code == 304:
                    continue
                raise
            etags[i] = etag or ""
            for entry in feedparser.parse(io.BytesIO(body)).entries:
                text = f"{entry.get('title', '')} {entry.get('summary', '')}"
                matched = sum(1 for r in regexes if r.search(text))
                cur = db.execute(
                    "insert or ignore into items values (?, ?, ?, ?)",
                    (str(i), entry.get("id", ""), entry.get("title"), matched),
                )
                items += cur.rowcount
                db.commit()
        out[name] = Measure(time.perf_counter() - start, time.process_time() - cpu, farm.requests - requests, items)
    db.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.farm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the farm waits before each answer")
    args = parser.parse_args(argv)
    configure_logging("warning")
    scenarios = list(STAGES)
    with tempfile.TemporaryDirectory() as tmp:
        with Farm(args.feeds, args.items, args.latency) as farm:
            ours = run_watcher(farm, Path(tmp), scenarios)
            farm_cpu = farm.cpu / max(1, farm.requests)
        with Farm(args.feeds, args.items, args.latency) as farm:
            naive = run_naive(farm, Path(tmp), scenarios)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = Table(title=f"feed farm: {args.feeds} feeds x {args.items} items on 127.0.0.1 (SQLite, shipped rules)")
    for col in ("cycle", "watcher wall", "CPU s", "items", "items/s", "requests", "naive wall", "ratio"):
        table.add_column(col, justify="left" if col == "cycle" else "right")
    for name, what in STAGES.items():
        o, n = ours[name], naive[name]
        table.add_row(
            f"{name}: {what}", f"{o.wall:.2f} s", f"{o.cpu:.2f}", str(o.items),
            f"{o.items / o.wall:,.0f}" if o.items else "-", str(o.requests), f"{n.wall:.2f} s",
            f"{n.wall / o.wall:.2f}x",
        )  # fmt: skip
    console = Console(width=130)
    console.print(table)
    console.print(
        f"peak RSS of this process {rss_mib:,.0f} MiB; farm CPU {farm_cpu * 1000:.2f} ms per request "
        f"(ratio > 1: watcher faster than the naive pipeline); python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
