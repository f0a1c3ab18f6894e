"""Notifications: rendering, draining the outbox to a loopback webhook, and one digest of many
alerts; each against a naive baseline measured in the same run. Nothing is asserted but sanity.

    python -m bench.notify            the full run (under a minute)
    python -m bench.notify --quick    smaller counts (a few seconds)

1. render: ``Renderer.render`` per format on alerts that differ in headline and reasons, and
   ``render_digest`` on digests of 200 alerts; against building a fresh ``Renderer`` (loading and
   compiling the templates) for every message, as a straightforward implementation would.
2. drain: N alerts recorded in a SQLite store, drained by ``Outbox`` through apprise ``json://``
   to a stdlib HTTP server on 127.0.0.1 (claim + render + apprise + HTTP + mark sent); against
   the same N posts through bare apprise, with no store. Below 1x is the outbox's overhead.
3. digest: 2,000 alerts waiting for a digest channel, one drain after its 08:00: open, collect,
   render and send one message; against 2,000 single messages, extrapolated from row 2.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import apprise
import jinja2
from rich.console import Console
from rich.table import Table

from bench.timing import best_of
from watcher.logs import configure_logging
from watcher.model import Alert, Channel, Digest, Item, Match, Message, Reason, Severity
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.notify.render import FORMATS, Renderer
from watcher.notify.samples import sample_alert, sample_digest
from watcher.store.decide import PlannedMatch
from watcher.store.store import FeedSpec, Store

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday, noon UTC
MORNING = datetime(2026, 11, 29, 8, 0, 5, tzinfo=UTC)  # just past the digest channel's 08:00
Row = tuple[str, str, str, str, str]


# -- 1. rendering ---------------------------------------------------------------------------------
def varied_alerts(n: int, channel: str) -> list[Alert]:
    """Sample alerts that differ a little each time: headline, reasons, severity, story."""
    base = sample_alert(channel, T0)
    severities = list(Severity)
    return [
        replace(
            base,
            delivery_id=i,
            severity=severities[i % len(severities)],
            item_title=f"{base.item_title} #{i}",
            item_link=f"{base.item_link}-{i}",
            reasons=(*base.reasons[: 1 + i % 3], f'title contains "case {i}"'),
            published_at=T0 - timedelta(minutes=i),
            story_id=4217 + i // 3,
        )
        for i in range(n)
    ]


def big_digest(n: int, channel: str) -> Digest:
    """A digest of ``n`` alerts built from the sample digest's five: some share a story."""
    sample = sample_digest(channel, T0)
    alerts = tuple(
        replace(
            a,
            delivery_id=i,
            item_title=f"{a.item_title} #{i}",
            reasons=(*a.reasons, f'title contains "case {i}"'),
            published_at=T0 - timedelta(minutes=i),
            story_id=None if a.story_id is None else a.story_id + i // 4,
        )
        for i in range(n)
        for a in [sample.alerts[i % len(sample.alerts)]]
    )
    return replace(sample, alerts=alerts)


def alert_row(fmt: str, quick: bool) -> Row:
    ours_n, naive_n, repeat = (300, 10, 2) if quick else (2000, 40, 5)
    channel = Channel("bench", format=fmt)
    channels = {"bench": channel}
    alerts = varied_alerts(ours_n, "bench")
    renderer = Renderer(channels)
    t_ours = best_of(lambda: [renderer.render(a, channel) for a in alerts], repeat) / ours_n
    t_naive = best_of(lambda: [Renderer(channels).render(a, channel) for a in alerts[:naive_n]], repeat) / naive_n
    return (
        f"render: one alert, {fmt}",
        f"{1 / t_ours:,.0f} msg/s",
        f"{1 / t_naive:,.0f} msg/s",
        f"{t_naive / t_ours:,.0f}x",
        f"naive: new Renderer per message; best of {repeat}",
    )


def digest_row(fmt: str, quick: bool) -> Row:
    ours_n, naive_n, repeat = (3, 2, 2) if quick else (10, 5, 5)
    channel = Channel("bench", format=fmt)
    channels = {"bench": channel}
    digest = big_digest(200, "bench")
    renderer = Renderer(channels)
    t_ours = best_of(lambda: [renderer.render_digest(digest, channel) for _ in range(ours_n)], repeat) / ours_n
    t_naive = best_of(lambda: [Renderer(channels).render_digest(digest, channel) for _ in range(naive_n)], repeat)
    t_naive /= naive_n
    return (
        f"render: digest of 200 alerts, {fmt}",
        f"{t_ours * 1000:.1f} ms/digest",
        f"{t_naive * 1000:.1f} ms/digest",
        f"{t_naive / t_ours:.1f}x",
        f"{channel.digest_max_items} listed + CSV of all; naive: new Renderer per digest",
    )


