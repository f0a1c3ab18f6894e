"""Prometheus metrics of one process, in the official client's text format.

Owns: the series and their names. Counters and histograms are this process's own (with several
replicas, Prometheus sums them); the gauges that describe shared state (feeds' failures and last
success, the outbox) are read from the database at scrape time, so every replica reports the same
truth. Label values are config ids only (feed ids, rule ids, channel names) and fixed words, so
cardinality is bounded by the config; no URL, error text or secret is ever a label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter("watcher_feed_polls", "Feed polls by result", ["feed", "result"], registry=r)
        self.items = Counter("watcher_items", "Items stored, new or updated", ["feed", "kind"], registry=r)
        self.matches = Counter("watcher_matches", "Rule matches by decision", ["rule", "decision"], registry=r)
        self.deliveries = Counter(
            "watcher_deliveries", "Delivery attempts by channel and result", ["channel", "result"], registry=r
        )
        self.poll_seconds = Histogram(
            "watcher_poll_duration_seconds",
            "Time to poll one feed: fetch, parse, match and store",
            ["feed"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.match_seconds = Histogram(
            "watcher_match_duration_seconds",
            "Time to match one poll's items against the rules",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )

    def watch_store(self, read: Callable[[], StoreSnapshot | None]) -> None:
        """Report the shared state ``read`` returns (called at each scrape; None when the
        database cannot be read: the gauges are left out rather than reported wrong)."""
        self.registry.register(_StoreCollector(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """What the gauges show, read in one go: per feed (last success, consecutive failures) and
    the outbox (pending deliveries, the oldest one's creation time)."""

    now: datetime
    feeds: list[tuple[str, datetime | None, int]]
    pending: int
    oldest_pending: datetime | None


class _StoreCollector(Collector):
    def __init__(self, read: Callable[[], StoreSnapshot | None]) -> None:
        self.read = read

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # no help for names up front: the collector reads the store only when scraped

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.read()
        if snap is None:
            return
        success = GaugeMetricFamily(
            "watcher_feed_last_success_timestamp_seconds", "Last successful poll of the feed", labels=["feed"]
        )
        failures = GaugeMetricFamily(
            "watcher_feed_consecutive_failures", "Failed polls of the feed since its last success", labels=["feed"]
        )
        for feed, last_success, errors in snap.feeds:
            if last_success is not None:
                success.add_metric([feed], last_success.timestamp())
            failures.add_metric([feed], errors)
        yield success
        yield failures
        yield GaugeMetricFamily("watcher_outbox_pending", "Deliveries waiting to be sent", value=snap.pending)
        oldest = (snap.now - snap.oldest_pending).total_seconds() if snap.oldest_pending else 0.0
        yield GaugeMetricFamily(
            "watcher_outbox_oldest_pending_seconds", "Age of the oldest pending delivery", value=max(0.0, oldest)
        )
