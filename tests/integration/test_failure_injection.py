"""Issue acceptance 4: under failure injection no delivery is lost or duplicated, and dead
letters can be retried from the CLI.

Real parts: the store (SQLite and PostgreSQL), apprise with its JSON target and its real Slack
plugin (aimed at loopback), real loopback receivers. Each receiver misbehaves by simulated time
(an hour of 503s, 500s, 429s with Retry-After, answers slower than the send timeout, a port that
refuses connections, a 404 from a misconfigured endpoint) and then accepts. The outbox drains
every simulated minute for three hours. At the end every receiver has accepted every alert
exactly once, except for one measured case: a crash between a successful send and its commit,
which repeats that one message (documented in docs/notifications.md).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from apprise.plugins.slack import NotifySlack

from tests.e2e.helpers import run_cli
from tests.fixtures.feed_server import RecordedRequest, Response
from watcher.model import Channel, DeliveryResult, Item, Match, Message, Reason, Severity
from watcher.notify.deliver import deliver
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.store.decide import PlannedMatch
from watcher.store.store import FeedSpec, Store

T0 = datetime.now(UTC).replace(microsecond=0)
SLACK_PATH = "/services/T0000/B0000/failureinjectiontoken00000"
ALERTS = 5


class Crash(Exception):
    """The process dies here."""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def minutes(self) -> float:
        return (self.now - T0).total_seconds() / 60


class Accepted:
    """What each receiver accepted (answered 2xx to), by channel and headline."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, channel: str, body: bytes) -> None:
        payload = json.loads(body)
        text = payload.get("title") or payload["attachments"][0]["title"]
        headline = next(f"story{i}" for i in range(ALERTS) if f"story{i}" in text)
        with self.lock:
            self.counts[(channel, headline)] += 1


class LateListener:
    """Nothing listens on the port (connection refused) until ``start``."""

    def __init__(self, accepted: Accepted) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.accepted = accepted
        self.httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        accepted = self.accepted

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                accepted.add("refused", body)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def slack_at(feed_server: Any) -> Iterator[str]:
    original = NotifySlack.webhook_url
    NotifySlack.webhook_url = feed_server.url("/services").rstrip("/")
    try:
        yield "slack://" + SLACK_PATH.removeprefix("/services/")
    finally:
        NotifySlack.webhook_url = original


def receivers(feed_server: Any, clock: Clock, accepted: Accepted) -> None:
    """Each path fails in its own way until a simulated time, then accepts."""

    def until(minutes: float, channel: str, failure: Response) -> Any:
        def serve(request: RecordedRequest) -> Response:
            if clock.minutes() < minutes:
                return failure
            accepted.add(channel, request.body)
            return Response(200, body="ok")

        return serve

    feed_server.handler("/outage", until(60, "outage", Response(503)), method="POST")
    feed_server.handler("/errors", until(20, "errors", Response(500, body="internal error")), method="POST")
    feed_server.handler("/slow", until(10, "slow", Response(503, delay=1.5)), method="POST")
    feed_server.handler("/gone", until(30, "gone", Response(404, body="no such hook")), method="POST")
    throttled = Response(429, headers={"Retry-After": "900"}, body="rate_limited")
    feed_server.handler(SLACK_PATH, until(15, "slack", throttled), method="POST")


def test_every_alert_arrives_exactly_once(
    db_url: str,
    feed_server: Any,
    slack_at: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    clock, accepted = Clock(), Accepted()
    receivers(feed_server, clock, accepted)
    late = LateListener(accepted)
    json_url = feed_server.url("/").replace("http://", "json://").rstrip("/")
    channels = {
        "outage": Channel("outage", "apprise", (f"{json_url}/outage",)),
        "errors": Channel("errors", "apprise", (f"{json_url}/errors",)),
        "slow": Channel("slow", "apprise", (f"{json_url}/slow",)),
        "gone": Channel("gone", "apprise", (f"{json_url}/gone",)),
        "slack": Channel("slack", "apprise", (slack_at,), format="markdown"),
        "refused": Channel("refused", "apprise", (f"json://127.0.0.1:{late.port}/hook",)),
    }
    store = Store.open(db_url)
    request.addfinalizer(store.close)
    store.sync_feeds([FeedSpec("news", "https://news.example/rss", "News")], T0)
    for i in range(ALERTS):
        words = " ".join(f"story{i}{w}" for w in ("alpha", "bravo", "charlie"))
        item = Item("news", f"k{i}", f"story{i} {words}", f"https://news.example/{i}", "", "", T0)
        match = Match("probe", "news", f"k{i}", Severity.HIGH, (Reason("title", f"story{i}", 0, 6),))
        store.save_poll(
            "news",
            T0,
            [item],
            [PlannedMatch(match, "Probe", tuple(channels))],
            etag=None,
            last_modified=None,
            next_check_at=T0,
        )

    crashes = {"left": 1, "sends": 0}

    def crash_once_after_a_send(channel: Channel, message: Message) -> DeliveryResult:
        """The process dies after apprise reported success and before the row is marked sent."""
        result = deliver(channel, message, timeout_seconds=0.5)
        if result.ok and channel.name == "errors":
            crashes["sends"] += 1
            if crashes["sends"] == 2 and crashes["left"]:
                crashes["left"] -= 1
                raise Crash
        return result

    policy = RetryPolicy(max_attempts=8, initial=timedelta(seconds=30), maximum=timedelta(minutes=10))

    def new_outbox() -> Outbox:
        return Outbox(
            store, channels, policy=policy, clock=clock, deliver=crash_once_after_a_send, rng=random.Random(7)
        )

    box = new_outbox()
    try:
        for _ in range(180):
            if clock.minutes() >= 30 and late.httpd is None:
                late.start()
            try:
                asyncio.run(box.drain())
            except Crash:
                box = new_outbox()  # the daemon restarts; the claimed row waits out its lease
            clock.now += timedelta(minutes=1)
    finally:
        late.stop()

    counts = store.count_deliveries()
    failed = store.alert_statuses(status=None, limit=100)
    why = [(r.channel, r.attempts, r.last_error) for r in failed if r.status == "failed"]
    assert counts == {"sent": ALERTS * 5, "failed": ALERTS}, why  # the 404s were dead-lettered at once
    assert {r.channel for r in failed if r.status == "failed"} == {"gone"}
    assert all("HTTP 404" in (r.last_error or "") for r in failed if r.status == "failed")

    # The endpoint is fixed; the dead letters are retried from the CLI.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.toml").write_text('[[rule]]\nid = "probe"\ntitle = "Probe"\nquery = "story0"\n')
    config = tmp_path / "config.toml"
    config.write_text(f'rules_dir = "rules"\n[database]\nurl = "{db_url}"\n')
    result = run_cli(capsys, "--config", str(config), "alerts", "retry", "--all")
    assert result.code == 0 and f"{ALERTS} deliveries queued again" in result.out, result
    asyncio.run(box.drain())
    assert store.count_deliveries() == {"sent": ALERTS * 6}

    expected = Counter({(c, f"story{i}"): 1 for c in channels for i in range(ALERTS)})
    duplicates = accepted.counts - expected
    missing = expected - accepted.counts
    assert not missing, missing
    # The one crash between a send and its commit repeated exactly that one message.
    assert sum(duplicates.values()) == 1 and next(iter(duplicates))[0] == "errors", duplicates
