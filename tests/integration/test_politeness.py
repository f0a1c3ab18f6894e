"""Polite polling against a real loopback server: the schedule follows the server's caching hints
(Cache-Control max-age, Expires, RSS ttl) and its Retry-After, within poll.max_server_interval and
never below the configured interval; and one host gets at most http.per_host_rate requests a
second, however many of its feeds are due."""

from __future__ import annotations

import asyncio
import email.utils
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fixtures.feed_server import RecordedRequest, Response
from watcher.app import make_fetcher
from watcher.config import load_config
from watcher.pipeline import Pipeline
from watcher.store.store import FeedSpec, Store

NOW = datetime.now(UTC).replace(microsecond=0)
RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{ttl}'
    "<item><title>Ordinary item</title><link>https://example.org/a</link><guid>a</guid></item>"
    "</channel></rss>"
)


def _setup(tmp_path: Path, feeds: dict[str, str], extra: str = "") -> tuple[Any, Store]:
    blocks = "".join(f'[[feed]]\nid = "{fid}"\nurl = "{url}"\n' for fid, url in feeds.items())
    (tmp_path / "rules").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(
        f'rules_dir = "rules"\n[database]\nurl = "sqlite:///{tmp_path}/w.db"\n'
        f'[poll]\ndefault_interval = "15m"\nmax_server_interval = "24h"\n{extra}{blocks}'
    )
    config = load_config(path, env={})
    store = Store.open(config.database.url)
    store.sync_feeds([FeedSpec(f.id, f.url) for f in config.feeds], NOW)
    return config, store


def _poll(config: Any, store: Store) -> None:
    async def run() -> None:
        fetcher = make_fetcher(config)
        try:
            await Pipeline(config, [], store, fetcher, clock=lambda: NOW).poll_due(force=True)
        finally:
            await fetcher.aclose()

    asyncio.run(run())


def test_the_schedule_follows_the_server(tmp_path: Path, feed_server: Any) -> None:
    # Expires is measured from the response's own Date (the server's clock), here the real time.
    expires = email.utils.format_datetime(datetime.now(UTC) + timedelta(hours=5), usegmt=True)
    plain = RSS.format(ttl="")
    feeds = {
        "max-age": feed_server.route("/a.rss", body=plain, headers={"Cache-Control": "public, max-age=7200"}),
        "expires": feed_server.route("/b.rss", body=plain, headers={"Expires": expires}),
        "ttl": feed_server.route("/c.rss", body=RSS.format(ttl="<ttl>180</ttl>")),
        "capped": feed_server.route("/d.rss", body=plain, headers={"Cache-Control": "max-age=31536000"}),
        "shorter": feed_server.route("/e.rss", body=plain, headers={"Cache-Control": "max-age=60"}),
        "no-cache": feed_server.route("/f.rss", body=plain, headers={"Cache-Control": "no-cache, max-age=7200"}),
        "limited": feed_server.route("/g.rss", status=429, headers={"Retry-After": "7200"}),
    }
    config, store = _setup(tmp_path, feeds)
    try:
        _poll(config, store)
        waits = {}
        for fid in feeds:
            state = store.feed_state(fid)
            assert state is not None and state.next_check_at is not None
            waits[fid] = state.next_check_at - NOW
    finally:
        store.close()
    assert waits["max-age"] == timedelta(hours=2)
    assert abs(waits["expires"] - timedelta(hours=5)) <= timedelta(seconds=2)  # HTTP dates: whole seconds
    assert waits["ttl"] == timedelta(hours=3)
    assert waits["capped"] == timedelta(hours=24)  # poll.max_server_interval
    assert waits["shorter"] == timedelta(minutes=15)  # never more often than configured
    assert waits["no-cache"] == timedelta(minutes=15)
    assert waits["limited"] == timedelta(hours=2)  # Retry-After beats the first backoff (15m +-10%)


