"""The long-running service: two APScheduler jobs, signals, reload and shutdown.

``poll_due_feeds`` asks the store which feeds are due; ``drain_outbox`` sends what is due. Both
are thin calls into ``pipeline`` and ``notify.outbox``, ``max_instances=1`` and coalesced, so a
slow cycle is never run twice at once. SIGTERM/SIGINT: stop scheduling, give the running cycle a
short grace period, close everything. SIGHUP: reload config and rules, keeping the last good
ones if the new ones are invalid.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Executor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from watcher.app import Clock, Loaded, load, make_executor, make_fetcher, merge_stored_feeds, retry_policy, utcnow
from watcher.errors import ConfigError, StoreError
from watcher.feeds.fetch import Fetcher
from watcher.metrics import Metrics, StoreSnapshot
from watcher.notify.outbox import Outbox
from watcher.notify.source_alerts import report_sources
from watcher.pipeline import Pipeline
from watcher.server import HealthServer
from watcher.store.store import FeedSpec, Store, StoreUnwritable

log = structlog.get_logger("watcher.daemon")

# Ctrl-C must return the prompt quickly: running work gets this long, then it is cancelled.
SHUTDOWN_GRACE_SECONDS = 3.0
# Scheduled retention ([database] retention): the first run at start, then this often.
RETENTION_EVERY = timedelta(hours=6)


class _StoreFailures(Collector):
    """``watcher_store_errors_total``: the store's count of failed transactions, read at scrape."""

    def __init__(self, store: Callable[[], Store | None]) -> None:
        self._store = store

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily("watcher_store_errors", "Database transactions that failed")]

    def collect(self) -> Iterator[CounterMetricFamily]:
        store = self._store()
        yield CounterMetricFamily(
            "watcher_store_errors", "Database transactions that failed", value=store.failures if store else 0
        )


