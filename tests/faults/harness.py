"""The crash harness: `watcher run` as a real process against loopback peers, killed with SIGKILL
at chosen moments and restarted, then left to finish; and the figures it measured.

Peers: one FeedServer (tests/fixtures/feed_server.py) serves a feed whose matching items arrive
over time, a teaser feed (``full_text``: every item waits for its linked page) whose pages answer
slowly, and the webhook receiver; the SMTP sink (tests/fixtures/smtp_sink.py) takes email. Both
channels get every alert. Used by tests/faults/test_crash_safety.py (a short run in CI) and by
``python -m tests.faults.soak`` (the 50-kill soak).

A kill is aimed: ``random`` (any moment), ``page`` (while a linked page is being fetched),
``send`` (while a webhook POST is in flight: the receiver has the message, the daemon has not
recorded it, so it is sent again after the restart: the one duplicate a kill may cause).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.e2e.helpers import Entry, atom
from tests.fixtures.feed_server import FeedServer, RecordedRequest, Response
from tests.fixtures.smtp_sink import SmtpSink

TOKEN = re.compile(r"case-\d{4}")
# How a title names its item: digits only, which the story index ignores (shared words would make
# two items one story, and one story alerts once).
TAG = re.compile(r"\[(\d{4})\]")
PAGE_DELAY = 1.2  # seconds a linked page takes to answer: long enough to be killed in
SEND_DELAY = 0.4  # seconds the webhook receiver takes to answer
RULES = """\
[[rule]]
id = "itc"
title = "Invitation to comment"
severity = "high"
query = "consultation"
"""
# A linked page: its article is the item's own words (no boilerplate two pages would share).
PAGE = """<html><head><title>{title}</title></head><body><nav>Home Search</nav>
<main><article><h1>{title}</h1><p>{text}</p></article></main></body></html>"""


def tags(message: str) -> set[str]:
    """The items a message names, as their tokens (``case-0004``)."""
    return {f"case-{n}" for n in TAG.findall(message)}


def python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def pg_admin(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url


@dataclass
class Arrivals:
    """Items released over time on two feeds: ``direct`` (the title decides) and ``teasers``
    (the linked page decides). Every third item does not match."""

    start: float
    gap: float
    total: int
    rng: random.Random

    def __post_init__(self) -> None:
        self.published = datetime.now(UTC) - timedelta(minutes=5)
        # Words of each item's own (made-up, without digits: the story index ignores numbers), so
        # no two items share more than the phrase that matches: one story alerts once.
        self.topics = [self._words(5) for _ in range(self.total)]
        self.bodies = [". ".join(self._words(8) for _ in range(4)) for _ in range(self.total)]

    def _words(self, n: int) -> str:
        letters = "bcdfghjklmnpqrstvwxz"
        return " ".join("".join(self.rng.choice(letters) + v for v in self.rng.sample("aeiouy", 4)) for _ in range(n))

    def released(self) -> int:
        return min(self.total, int((time.monotonic() - self.start) / self.gap) + 1)

    def all_released(self) -> None:
        self.start = time.monotonic() - self.gap * self.total

    def is_matching(self, i: int) -> bool:
        return i % 3 != 2

    def token(self, i: int) -> str:
        return f"case-{i:04d}"

    def feed_of(self, i: int) -> str:
        return "teasers" if i % 2 else "direct"

    def entries(self, feed: str) -> list[Entry]:
        out = []
        for i in range(self.released()):
            if self.feed_of(i) != feed:
                continue
            says = " consultation" if self.is_matching(i) and feed == "direct" else ""
            title = f"[{i:04d}] {self.topics[i]}{says}"
            summary = self.topics[i]
            out.append(Entry(self.token(i), title, summary, self.published + timedelta(seconds=i)))
        return out[-60:]

    def page(self, i: int) -> str:
        says = " consultation" if self.is_matching(i) else ""
        return PAGE.format(title=f"[{i:04d}] {self.topics[i]}", text=f"{self.bodies[i]}{says}.")

    def expected(self) -> set[str]:
        return {self.token(i) for i in range(self.total) if self.is_matching(i)}


class Peers:
    """The loopback peers and what they saw: requests in flight, messages per channel."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.server = FeedServer()
        self.sink = SmtpSink()
        self._lock = threading.Lock()
        self.in_flight: dict[str, float] = {}  # kind -> until (monotonic)
        self.hook_messages: list[set[str]] = []
        self.feed_requests: list[float] = []  # monotonic times of feed GETs
        for feed in ("direct", "teasers"):
            self.server.handler(f"/{feed}.atom", self._feed(feed))
        for i in range(arrivals.total):
            self.server.handler(f"/government/news/{arrivals.token(i)}", self._page(i))
        self.server.handler("/hook", self._hook, method="POST")

    def start(self) -> None:
        self.server.start()
        self.sink.start()

    def close(self) -> None:
        self.sink.stop()
        self.server.close()

    def _mark(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.in_flight[kind] = time.monotonic() + seconds

    def busy(self, kind: str) -> bool:
        """A request of ``kind`` arrived and is still being answered (with some margin left)."""
        with self._lock:
            return self.in_flight.get(kind, 0) - time.monotonic() > 0.15

    def _feed(self, feed: str) -> Callable[[RecordedRequest], Response]:
        def serve(_request: RecordedRequest) -> Response:
            with self._lock:
                self.feed_requests.append(time.monotonic())
            body = atom(self.arrivals.entries(feed), base=self.server.url("").rstrip("/"))
            return Response(200, {"content-type": "application/atom+xml"}, body)

        return serve

    def _page(self, i: int) -> Callable[[RecordedRequest], Response]:
        def serve(_request: RecordedRequest) -> Response:
            self._mark("page", PAGE_DELAY)
            return Response(200, {"content-type": "text/html"}, self.arrivals.page(i), delay=PAGE_DELAY)

        return serve

    def _hook(self, request: RecordedRequest) -> Response:
        payload = json.loads(request.body)
        tokens = tags(f"{payload.get('title', '')} {payload.get('message', '')}")
        with self._lock:
            self.hook_messages.append(tokens)
        self._mark("send", SEND_DELAY)
        return Response(200, body="ok", delay=SEND_DELAY)

    def seen(self) -> dict[str, list[set[str]]]:
        email = [tags(m.as_string()) for m in self.sink.messages]
        with self._lock:
            return {"hook": list(self.hook_messages), "email": email}

    def first_feed_request_after(self, t: float) -> float | None:
        with self._lock:
            later = [r for r in self.feed_requests if r >= t]
        return min(later) if later else None


def write_config(tmp: Path, db_url: str, peers: Peers, *, lease: str = "60s", extra: str = "") -> Path:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "itc.toml").write_text(RULES)
    base = peers.server.url("").rstrip("/")
    hook = base.replace("http://", "json://") + "/hook"
    config = tmp / "config.toml"
    config.write_text(f"""\
rules_dir = "rules"

[database]
url = "{db_url}"

[http]
connect_timeout = "2s"
read_timeout = "5s"
deadline = "8s"
max_per_host = 4

[poll]
check_every = "1s"
default_interval = "1s"
claim_lease = "{lease}"
max_articles_per_poll = 4

[delivery]
default_channels = ["hook", "email"]
check_every = "1s"
backoff_initial = "1s"
backoff_max = "2s"
max_attempts = 50
timeout = "5s"

[log]
level = "info"

[channels.hook]
urls = ["{hook}"]

[channels.email]
urls = ["{peers.sink.mailto_url()}"]

[[feed]]
id = "direct"
url = "{base}/direct.atom"

[[feed]]
id = "teasers"
url = "{base}/teasers.atom"
full_text = true
{extra}""")
    return config