# -- a loopback webhook ---------------------------------------------------------------------------
class Receiver(ThreadingHTTPServer):
    """Answers 200 to every POST and counts them."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.posts = 0

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server_address[1]}/hook"

    def reset(self) -> None:
        with self.lock:
            self.posts = 0


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.posts += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per POST on stderr would swamp the table


@contextmanager
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- the store ------------------------------------------------------------------------------------
def open_store(folder: str) -> Store:
    store = Store.open(f"sqlite:///{folder}/notify.db")
    store.sync_feeds([FeedSpec("news", "https://example.org/news.atom", "News")], T0)
    return store


def record(store: Store, n: int, channel: str, chunk: int = 100) -> None:
    """Record ``n`` alerts for ``channel``, ``chunk`` items per poll."""
    for start in range(0, n, chunk):
        items, planned = [], []
        for i in range(start, min(n, start + chunk)):
            key = f"k{i}"
            # Words of their own, so no two items are taken for one story.
            title = " ".join(f"{key}{word}" for word in ("alpha", "bravo", "charlie", "delta"))
            at = T0 + timedelta(seconds=i)
            items.append(Item("news", key, title, f"https://example.org/{key}", "", "", at))
            match = Match("inquiry", "news", key, Severity.HIGH, (Reason("title", f"{key}alpha", 0, 5),))
            planned.append(PlannedMatch(match, "Inquiry opened", (channel,)))
        store.save_poll("news", T0, items, planned, etag=None, last_modified=None, next_check_at=T0)


# -- 2. draining the outbox -----------------------------------------------------------------------
def drain_outbox(store: Store, channels: dict[str, Channel], now: datetime, n: int) -> tuple[float, int]:
    """Drain until ``n`` deliveries are sent; returns (seconds, digests sent)."""
    box = Outbox(store, channels, policy=RetryPolicy(), clock=lambda: now)  # builds its Renderer: not timed
    sent = digests = 0
    start = time.perf_counter()
    for _ in range(10):  # a guard: everything goes in the first drain unless a send fails
        result = asyncio.run(box.drain(batch=50, max_batches=n // 50 + 2))
        sent, digests = sent + result.sent, digests + result.digests
        if sent >= n or result.failed:
            break
    elapsed = time.perf_counter() - start
    if sent != n:
        raise SystemExit(f"outbox sent {sent} of {n}: {store.count_deliveries()}")
    return elapsed, digests


def bare_apprise(url: str, messages: Sequence[Message]) -> None:
    for message in messages:
        sender = apprise.Apprise()
        sender.add(url)
        sender.notify(body=message.body, title=message.title)


def bench_drain(rows: list[Row], quick: bool, hook: Receiver) -> float:
    """Returns the outbox's seconds per delivery, for row 3's extrapolation."""
    n = 50 if quick else 200
    channel = Channel("hook", "apprise", (hook.url,), format="text")
    # The bare sends carry what the outbox would send: the same template, the same sizes.
    messages = [Renderer({"hook": channel}).render(a, channel) for a in varied_alerts(n, "hook")]
    bare_apprise(hook.url, messages[:3])  # warm-up: requests, urllib3, the server's threads
    hook.reset()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(tmp)
        record(store, n, "hook")
        t_ours, _ = drain_outbox(store, {"hook": channel}, T0 + timedelta(hours=1), n)
        store.close()
    if hook.posts != n:
        raise SystemExit(f"the webhook received {hook.posts} posts from the outbox, expected {n}")
    hook.reset()
    start = time.perf_counter()
    bare_apprise(hook.url, messages)
    t_naive = time.perf_counter() - start
    if hook.posts != n:
        raise SystemExit(f"the webhook received {hook.posts} posts from bare apprise, expected {n}")
    rows.append(
        (
            f"drain: {n} alerts to a loopback json:// webhook",
            f"{n / t_ours:,.0f} deliveries/s",
            f"{n / t_naive:,.0f} sends/s",
            f"{t_naive / t_ours:.2f}x",
            f"overhead of the outbox: {(t_ours - t_naive) / n * 1000:+.1f} ms/delivery; naive: bare apprise, no store",
        )
    )
    return t_ours / n


# -- 3. one digest of many alerts -----------------------------------------------------------------
def bench_digest(rows: list[Row], hook: Receiver, per_delivery: float) -> None:
    n = 2000
    channel = Channel("morning", "apprise", (hook.url,), mode="digest", digest_schedule="0 8 * * *")
    hook.reset()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(tmp)
        start = time.perf_counter()
        record(store, n, "morning")
        recorded = time.perf_counter() - start
        t_ours, digests = drain_outbox(store, {"morning": channel}, MORNING, n)
        store.close()
    if digests != 1 or hook.posts != 1:
        raise SystemExit(f"expected one digest and one post, got {digests} digests and {hook.posts} posts")
    t_naive = per_delivery * n
    rows.append(
        (
            f"digest: {n:,} alerts, one drain after 08:00",
            f"{t_ours * 1000:,.0f} ms/digest",
            f"{t_naive * 1000:,.0f} ms",
            f"{t_naive / t_ours:.1f}x",
            f"naive: {n:,} single messages, extrapolated from row 2 ({per_delivery * 1000:.1f} ms each), "
            f"not sent; recording the alerts took {recorded:.1f}s",
        )
    )


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    configure_logging("warning")
    # requests honours proxy variables; the webhook is on loopback and must be reached directly.
    os.environ["NO_PROXY"] = ",".join(filter(None, (os.environ.get("NO_PROXY"), "127.0.0.1")))
    rows: list[Row] = [alert_row(fmt, quick) for fmt in FORMATS]
    rows += [digest_row(fmt, quick) for fmt in FORMATS]
    with receiver() as hook:
        per_delivery = bench_drain(rows, quick, hook)
        bench_digest(rows, hook, per_delivery)
    title = "watcher notifications (higher ratio = faster than the naive baseline)"
    table = Table(title=title + (" --quick" if quick else ""))
    for col in ("benchmark", "watcher", "naive", "ratio", "note"):
        table.add_column(col, justify="right" if col in ("watcher", "naive", "ratio") else "left")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)
    print(
        f"python {sys.version.split()[0]}, jinja2 {jinja2.__version__}, apprise {apprise.__version__}, "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
