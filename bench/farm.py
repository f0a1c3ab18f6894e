"""Feed-farm benchmark: the whole poll pipeline against N feeds of K items served on 127.0.0.1,
beside rss2email and a naive pipeline, in one run.

Run with ``make bench-farm`` (or ``.venv/bin/python -m bench.farm --feeds 100 --items 50``).
Each feed is RSS or Atom with 1-2 KB summaries, ETag and Last-Modified, and answers 304 to a
conditional GET when it has not changed; the linked article pages are served too. Scenarios, each
on the same store:

- cold: the first cycle, every item new (and published within the backlog window, so all of them
  are matched, clustered and stored);
- warm: every feed unchanged (all 304);
- ten: one new item in a tenth of the feeds.

The farm runs in a process of its own (so its work is not under the contenders' interpreter
lock, and its CPU per request is printed to show it is not the bottleneck); each contender runs in
a fresh process of its own, so CPU seconds and peak RSS are its own:

- watcher: the real pipeline (``Pipeline.poll_due``, shipped rules, SQLite), with a sampling
  profiler across its threads (``bench/sampler.py``) giving the share of busy time per stage;
- rss2email 3.14 from the package registry (installed on first use into ``.venv-rss2email``),
  ``r2e run`` once per cycle, mailing each new entry to a loopback SMTP sink as it does;
- naive: urllib one feed after another (conditional GET too), feedparser, 200 phrase regexes one
  by one over each entry, one INSERT and commit per entry into SQLite: what a first script does.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import io
import json
import multiprocessing
import os
import random
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import feedparser
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RSS2EMAIL = "rss2email==3.14"
RSS2EMAIL_VENV = ROOT / ".venv-rss2email"
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


@dataclass
class Measure:
    wall: float
    cpu: float
    requests: int
    items: int
    rss_mib: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


class FarmServer:
    """N feeds of K items; runs in the farm's own process. ``/_bump/<i>`` adds an item to feed i,
    ``/_stats`` answers the requests served and the CPU they cost."""

    def __init__(self, feeds: int, items: int, latency: float = 0.0):
        self.feeds = feeds
        self.items = items
        self.latency = latency
        self.state = [FeedState() for _ in range(feeds)]
        self.requests = 0
        self.cpu = 0.0
        self._lock = threading.Lock()
        self._now = datetime.now(UTC)
        self._bodies: dict[tuple[int, int], bytes] = {}
        farm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                farm.serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        self.port = self.server.server_address[1]

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        start = time.thread_time()
        path = handler.path.split("?", 1)[0]
        headers: dict[str, str] = {}
        if path.startswith("/_"):
            body = self._control(path).encode()
            status, headers = 200, {"Content-Type": "application/json"}
            counted = False
        else:
            counted = True
            if self.latency:
                time.sleep(self.latency)
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
                text = _text(random.Random(path), 120)
                status, body = 200, f"<html><body><main><p>{text}</p></main></body></html>".encode()
                headers = {"Content-Type": "text/html"}
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        if counted:
            with self._lock:
                self.requests += 1
                self.cpu += time.thread_time() - start

    def _control(self, path: str) -> str:
        if path.startswith("/_bump/"):
            i = int(path.rsplit("/", 1)[1])
            with self._lock:
                self.state[i].version += 1
                self.state[i].extra += 1
        with self._lock:
            return json.dumps({"requests": self.requests, "cpu": self.cpu})

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


def _serve_farm(feeds: int, items: int, latency: float, ports: Any) -> None:
    farm = FarmServer(feeds, items, latency)
    ports.send(farm.port)
    farm.server.serve_forever()


@dataclass
class FarmClient:
    """What a contender needs of the farm: its addresses, and the control endpoints."""

    port: int
    feeds: int

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{i}.{'rss' if i % 2 else 'atom'}"

    def bump(self, i: int) -> None:
        self._get(f"/_bump/{i}")

    def stats(self) -> dict[str, float]:
        return dict(self._get("/_stats"))

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as response:
            return json.loads(response.read())


class Farm:
    """The farm in a process of its own, for the duration of a ``with`` block."""

    def __init__(self, feeds: int, items: int, latency: float = 0.0):
        self.feeds, self.items, self.latency = feeds, items, latency

    def __enter__(self) -> FarmClient:
        ctx = multiprocessing.get_context("spawn")
        mine, theirs = ctx.Pipe()
        self.process = ctx.Process(target=_serve_farm, args=(self.feeds, self.items, self.latency, theirs), daemon=True)
        self.process.start()
        return FarmClient(int(mine.recv()), self.feeds)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join()


def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(target: Callable[..., Any], *args: Any) -> Any:
    """Run ``target(*args)`` in a fresh process and return what it returns: each contender's CPU
    and peak RSS are then its own."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    process = ctx.Process(target=_run_child, args=(results, target, args))
    process.start()
    out = results.get()
    process.join()
    if isinstance(out, BaseException):
        raise out
    return out