class Daemon:
    """`watcher run` as a child process; stderr goes to a file so a kill loses no log line."""

    def __init__(self, config: Path, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> float:
        self.runs += 1
        log = open(self.log_dir / f"daemon-{self.runs}.log", "wb")  # noqa: SIM115 - closed in stop()
        # The real entry point, with faulthandler on SIGUSR1: a hung daemon can be asked where.
        boot = (
            "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
            "from watcher.cli import main; main(sys.argv[1:])"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", boot, "--config", str(self.config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=python_env(),
            cwd=self.config.parent,
        )
        self._log = log
        return time.monotonic()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return int(self.proc.returncode)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("daemon-*.log")))


@dataclass
class Figures:
    database: str
    kills: int = 0
    kills_by_aim: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    recovery_seconds: list[float] = field(default_factory=list)
    finish_seconds: float = 0.0

    @property
    def max_recovery(self) -> float:
        return max(self.recovery_seconds, default=0.0)

    def summary(self) -> str:
        aims = ", ".join(f"{k} {v}" for k, v in sorted(self.kills_by_aim.items()))
        return (
            f"{self.database}: kills {self.kills} ({aims}); alerts {self.alerts} x 2 channels; "
            f"duplicates seen {sum(self.duplicates.values())} {self.duplicates}; "
            f"max recovery {self.max_recovery:.1f}s (restart to first feed request); "
            f"finished {self.finish_seconds:.1f}s after the last restart"
        )


