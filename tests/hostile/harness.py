"""Run one poll cycle of the real pipeline: a hostile feed beside a healthy one, on a real store.

Owns the cycle (config, store, fetcher, ``Pipeline.poll_due``), the memory measurement (the
process's resident set, sampled while the cycle runs) and a raw TCP server for answers no HTTP
server library would send (HTTP/1.0 close-delimited bodies, lying Content-Length, endless headers,
silence after accept).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.app import fetch_policy
from watcher.config import load_config
from watcher.feeds.fetch import Fetcher
from watcher.model import Item
from watcher.pipeline import Pipeline, PollOutcome
from watcher.rules import load_rules
from watcher.store.store import FeedSpec, FeedStatus, Store

NOW = datetime.now(UTC).replace(microsecond=0)
HEALTHY_ITEMS = 2

# A rule that hostile text may match ("notice"); linked pages are read only for ``full_text``
# cases (every page the corpus links is on loopback or refused: nothing leaves the machine).
RULES = """\
[[rule]]
id = "notice"
title = "A notice"
any = ["notice"]
"""


def rss(items: str, *, channel: str = "<title>Hostile</title>", prolog: str = '<?xml version="1.0"?>') -> str:
    return f'{prolog}<rss version="2.0"><channel>{channel}{items}</channel></rss>'


# Dated now, so a first poll treats items as news (matched, their pages read), not as history.
PUB_DATE = f"<pubDate>{email.utils.format_datetime(NOW, usegmt=True)}</pubDate>"


def item(n: int | str, *, title: str | None = None, link: str | None = None, extra: str = "") -> str:
    title = f"Notice {n}" if title is None else title
    link = f"https://example.org/notice/{n}" if link is None else link
    date = "" if "<pubDate>" in extra else PUB_DATE
    return f"<item><title>{title}</title><link>{link}</link><guid>g-{n}</guid>{date}{extra}</item>"


# Old items: history on a first poll, so they are stored but never matched and their pages (not
# on loopback) never read.
_OLD = "<pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate>"
HEALTHY = rss(
    item("h1", title="Healthy 1", link="https://example.org/healthy/1", extra=_OLD)
    + item("h2", title="Healthy 2", link="https://example.org/healthy/2", extra=_OLD),
    channel="<title>Healthy</title>",
)


@dataclass(frozen=True)
class Cycle:
    """What one poll cycle left behind, as ``watcher feeds`` and the store see it."""

    status: FeedStatus  # the hostile feed's row: last_error, error_count, items
    healthy: FeedStatus
    items: list[Item]  # the hostile feed's stored items
    outcomes: list[PollOutcome]
    articles: dict[str, str | None]  # linked page URL -> its recorded error (None: read)
    rss_growth_bytes: int  # peak resident set during the cycle minus the resident set before
    seconds: float


def run_cycle(
    tmp_path: Path,
    hostile_url: str,
    healthy_url: str,
    *,
    http: str = "",  # lines under [http]
    full_text: bool = False,
    allowed_networks: tuple[str, ...] = (),
) -> Cycle:
    """Poll both feeds once (forced, one cycle, linked pages included) and read back the store."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.toml").write_text(RULES)
    db = tmp_path / "w.db"
    path = tmp_path / "config.toml"
    path.write_text(
        f'rules_dir = "rules"\n[database]\nurl = "sqlite:///{db}"\n'
        '[http]\nconnect_timeout = "1s"\nread_timeout = "1s"\ndeadline = "3s"\n'
        f"{http}\n"
        f'[poll]\ndefault_interval = "15m"\nmax_articles_per_poll = {20 if full_text else 0}\n'
        f'[[feed]]\nid = "healthy"\nurl = "{healthy_url}"\n'
        f'[[feed]]\nid = "hostile"\nurl = "{hostile_url}"\nfull_text = {"true" if full_text else "false"}\n'
    )
    config = load_config(path, env={})
    rules = load_rules([config.rules_dir])
    store = Store.open(config.database.url)
    try:
        store.sync_feeds([FeedSpec(f.id, f.url) for f in config.feeds], NOW - timedelta(days=1))

        async def cycle() -> list[PollOutcome]:
            policy = replace(fetch_policy(config), allowed_networks=allowed_networks)
            async with Fetcher(policy) as fetcher:
                pipeline = Pipeline(config, rules, store, fetcher, clock=lambda: datetime.now(UTC))
                return await pipeline.poll_due(force=True)

        with resident_growth() as growth:
            started = time.monotonic()
            outcomes = asyncio.run(cycle())
            seconds = time.monotonic() - started
        statuses = {s.id: s for s in store.feed_statuses()}
        items = [i for i in store.items_since(NOW - timedelta(days=2)) if i.feed_id == "hostile"]
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        articles = dict(conn.execute("select url, error from articles").fetchall())
    return Cycle(statuses["hostile"], statuses["healthy"], items, outcomes, articles, growth[0], seconds)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def resident_growth(every: float = 0.005) -> Iterator[list[int]]:
    """Sample the resident set while the block runs; yields [peak minus start] once it ends.

    The resident set, not tracemalloc: a bomb inflated by zlib or a tree built by libxml2 is C
    memory that tracemalloc never sees, and sampling costs the cycle nothing measurable.
    """
    start = _resident_bytes()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            peak[0] = max(peak[0], _resident_bytes())

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    result = [0]
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _resident_bytes())
        result[0] = peak[0] - start


class RawServer:
    """A TCP listener on 127.0.0.1 that runs ``script`` on each accepted connection, for answers
    an HTTP server library will not produce. ``accept=False``: listen and never accept (the
    kernel completes the handshake; nothing is ever read or answered)."""

    def __init__(self, script: Callable[[socket.socket, threading.Event], None], *, accept: bool = True) -> None:
        self._script = script
        self.stopping = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept = accept
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self._thread.start()

    def url(self, path: str = "/feed.xml") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            if not self._accept:
                self.stopping.wait(0.05)
                continue
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                self._script(conn, self.stopping)

    def close(self) -> None:
        self.stopping.set()
        self._thread.join()
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


def read_request(conn: socket.socket) -> bytes:
    """The request head, read up to its blank line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