def _run_child(results: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        results.put(target(*args))
    except BaseException as exc:  # handed to the parent, which raises it
        results.put(RuntimeError(f"{target.__name__}: {type(exc).__name__}: {exc}"))


# Parse workers for the watcher contender (`[poll] parse_workers`), to compare the two: with
# workers, "CPU s" is the main process only, the workers' parsing is not in it.
PARSE_WORKERS = int(os.environ.get("WATCHER_BENCH_PARSE_WORKERS", "0"))


def run_watcher(farm: FarmClient, tmp: Path, scenarios: list[str]) -> dict[str, Measure]:
    from bench.sampler import StageSampler
    from watcher.app import make_executor, make_fetcher
    from watcher.config import load_config
    from watcher.logs import configure_logging
    from watcher.pipeline import Pipeline
    from watcher.rules import load_rules
    from watcher.store.store import FeedSpec, Store

    configure_logging("warning")
    feeds = "".join(f'[[feed]]\nid = "f{i}"\nurl = "{farm.url(i)}"\n' for i in range(farm.feeds))
    config_path = tmp / "config.toml"
    config_path.write_text(
        f'rules_dir = "{ROOT / "rules"}"\n[database]\nurl = "sqlite:///{tmp}/w.db"\n'
        f"[poll]\nparse_workers = {PARSE_WORKERS}\n[http]\nmax_per_host = 32\nmax_connections = 64\n{feeds}"
    )
    config = load_config(config_path, env={})
    rules = load_rules([ROOT / "rules"])
    store = Store.open(config.database.url)
    store.sync_feeds([FeedSpec(f.id, f.url) for f in config.feeds], datetime.now(UTC))
    out: dict[str, Measure] = {}

    async def main() -> None:
        fetcher = make_fetcher(config)
        executor = make_executor(config)
        pipeline = Pipeline(config, rules, store, fetcher, clock=lambda: datetime.now(UTC), executor=executor)
        try:
            for name in scenarios:
                if name == "ten":
                    for i in range(0, farm.feeds, 10):
                        farm.bump(i)
                requests = farm.stats()["requests"]
                start, cpu = time.perf_counter(), time.process_time()
                with StageSampler() as sampler:
                    outcomes = await pipeline.poll_due(force=True)
                wall, used = time.perf_counter() - start, time.process_time() - cpu
                items = sum(o.new_items for o in outcomes)
                served = int(farm.stats()["requests"] - requests)
                out[name] = Measure(wall, used, served, items, _peak_rss(), sampler.shares())
        finally:
            await fetcher.aclose()
            if executor is not None:
                executor.shutdown()

    asyncio.run(main())
    store.close()
    return out


def rss2email() -> Path | None:
    """The r2e command of a venv of its own, installed from the package registry on first use;
    None when it cannot be installed here."""
    r2e = RSS2EMAIL_VENV / "bin" / "r2e"
    if r2e.exists():
        return r2e
    try:
        subprocess.run([sys.executable, "-m", "venv", str(RSS2EMAIL_VENV)], check=True, capture_output=True)
        pip = [str(RSS2EMAIL_VENV / "bin" / "pip"), "install", "--quiet", RSS2EMAIL]
        subprocess.run(pip, check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError):
        return None
    return r2e if r2e.exists() else None


class SmtpSink:
    """A loopback SMTP server that counts what it receives (aiosmtpd, on an event loop of its own)."""

    def __init__(self, *, keep: bool = False) -> None:
        self.messages = 0
        self.port = 0
        # With ``keep``: (arrival time, raw message) of each, for the latency benchmark.
        self.keep = keep
        self.received: list[tuple[float, bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-sink", daemon=True)

    def __enter__(self) -> SmtpSink:
        from aiosmtpd.smtp import SMTP

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages += 1
                if sink.keep:
                    sink.received.append((time.time(), bytes(envelope.content)))
                return "250 OK"

        class LongLines(SMTP):
            line_length_limit = 1 << 20  # rss2email sends a summary as one line (body-width = 0)

        self._thread.start()
        make = self._loop.create_server(lambda: LongLines(Handler()), "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(make, self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def run_rss2email(r2e: Path, farm: FarmClient, tmp: Path, scenarios: list[str]) -> dict[str, Measure]:
    """``r2e run`` once per cycle, each a process of its own (as cron would run it)."""
    out: dict[str, Measure] = {}
    home = tmp / "r2e"
    home.mkdir()
    config, data = home / "rss2email.cfg", home / "rss2email.json"
    with SmtpSink() as sink:
        subprocess.run(
            [str(r2e), "-c", str(config), "-d", str(data), "new", "bench@127.0.0.1"], check=True, capture_output=True
        )
        text = config.read_text().replace("email-protocol = sendmail", "email-protocol = smtp")
        text = re.sub(r"^smtp-server = .*$", "smtp-server = 127.0.0.1", text, flags=re.M)
        text = re.sub(r"^smtp-port = .*$", f"smtp-port = {sink.port}", text, flags=re.M)
        text += "".join(f"\n[feed.f{i}]\nurl = {farm.url(i)}\n" for i in range(farm.feeds))
        config.write_text(text)
        for name in scenarios:
            if name == "ten":
                for i in range(0, farm.feeds, 10):
                    farm.bump(i)
            requests, mailed = farm.stats()["requests"], sink.messages
            start = time.perf_counter()
            process = subprocess.Popen(
                [str(r2e), "-c", str(config), "-d", str(data), "run"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _pid, _status, usage = os.wait4(process.pid, 0)
            process.returncode = 0
            wall = time.perf_counter() - start
            served = int(farm.stats()["requests"] - requests)
            cpu = usage.ru_utime + usage.ru_stime
            out[name] = Measure(wall, cpu, served, sink.messages - mailed, usage.ru_maxrss / 1024)
    return out


def run_naive(farm: FarmClient, tmp: Path, scenarios: list[str]) -> dict[str, Measure]:
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
        requests, items = farm.stats()["requests"], 0
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
        wall, used = time.perf_counter() - start, time.process_time() - cpu
        out[name] = Measure(wall, used, int(farm.stats()["requests"] - requests), items, _peak_rss())
    db.close()
    return out


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.farm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the farm waits before each answer")
    parser.add_argument("--only", default="watcher,rss2email,naive", help="contenders to run, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    print(figures_table(farm_figures(args.feeds, args.items, args.latency, args.only.split(",")), args.json))
    return 0


def farm_figures(feeds: int, items: int, latency: float, contenders: list[str]) -> dict[str, Any]:
    """Every contender through every scenario, each against a fresh farm and in a fresh process."""
    scenarios = list(STAGES)
    found: dict[str, Any] = {"feeds": feeds, "items": items, "latency": latency, "results": {}}
    r2e = rss2email() if "rss2email" in contenders else None
    if "rss2email" in contenders and r2e is None:
        found["notes"] = [f"rss2email: {RSS2EMAIL} could not be installed here; not measured"]
    runs: dict[str, Callable[[FarmClient, Path], dict[str, Measure]]] = {
        "watcher": lambda farm, tmp: _child(run_watcher, farm, tmp, scenarios),
        "rss2email": lambda farm, tmp: run_rss2email(r2e, farm, tmp, scenarios) if r2e else {},
        "naive": lambda farm, tmp: _child(run_naive, farm, tmp, scenarios),
    }
    for name in contenders:
        with tempfile.TemporaryDirectory() as tmp, Farm(feeds, items, latency) as farm:
            measured = runs[name](farm, Path(tmp))
            if measured:
                stats = farm.stats()
                found["results"][name] = {k: asdict(v) for k, v in measured.items()}
                found.setdefault("farm_cpu_ms_per_request", {})[name] = 1000 * stats["cpu"] / max(1, stats["requests"])
    return found


def figures_table(found: dict[str, Any], json_path: Path | None = None) -> str:
    if json_path:
        json_path.write_text(json.dumps(found, indent=2) + "\n")
    results = found["results"]
    ours = results.get("watcher", {})
    title = f"feed farm: {found['feeds']:,} feeds x {found['items']} items on 127.0.0.1 (SQLite, shipped rules)"
    table = Table(title=title)
    for col in (
        "cycle",
        "contender",
        "wall",
        "CPU s",
        "CPU s / 1k items",
        "peak MiB",
        "requests",
        "items",
        "items/s",
        "watcher faster by",
    ):
        table.add_column(col, justify="left" if col in ("cycle", "contender") else "right")
    for stage, what in STAGES.items():
        for name, measured in results.items():
            m = measured[stage]
            ratio = "" if name == "watcher" or stage not in ours else f"{m['wall'] / ours[stage]['wall']:.2f}x"
            per_k = f"{1000 * m['cpu'] / m['items']:.2f}" if m["items"] else "-"
            rate = f"{m['items'] / m['wall']:,.0f}" if m["items"] else "-"
            first = name == next(iter(results))
            table.add_row(
                f"{stage}: {what}" if first else "", name, f"{m['wall']:.2f} s", f"{m['cpu']:.2f}", per_k,
                f"{m['rss_mib']:,.0f}", str(m["requests"]), str(m["items"]), rate, ratio,
            )  # fmt: skip
    console = Console(width=150, record=True, file=io.StringIO())
    console.print(table)
    if ours:
        for stage in STAGES:
            shares = ", ".join(f"{k} {v:.0%}" for k, v in ours[stage]["stages"].items() if v >= 0.01)
            console.print(f"watcher {stage}: busy time by stage (sampled across threads): {shares}")
    farm_cpu = ", ".join(f"{k} {v:.2f} ms" for k, v in found.get("farm_cpu_ms_per_request", {}).items())
    console.print(f"farm CPU per request (its own process): {farm_cpu}; items for rss2email = messages mailed")
    for note in found.get("notes", []):
        console.print(note)
    return console.export_text()


if __name__ == "__main__":
    sys.exit(main())
