"""Load and cross-check everything a run needs, and build the stages from the config.

Config and rule files are validated separately (rule files are shared between deployments);
this is where a rule naming a channel the config does not define is caught, before any poll.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.config import Config, FeedConfig, load_config
from watcher.errors import RuleError
from watcher.feeds.fetch import Fetcher, FetchPolicy
from watcher.model import Rule
from watcher.notify.outbox import RetryPolicy
from watcher.notify.render import Renderer
from watcher.notify.samples import check_templates
from watcher.rules import load_rules
from watcher.store.store import Store


def utcnow() -> datetime:
    return datetime.now(UTC)


Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Loaded:
    config: Config
    rules: list[Rule]
    # Built here so a broken template is a ConfigError at load (and a reload keeps the last good).
    renderer: Renderer
    templates: list[str]  # one line per channel: its format and where its templates come from


def load(config_path: Path) -> Loaded:
    """Read the config, every rule file and every template. Raises ConfigError / RuleError with
    file and line."""
    config = load_config(config_path)
    rules = load_rules([config.rules_dir])
    known = config.resolved_channels
    feeds = {f.id for f in config.feeds}
    for rule in rules:
        for name in rule.channels:
            if name not in known:
                raise _rule_error(rule, f'"channels": unknown channel "{name}" (known: {", ".join(sorted(known))})')
        for feed in rule.feeds:
            if feed not in feeds:
                raise _rule_error(rule, f'"feeds": unknown feed "{feed}" (see [[feed]] in {config.path})')
    # Render every template on the samples too: a template that only fails on data (a misspelt
    # variable) must stop the daemon from starting, not fail each alert at 3 a.m.
    renderer = Renderer(config.resolved_channels)
    report = check_templates(config.resolved_channels, utcnow(), renderer)
    return Loaded(config, rules, renderer, report)


def _rule_error(rule: Rule, message: str) -> RuleError:
    """An error at the rule's header line, for checks that need the config as well as the rule."""
    file, _, line = rule.source.rpartition(":")
    return RuleError(f'rule "{rule.id}": {message}', file, int(line) if line.isdigit() else None, rule.id)


def fetch_policy(config: Config) -> FetchPolicy:
    http = config.http
    return FetchPolicy(
        user_agent=http.user_agent,
        connect_timeout_seconds=http.connect_timeout.total_seconds(),
        read_timeout_seconds=http.read_timeout.total_seconds(),
        deadline_seconds=http.deadline.total_seconds(),
        max_body_bytes=http.max_body_bytes,
        max_redirects=http.max_redirects,
        max_connections=http.max_connections,
        max_per_host=http.max_per_host,
        per_host_rate=http.per_host_rate,
        block_private_addresses=http.block_private_addresses,
        allowed_networks=tuple(http.allowed_networks),
    )


def make_fetcher(config: Config) -> Fetcher:
    return Fetcher(fetch_policy(config))


def retry_policy(config: Config) -> RetryPolicy:
    d = config.delivery
    # One lease for every claim (feeds, pages, deliveries, digests), renewed while work is in flight.
    return RetryPolicy(
        max_attempts=d.max_attempts, initial=d.backoff_initial, maximum=d.backoff_max, lease=config.poll.claim_lease
    )


def make_executor(config: Config) -> Executor | None:
    """A process pool when asked for: feedparser is CPU-bound and holds the GIL."""
    workers = config.poll.parse_workers
    if workers <= 0:
        return None
    import multiprocessing

    # forkserver: forking a process that runs threads (httpx, the DB pool) is unsafe.
    return RespawningPool(
        lambda: ProcessPoolExecutor(
            max_workers=min(workers, os.cpu_count() or 1), mp_context=multiprocessing.get_context("forkserver")
        )
    )


class RespawningPool(Executor):
    """A process pool that replaces itself once a worker has died.

    A ProcessPoolExecutor whose worker was killed (the OOM killer, a feed that crashed the
    parser) is broken for good: every later submit fails, so every feed would fail to parse until
    a restart. The parses in flight when the worker died fail once (their feeds retry with
    backoff, as for any failure); the next submit gets a new pool.
    """

    def __init__(self, make: Callable[[], ProcessPoolExecutor]) -> None:
        self._make = make
        self._pool = make()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._make()
                return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def merge_stored_feeds(config: Config, store: Store) -> Config:
    """The config with the feeds added by `watcher feeds add` / `import`, and paused feeds disabled.

    The config file wins on an id clash: its ``[[feed]]`` block is polled and the stored one is
    ignored (`feeds add` refuses a config id, so a clash only arises when the config later gains
    the id). Pausing is database state and applies to config feeds too.
    """
    paused = store.paused_feed_ids()
    feeds = [f.model_copy(update={"enabled": False}) if f.id in paused else f for f in config.feeds]
    defined = {f.id for f in config.feeds}
    for s in store.cli_feeds():
        if s.id in defined:
            continue
        interval = timedelta(seconds=s.interval_seconds) if s.interval_seconds else None
        feeds.append(
            FeedConfig(
                id=s.id,
                url=s.url,
                title=s.title,
                interval=interval,
                tags=list(s.tags),
                full_text=s.full_text,
                enabled=not s.paused,
            )
        )
    return config.model_copy(update={"feeds": feeds})


def load_stored_feeds(loaded: Loaded) -> Loaded:
    """``merge_stored_feeds`` for a command that has no store open yet. Reads in a transaction
    that is rolled back, so even `poll --dry-run` records nothing. Raises StoreError."""
    store = Store.open(loaded.config.database.url, dry_run=True)
    try:
        config = merge_stored_feeds(loaded.config, store)
    finally:
        store.close()
    return replace(loaded, config=config)