class Daemon:
    def __init__(
        self,
        config_path: Path,
        loaded: Loaded,
        *,
        dry_run: bool = False,
        clock: Clock = utcnow,
        console: TextIO | None = None,
    ):
        self.config_path = config_path
        self.loaded = loaded
        self.dry_run = dry_run
        self.clock = clock
        self.console = console
        self._stop = asyncio.Event()
        self._active: set[asyncio.Task[Any]] = set()
        self.store: Store | None = None
        self.fetcher: Fetcher | None = None
        self.executor: Executor | None = None
        self.pipeline: Pipeline | None = None
        self.outbox: Outbox | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.metrics = Metrics()
        # Database transactions that failed (the server away, the file locked or full), beside
        # the other series on /metrics: an outage the daemon rides out must still be visible.
        self.metrics.registry.register(_StoreFailures(lambda: self.store))
        self._fatal: StoreError | None = None
        self.server: HealthServer | None = None

    def _build(self, loaded: Loaded) -> None:
        assert self.store is not None and self.fetcher is not None
        config = merge_stored_feeds(loaded.config, self.store)
        self.store.sync_feeds([FeedSpec(f.id, f.url, f.title) for f in config.feeds if f.enabled], self.clock())
        self.pipeline = Pipeline(
            config,
            loaded.rules,
            self.store,
            self.fetcher,
            clock=self.clock,
            executor=self.executor,
            metrics=self.metrics,
        )
        self.outbox = Outbox(
            self.store,
            config.resolved_channels,
            policy=retry_policy(config),
            clock=self.clock,
            redactor=config.redactor,
            console=self.console,
            dry_run=self.dry_run,
            timeout_seconds=config.delivery.timeout.total_seconds(),
            renderer=loaded.renderer,
            metrics=self.metrics,
        )
        self.loaded = loaded

    async def run(self) -> None:
        """Run until stopped by a signal or ``stop()``. Raises StoreError if the DB is unusable at
        start, and StoreUnwritable (after a clean shutdown) if it stops accepting writes."""
        config = self.loaded.config
        migrate = config.database.migrate_on_start
        self.store = await asyncio.to_thread(
            partial(Store.open, config.database.url, dry_run=self.dry_run, migrate_schema=migrate)
        )
        if not migrate:
            current, needed = await asyncio.to_thread(self.store.schema_status)
            if current != needed:
                await asyncio.to_thread(self.store.close)
                raise StoreError(
                    f"the database schema is at {current or 'nothing'}, this watcher needs {needed}: "
                    "run `watcher db upgrade` (or set [database] migrate_on_start = true)"
                )
        if self.store.dialect == "sqlite" and not self.dry_run:
            # One process per SQLite file: what is still claimed was claimed by a predecessor that
            # was killed mid-work. Due now, not at the end of its lease (issue 13: a crash loop
            # shorter than the lease would otherwise never poll).
            try:
                released = await asyncio.to_thread(self.store.release_stale_claims, self.clock())
            except StoreError:
                await asyncio.to_thread(self.store.close)
                raise
            if any(released.values()):
                log.info("claims.released", **released)
        self.fetcher = make_fetcher(config)
        self.executor = make_executor(config)
        try:
            await asyncio.to_thread(self._build, self.loaded)
            if config.server.listen:
                host, port = config.server.address
                self.server = HealthServer(host, port, self.metrics, self.ready)
                self.metrics.watch_store(self._snapshot)
                self.server.start()
            self._install_signals()
            self.scheduler = AsyncIOScheduler(timezone="UTC")
            now = self.clock()
            jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, None]], timedelta]] = [
                ("poll_due_feeds", self._poll_job, config.poll.check_every),
                ("drain_outbox", self._drain_job, config.delivery.check_every),
            ]
            if config.database.retention:
                jobs.append(("retention", self._retention_job, RETENTION_EVERY))
            if config.health.channel:
                jobs.append(("source_health", self._health_job, config.health.check_every))
            for job_id, job, every in jobs:
                # One run at a time, and a late run is one run, however many ticks it missed.
                self.scheduler.add_job(
                    job,
                    "interval",
                    seconds=every.total_seconds(),
                    id=job_id,
                    next_run_time=now,
                    max_instances=1,
                    coalesce=True,
                )
            self.scheduler.start()
            log.info(
                "daemon.started",
                feeds=len(self.pipeline.feeds) if self.pipeline else 0,
                rules=len(self.loaded.rules),
                database=config.redactor(config.database.url),
                dry_run=self.dry_run,
            )
            await self._stop.wait()
        finally:
            await self._shutdown()
        if self._fatal is not None:
            raise self._fatal

    def stop(self) -> None:
        self._stop.set()

    def ready(self) -> str | None:
        """None when the daemon can do its work; else why not (for /readyz). Runs on the
        server's thread: it reads attributes and asks the database, nothing else."""
        if self._stop.is_set():
            return "shutting down"
        if self.scheduler is None or not self.scheduler.running:
            return "scheduler not running"
        if self.pipeline is None or self.store is None:
            return "config and rules not loaded"
        try:
            self.store.ping()
        except StoreError as exc:
            return f"database unreachable: {self.loaded.config.redactor(str(exc))}"
        return None

    def _snapshot(self) -> StoreSnapshot | None:
        if self.store is None:
            return None
        try:
            feeds, pending, oldest = self.store.health()
        except StoreError:
            return None
        return StoreSnapshot(self.clock(), feeds, pending, oldest)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        log.info("daemon.stopping", signal=sig.name)
        self.stop()

    def _on_reload_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._active.add(task)
        task.add_done_callback(self._active.discard)

    async def reload(self) -> bool:
        """Reload config and rules; keep the running ones if the new ones are invalid."""
        try:
            loaded = await asyncio.to_thread(load, self.config_path)
        except ConfigError as exc:
            log.error("config.reload_failed", error=str(exc), kept="previous config and rules")
            return False
        if (
            loaded.config.database.url != self.loaded.config.database.url
            or loaded.config.http != self.loaded.config.http
        ):
            log.warning("config.restart_needed", reason="[database] and [http] changes apply after a restart")
        await asyncio.to_thread(self._build, loaded)
        log.info("config.reloaded", feeds=len(loaded.config.feeds), rules=len(loaded.rules))
        return True

    async def _guard(self, name: str, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            await work
        except StoreUnwritable as exc:
            # Disk full or read-only: every later cycle would fetch and drop the same work. Stop
            # with the reason (a non-zero exit) so a supervisor and an operator see it at once.
            log.error(f"{name}.store_unwritable", error=str(exc), action="stopping")
            self._fatal = exc
            self.stop()
        except StoreError as exc:
            # The database went away (a restart, a lock held past the busy timeout): the job runs
            # again at its next tick, and claimed work comes back when its lease ends.
            log.error(f"{name}.store_failed", error=str(exc))
        except asyncio.CancelledError:
            if not self._stop.is_set():
                raise
            # Our own shutdown, past its grace: what was in flight stays claimed and comes back
            # when the lease ends (at once on SQLite). Said once, not as the scheduler's traceback.
            log.info(f"{name}.cancelled", reason="shutting down")
        except Exception:  # a job must never kill the scheduler; log with traceback and go on
            log.exception(f"{name}.crashed")
        finally:
            if task is not None:
                self._active.discard(task)

    async def _poll_job(self) -> None:
        if self._stop.is_set() or self.pipeline is None:
            return
        await self._guard("poll", self._poll_and_wake())

    async def _poll_and_wake(self) -> None:
        assert self.pipeline is not None
        outcomes = await self.pipeline.poll_due()
        if any(o.deliveries for o in outcomes) and self.scheduler is not None:
            # New alerts: drain now instead of waiting for the next drain tick.
            self.scheduler.modify_job("drain_outbox", next_run_time=self.clock())

    async def _drain_job(self) -> None:
        if self._stop.is_set() or self.outbox is None:
            return
        await self._guard("drain", self.outbox.drain())

    async def _health_job(self) -> None:
        if self._stop.is_set() or self.store is None or self.outbox is None or self.pipeline is None:
            return
        config = self.pipeline.config  # with the feeds added from the command line
        await self._guard("health", report_sources(self.store, config, self.outbox.send_notice, self.clock()))

    async def _retention_job(self) -> None:
        if self._stop.is_set() or self.store is None:
            return
        await self._guard("retention", self._retain())

    async def _retain(self) -> None:
        assert self.store is not None
        keep = self.loaded.config.database.retention
        if not keep:
            return
        purged = await asyncio.to_thread(partial(self.store.purge_text, self.clock() - keep, singleton=True))
        if purged is None:
            log.info("retention.skipped", reason="another replica is purging")
        else:
            log.info("retention.purged", items=purged, older_than_days=keep.days)

    async def _shutdown(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        pending = {t for t in self._active if not t.done()}
        if pending:
            _, still = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        if self.fetcher is not None:
            await self.fetcher.aclose()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
        if self.server is not None:
            self.server.stop()
        log.info("daemon.stopped")
