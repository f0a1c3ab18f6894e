"""Issue 13, a notification receiver down for a simulated day, then back: every alert arrives,
once, in the order it was raised on each channel, within the default retry policy; a receiver
answering 429 with Retry-After is not asked again before the time it gave.

The one alert whose send proved a channel back may arrive ahead of the others (see the test).

Real parts as in tests/integration/test_failure_injection.py (which covers three simulated
hours): the store on SQLite and PostgreSQL, apprise's JSON target, loopback receivers. Time is
simulated: the outbox drains every ten simulated minutes for 26 hours.
The policy used is the default backoff with enough tries for a day of hourly probes.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fixtures.feed_server import RecordedRequest, Response
from tests.integration.test_failure_injection import T0, Clock
from watcher.model import Channel, Item, Match, Reason, Severity
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.store.decide import PlannedMatch
from watcher.store.store import FeedSpec, Store

ALERTS = 12
DAY = 24 * 60  # simulated minutes
RETRY_AFTER = 2 * 3600  # seconds, asked by the throttling receiver
# A policy for riding out a day: the default backoff (30 s doubling, capped at an hour) and enough
# tries that the alerts' shares of a day of hourly probes stay within it.
DAY_POLICY = RetryPolicy(max_attempts=36, initial=timedelta(seconds=30), maximum=timedelta(hours=1))


def _raise_alerts(store: Store, channels: tuple[str, ...]) -> None:
    """One alert every ten simulated minutes: the order each channel must keep."""
    store.sync_feeds([FeedSpec("news", "https://news.example/rss", "News")], T0)
    for i in range(ALERTS):
        at = T0 + timedelta(minutes=10 * i)
        words = " ".join(f"story{i}{w}" for w in ("alpha", "bravo", "charlie"))
        item = Item("news", f"k{i}", f"story{i} {words}", f"https://news.example/{i}", "", "", at)
        match = Match("probe", "news", f"k{i}", Severity.HIGH, (Reason("title", f"story{i}", 0, 6),))
        store.save_poll(
            "news",
            at,
            [item],
            [PlannedMatch(match, "Probe", channels)],
            etag=None,
            last_modified=None,
            next_check_at=at,
        )


def _headline(body: bytes) -> str:
    text = json.loads(body).get("title", "")
    return next(f"story{i}" for i in range(ALERTS) if f"story{i} " in f"{text} ")


class LateReceiver:
    """A port nothing listens on (connection refused) until ``start``; then it keeps, in order,
    the headline of every alert it accepts."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.arrived: list[str] = []
        self.httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        arrived = self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived.append(_headline(self.rfile.read(int(self.headers.get("content-length", 0)))))
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


@pytest.mark.timeout(240)
def test_a_day_long_outage_then_everything_once_in_order(db_url: str, feed_server: Any) -> None:
    clock = Clock()
    arrived: dict[str, list[str]] = {"down": [], "refused": [], "throttled": []}
    asked_at: list[float] = []  # simulated minutes of each request to the throttling receiver

    def down_for_a_day(request: RecordedRequest) -> Response:
        if clock.minutes() < DAY:
            return Response(503, body="maintenance")
        arrived["down"].append(_headline(request.body))
        return Response(200, body="ok")

    def throttling(request: RecordedRequest) -> Response:
        asked_at.append(clock.minutes())
        if len(asked_at) == 1:
            return Response(429, headers={"Retry-After": str(RETRY_AFTER)}, body="slow down")
        arrived["throttled"].append(_headline(request.body))
        return Response(200, body="ok")

    feed_server.handler("/down", down_for_a_day, method="POST")
    feed_server.handler("/throttled", throttling, method="POST")
    late = LateReceiver()  # nothing listens (connection refused) for the day
    json_url = feed_server.url("/").replace("http://", "json://").rstrip("/")
    channels = {
        "down": Channel("down", "apprise", (f"{json_url}/down",)),
        "refused": Channel("refused", "apprise", (f"json://127.0.0.1:{late.port}/hook",)),
        "throttled": Channel("throttled", "apprise", (f"{json_url}/throttled",)),
    }
    store = Store.open(db_url)
    try:
        _raise_alerts(store, tuple(channels))
        box = Outbox(store, channels, policy=DAY_POLICY, clock=clock, rng=random.Random(13), timeout_seconds=2)
        while clock.minutes() < DAY + 2 * 60:
            if clock.minutes() >= DAY and late.httpd is None:
                late.start()
            asyncio.run(box.drain())
            clock.now += timedelta(minutes=10)
        counts = store.count_deliveries()
        left = [(r.channel, r.attempts, r.last_error) for r in store.alert_statuses(status=None) if r.status != "sent"]
    finally:
        late.stop()
        store.close()

    arrived["refused"] = late.arrived
    order = [f"story{i}" for i in range(ALERTS)]
    assert counts == {"sent": ALERTS * len(channels)}, (counts, left[:3])  # none dead-lettered, none left
    for channel, got in arrived.items():
        # Once each, in the order raised. The one exception, by design: the alert whose send
        # proved the channel back may arrive first (during the outage the probes rotate, so that
        # no one alert spends all its attempts on it); the rest follow oldest first.
        probe = got[0]
        assert sorted(got) == sorted(order), (channel, got)
        assert got[1:] == [h for h in order if h != probe], (channel, got)
    # The 429's Retry-After was honoured: nothing asked again before it ran out.
    assert asked_at[1] - asked_at[0] >= RETRY_AFTER / 60, asked_at[:3]
