"""Report source health on its channel: one message when a feed's problem starts, one when it
ends (``health`` decides what a problem is; the store decides who reports it).

Owns: the check's order of work. A report that cannot be sent is not recorded as sent, so the
next check tries again; with several replicas, the store's claim lets exactly one report it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog

from watcher.config import Config
from watcher.health import ended, judge, started
from watcher.model import DeliveryResult, Message
from watcher.store.store import Store

log = structlog.get_logger("watcher.health")

Send = Callable[[str, Message], DeliveryResult]  # channel name, message


async def report_sources(store: Store, config: Config, send: Send, now: datetime) -> int:
    """Check every enabled feed once; return how many reports were sent."""
    health = config.health
    if health.channel is None:
        return 0
    ids = [f.id for f in config.feeds if f.enabled]
    facts = await asyncio.to_thread(store.source_facts, ids)
    reported = await asyncio.to_thread(store.open_problems)
    sent = 0
    for fact in facts:
        problem = judge(
            fact,
            now,
            failing_after=health.failing_after,
            silent_factor=health.silent_factor,
            silent_min=health.silent_min,
        )
        was = reported.get(fact.feed_id)
        if problem is not None and (was is None or was[0] != problem.kind):
            if was is not None:  # a different problem now (failing, then serving HTML): replace it
                await asyncio.to_thread(store.release_problem, fact.feed_id, was[0])
            if not await asyncio.to_thread(store.claim_problem, fact.feed_id, problem.kind, now):
                continue  # another replica reports it
            result = await asyncio.to_thread(send, health.channel, started(problem))
            if result.ok:
                sent += 1
                log.warning("source.problem", feed=fact.feed_id, kind=problem.kind, detail=problem.detail)
            else:  # not told: let the next check try again
                await asyncio.to_thread(store.release_problem, fact.feed_id, problem.kind)
                log.error("source.report_failed", feed=fact.feed_id, channel=health.channel, error=result.error)
        elif problem is None and was is not None:
            if not await asyncio.to_thread(store.release_problem, fact.feed_id, was[0]):
                continue
            result = await asyncio.to_thread(send, health.channel, ended(fact.feed_id, was[0], was[1]))
            sent += result.ok
            log.info("source.recovered", feed=fact.feed_id, kind=was[0], reported=result.ok)
    return sent