def deliveries(db_url: str) -> list[tuple[str, str, str]]:
    """(channel, status, item key) of every delivery row, read straight from the database."""
    engine = create_engine(pg_admin(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select d.channel, d.status, i.item_key from deliveries d "
                    "join matches m on m.id = d.match_id join items i on i.id = m.item_id"
                )
            ).all()
            return [(str(c), str(s), str(k)) for c, s, k in rows]
    finally:
        engine.dispose()


def item_keys(db_url: str) -> set[str]:
    engine = create_engine(pg_admin(db_url))
    try:
        with engine.connect() as conn:
            return {str(k) for (k,) in conn.execute(text("select item_key from items")).all()}
    finally:
        engine.dispose()


def key_token(item_key: str) -> str:
    found = TOKEN.search(item_key)
    return found.group(0) if found else item_key


def aim(peers: Peers, kind: str, rng: random.Random, timeout: float) -> str:
    """Wait for the moment to kill: a request of ``kind`` in flight, or a random one."""
    if kind == "random":
        time.sleep(rng.uniform(0.3, 2.5))
        return "random"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if peers.busy(kind):
            time.sleep(rng.uniform(0.0, 0.1))
            return kind
        time.sleep(0.02)
    return "random"  # nothing of that kind happened in time: an ordinary random kill


def run(
    tmp: Path,
    db_url: str,
    database: str,
    *,
    kills: int,
    seed: int = 13,
    lease: str = "60s",
    finish_timeout: float = 90.0,
    say: Callable[[str], Any] = lambda _s: None,
) -> tuple[Figures, Peers, Daemon]:
    """Kill the daemon ``kills`` times, restarting it each time, then let it finish. Returns the
    figures, the peers (for the caller's assertions) and the daemon (its logs)."""
    rng = random.Random(seed)
    # Items keep arriving through the kills: one every 2.5 s, about two per kill (a restart takes
    # a few seconds on a busy 2-core machine), for the whole kill phase.
    total = max(12, kills * 2)
    arrivals = Arrivals(time.monotonic(), 2.5, total, rng)
    peers = Peers(arrivals)
    peers.start()
    figures = Figures(database)
    daemon = Daemon(write_config(tmp, db_url, peers, lease=lease), tmp)
    aims = ["random", "page", "send"]
    try:
        started = daemon.start()
        time.sleep(1.0)  # the first process gets going (imports, migration) before the first kill
        for n in range(kills):
            aimed = aim(peers, aims[n % len(aims)], rng, timeout=10.0)
            if not daemon.alive():
                raise AssertionError(f"the daemon exited by itself (code {daemon.proc and daemon.proc.poll()})")
            daemon.kill()
            figures.kills += 1
            figures.kills_by_aim[aimed] += 1
            killed_at = time.monotonic()
            started = daemon.start()
            # Recovery: from the restart to its first feed request (the feeds are due every second).
            deadline = time.monotonic() + 70
            while (first := peers.first_feed_request_after(killed_at)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if first is None:
                raise AssertionError(f"no poll within 70 s of restart {n + 1}")
            figures.recovery_seconds.append(first - started)
            say(f"kill {n + 1}/{kills} ({aimed}): recovered in {first - started:.1f}s")
        arrivals.all_released()
        expected = arrivals.expected()
        finished = time.monotonic()
        deadline = finished + finish_timeout
        while time.monotonic() < deadline:
            rows = deliveries(db_url)
            done = {key_token(k) for c, s, k in rows if s == "sent"}
            seen = peers.seen()
            arrived = all(expected <= set().union(*seen[ch], set()) for ch in seen)
            recorded = len(done) >= len(expected) and len(rows) >= 2 * len(expected)
            if arrived and recorded and all(s == "sent" for _, s, _ in rows):
                break
            time.sleep(0.3)
        figures.finish_seconds = time.monotonic() - finished
        code = daemon.stop()
        if code != 0:
            raise AssertionError(f"the daemon exited {code} on SIGTERM")
        figures.alerts = len(expected)
        for channel, messages in peers.seen().items():
            counts = Counter(t for m in messages for t in m)
            figures.duplicates[channel] = sum(n - 1 for n in counts.values() if n > 1)
        return figures, peers, daemon
    except BaseException:
        if daemon.alive():
            daemon.kill()
        raise
    finally:
        peers.close()