def test_one_host_gets_at_most_its_rate(tmp_path: Path, feed_server: Any) -> None:
    """The rate holds when requests queue for the host's connection slots, not only when they
    are free: the server answers in batches (every held response at once, on a 1 s tick), so all
    eight slots free together while later requests are past their turn. A request paced before
    it waited for its slot would then leave in a burst with the others (five, then eight, in
    half a second)."""
    seen: list[float] = []
    lock = threading.Lock()
    started = time.monotonic()
    tick = 1.0

    def serve(_request: RecordedRequest) -> Response:
        now = time.monotonic()
        with lock:
            seen.append(now)
        feed_server.stopping.wait(tick - (now - started) % tick)  # held until the next tick
        return Response(200, {"content-type": "application/rss+xml"}, RSS.format(ttl=""))

    feeds = {f"f{i}": feed_server.handler(f"/feed{i}.rss", serve) for i in range(24)}
    config, store = _setup(tmp_path, feeds, extra="[http]\nper_host_rate = 10\nmax_per_host = 8\n")
    try:
        _poll(config, store)
    finally:
        store.close()
    assert len(seen) == 24
    # 10 requests a second: 5 in any half second, one more for a request arriving a little late
    # (a new connection's setup, a busy machine) onto the next one's heels.
    busiest = max(sum(1 for t in seen if start <= t < start + 0.5) for start in seen)
    assert busiest <= 6, busiest
    assert seen[-1] - seen[0] >= 23 / 10 - 0.1  # the requests took their share of time


def test_a_slow_poll_keeps_its_claim_and_a_dead_ones_lapses(tmp_path: Path, feed_server: Any) -> None:
    """The lease is renewed while a poll runs, so another replica never takes over a slow feed;
    a claim nobody renews (the replica died) lapses after one lease."""
    slow = feed_server.route("/slow.rss", body=RSS.format(ttl=""), delay=3.0)
    config, store = _setup(tmp_path, {"slow": slow, "dead": feed_server.route("/dead.rss", body="x")})
    config = config.model_copy(update={"poll": config.poll.model_copy(update={"claim_lease": timedelta(seconds=2)})})
    other = Store.open(config.database.url)
    clock = lambda: datetime.now(UTC)  # noqa: E731 - real time: the lease is about real seconds
    # The "dead" replica claimed its feed and vanished: nobody renews that claim.
    assert [f.id for f in other.claim_due_feeds(["dead"], due_by=None, until=clock() + timedelta(seconds=2), limit=1)]

    async def run() -> list[str]:
        fetcher = make_fetcher(config)
        try:
            poll = asyncio.create_task(Pipeline(config, [], store, fetcher, clock=clock).poll_due(only=["slow"]))
            await asyncio.sleep(2.5)  # past the first lease
            taken = await asyncio.to_thread(
                other.claim_due_feeds, ["slow", "dead"], due_by=clock(), until=clock() + timedelta(seconds=2), limit=2
            )
            await poll
            return [f.id for f in taken]
        finally:
            await fetcher.aclose()

    try:
        taken = asyncio.run(run())
        state = store.feed_state("slow")
    finally:
        store.close()
        other.close()
    assert taken == ["dead"]  # the slow poll's claim was renewed; the dead replica's lapsed
    assert state is not None and state.next_check_at is not None
    assert state.next_check_at - datetime.now(UTC) > timedelta(minutes=14)  # the poll finished normally


def test_moved_feeds_follow_and_gone_feeds_stop(tmp_path: Path, feed_server: Any) -> None:
    """301 moves the feed for good (kept across a restart's sync); 302 does not; 410 pauses it."""
    body = RSS.format(ttl="")
    new_url = feed_server.route("/new.rss", body=body)
    feed_server.route("/old.rss", status=301, headers={"Location": new_url})
    feed_server.route("/tmp.rss", status=302, headers={"Location": feed_server.url("/elsewhere.rss")})
    feed_server.route("/elsewhere.rss", body=body)
    feeds = {"moved": feed_server.url("/old.rss"), "visiting": feed_server.url("/tmp.rss")}
    feeds["gone"] = feed_server.route("/gone.rss", status=410)
    config, store = _setup(tmp_path, feeds)
    try:
        _poll(config, store)
        _poll(config, store)
        # A restart syncs the config's feeds again: the move must survive it.
        store.sync_feeds([FeedSpec(f.id, f.url) for f in config.feeds], NOW)
        _poll(config, store)
        moved, visiting, gone = (store.feed_state(f) for f in ("moved", "visiting", "gone"))
        statuses = {s.id: s for s in store.feed_statuses()}
    finally:
        store.close()
    assert moved is not None and moved.url == new_url and moved.moved_from == feeds["moved"]
    assert len(feed_server.requests_for("/old.rss")) == 1  # then straight to the new address
    assert len(feed_server.requests_for("/new.rss")) == 3
    assert visiting is not None and visiting.url == feeds["visiting"]  # a 302 is not a move
    assert len(feed_server.requests_for("/tmp.rss")) == 3
    assert len(feed_server.requests_for("/gone.rss")) == 1  # paused: never asked again
    assert gone is not None and gone.next_check_at is not None and gone.next_check_at > NOW + timedelta(days=365)
    assert "410" in (statuses["gone"].last_error or "") and statuses["moved"].url == new_url
