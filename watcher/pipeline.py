"""One feed poll, end to end: fetch -> parse -> normalise -> match -> store (items, matches, outbox).

Owns: the order of the stages, the feed's schedule after a poll (interval, backoff, Retry-After)
and the backlog rule. Must not: send notifications (the outbox does) or print (the CLI does).
A failing feed never stops the others: its error is stored on its row and it backs off.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

import structlog

from watcher.config import Config, FeedConfig
from watcher.errors import FeedError, FetchError, FetchFailure, StoreError
from watcher.feeds.article import extract_article
from watcher.feeds.fetch import Fetcher
from watcher.feeds.normalise import normalise_feed
from watcher.feeds.parse import parse_feed
from watcher.fold import fold
from watcher.match import RuleSet
from watcher.metrics import Metrics
from watcher.model import FetchResult, Item, Match, Rule, Silence
from watcher.notify.route import destinations
from watcher.politeness import next_interval, server_hint
from watcher.stages import StageFinder
from watcher.store.claims import claims_held
from watcher.store.decide import PlannedMatch, Recorded, Throttle
from watcher.store.page_queue import QueuedPage
from watcher.store.store import FeedState, SaveResult, Store, StoreUnwritable, retry_while_away

log = structlog.get_logger("watcher.pipeline")

# A claimed feed or page stays claimed for poll.claim_lease and the claim is renewed every third of
# it while the work is in flight: a replica that dies lets go within one lease, and slow work is
# never taken over by another replica while it is still running.
# Linked pages are fetched once per URL and cached.
ARTICLE_CACHE_FOR = timedelta(days=30)
# An item waiting for its page: tries before it is matched on the feed's text alone, and the wait
# after the first failure (tripled after each further one). Its claim is a feed's: poll.claim_lease.
PAGE_ATTEMPTS = 3
PAGE_RETRY_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    feed_id: str
    status: str  # "updated" | "not_modified" | "failed"
    items: int = 0
    new_items: int = 0
    matches: int = 0
    deliveries: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()
    pages_read: int = 0  # items matched this cycle once their page arrived (or was given up on)
    pages_waiting: int = 0  # items of this feed still waiting for their page


@dataclass(frozen=True, slots=True)
class PagesOutcome:
    """What one cycle of the page queue did for one feed."""

    read: int = 0
    matches: int = 0
    deliveries: int = 0


def parse_and_normalise(
    body: bytes, feed_id: str, url: str, headers: dict[str, str], identity: str = "auto"
) -> tuple[list[Item], list[str], int | None]:
    """The CPU-heavy part of a poll, run in a worker (thread or process); must stay picklable.
    Returns the items, the warnings, and the feed's RSS ttl in minutes (None if it gives none)."""
    parsed = parse_feed(body, feed_id=feed_id, url=url, headers=headers)
    items, warnings = normalise_feed(parsed, feed_id, identity)
    return items, [*parsed.warnings, *warnings], parsed.ttl_minutes


@dataclass
class Pipeline:
    """The stages wired for this config. Rebuilt on reload; cheap to construct."""

    config: Config
    rules: Sequence[Rule]
    store: Store
    fetcher: Fetcher
    clock: Callable[[], datetime]
    executor: Executor | None = None  # None: parse in a thread; a process pool uses both cores
    rng: random.Random = field(default_factory=random.Random)
    metrics: Metrics = field(default_factory=Metrics)  # the daemon's, when it serves /metrics

    def __post_init__(self) -> None:
        self.ruleset = RuleSet(self.rules)
        self._stages = StageFinder(self.rules)
        self._rules_by_id = {r.id: r for r in self.rules}
        self._feeds = {f.id: f for f in self.config.feeds if f.enabled}

    @property
    def feeds(self) -> list[FeedConfig]:
        return list(self._feeds.values())

    async def poll_due(self, *, force: bool = False, only: Sequence[str] | None = None) -> list[PollOutcome]:
        """Poll every feed that is due (all of them with ``force``), concurrently."""
        ids = [f for f in self._feeds if only is None or f in only]
        now = self.clock()
        until = now + self.config.poll.claim_lease
        # Forcing means "due now"; claiming still guards against a replica polling it too.
        states = await asyncio.to_thread(
            partial(self.store.claim_due_feeds, ids, due_by=None if force else now, until=until, limit=len(ids))
        )
        renew = partial(self.store.renew_claims, [s.id for s in states])
        async with self._held(renew, until, "feeds"):
            outcomes = list(await asyncio.gather(*(self.poll_feed(self._feeds[s.id], s) for s in states)))
        try:
            pages = await self.read_pages(ids)
            waiting = await asyncio.to_thread(self.store.pages_waiting)
        except StoreUnwritable:
            raise
        except StoreError as exc:  # the queue stays as it was; the next cycle tries again
            log.error("pages.store_failed", error=str(exc))
            pages, waiting = {}, {}
        return _with_pages(outcomes, pages, waiting)

    def _held(
        self, renew: Callable[[datetime, datetime], int], until: datetime, what: str
    ) -> AbstractAsyncContextManager[None]:
        """Renew this cycle's claims (``what``: feeds or pages) every third of the lease while the
        work is in flight: a replica that dies lets go within one lease, and slow work is never
        taken over while it is still running."""

        def failed(exc: StoreError) -> None:
            log.warning(f"{what}.claim_renewal_failed", error=str(exc))

        return claims_held(renew, until, self.config.poll.claim_lease, self.clock, failed)

    async def poll_feed(self, feed: FeedConfig, state: FeedState) -> PollOutcome:
        """Poll one feed. Never raises for a feed problem; the per-feed guard logs the unexpected."""
        bound = log.bind(feed=feed.id)
        started = time.perf_counter()
        try:
            outcome = await self._poll(feed, state, bound)
        except FeedError as exc:
            outcome = await self._failed(feed, state, exc, bound)
        except StoreUnwritable:
            raise  # not this feed's problem: no feed can be recorded, and the daemon stops
        except StoreError as exc:
            bound.error("feed.store_failed", error=str(exc))
            outcome = PollOutcome(feed.id, "failed", error=str(exc))
        except Exception as exc:  # the per-feed guard: one broken feed must not stop the others
            bound.exception("feed.crashed", error=repr(exc))
            wrapped = FeedError(feed.id, feed.url, f"internal error: {exc!r}")
            outcome = await self._failed(feed, state, wrapped, bound)
        self.metrics.polls.labels(feed.id, outcome.status).inc()
        self.metrics.poll_seconds.labels(feed.id).observe(time.perf_counter() - started)
        return outcome

    async def _poll(
        self, feed: FeedConfig, state: FeedState, bound: structlog.typing.FilteringBoundLogger
    ) -> PollOutcome:
        # A feed that moved for good (301/308) from its configured address is polled where it went.
        url = state.url if state.moved_from == feed.url and state.url else feed.url
        etag, modified = (state.etag, state.last_modified) if state.url == url else (None, None)
        result = await self.fetcher.fetch(feed.id, url, etag=etag, last_modified=modified)
        now = self.clock()
        if result.moved_to and result.moved_to != url:
            await asyncio.to_thread(self.store.feed_moved, feed.id, feed.url, result.moved_to)
            bound.warning("feed.moved", to=self.config.redactor(result.moved_to), status="permanent redirect")
        if not result.is_modified:
            next_check = now + self._polite_interval(feed, result, None, now)
            await asyncio.to_thread(self.store.record_not_modified, feed.id, now, next_check)
            bound.info("feed.not_modified", next_check_in_seconds=round((next_check - now).total_seconds()))
            return PollOutcome(feed.id, "not_modified")

        items, warnings, ttl = await self._parse(feed, result)
        next_check = now + self._polite_interval(feed, result, ttl, now)
        for warning in warnings:
            bound.warning("feed.warning", warning=warning)
        fresh, changed = await self._sort_out(feed, items)
        alertable = self._alertable(fresh, state, now)
        started = time.perf_counter()
        matches, pages = self._match(feed, [*alertable, *changed], now)
        self.metrics.match_seconds.observe(time.perf_counter() - started)
        by_key = {i.item_key: i for i in (*fresh, *changed)}
        silences = await asyncio.to_thread(self.store.active_silences, now) if matches else []
        planned = [self._plan(m, by_key[m.item_key], silences) for m in matches]
        saved = await self._stored(
            partial(
                self.store.save_poll,
                feed.id,
                now,
                fresh,
                planned,
                etag=result.etag,
                last_modified=result.last_modified,
                next_check_at=next_check,
                updated=changed,
                story_window=self.config.stories.window,
                official_domains=self.config.stories.official_domains,
                pages=pages,
            ),
            bound,
        )
        self._count(feed.id, saved.new_items, saved.updated_items, saved.decisions)
        bound.info(
            "feed.polled",
            items=len(items),
            new_items=saved.new_items,
            updated_items=saved.updated_items,
            backlog=len(fresh) - len(alertable),
            matches=saved.new_matches,
            alerted=saved.alerted,
            deliveries=saved.new_deliveries,
            pages_queued=saved.pages_queued,
        )
        return PollOutcome(
            feed.id,
            "updated",
            len(items),
            saved.new_items,
            saved.new_matches,
            saved.new_deliveries,
            warnings=tuple(warnings),
            pages_waiting=saved.pages_queued,
        )

    async def _stored(self, save: Callable[[], SaveResult], bound: structlog.typing.FilteringBoundLogger) -> SaveResult:
        """Write a poll's results, waiting for the database if it is away: the fetch is done and
        its items are in hand, so they are kept, not dropped to be fetched again after the lease.
        Retried within the claim's lease (the heartbeat keeps the claim meanwhile)."""

        def retrying(exc: StoreError, pause: float) -> None:
            bound.warning("feed.store_retry", error=str(exc), retry_in_seconds=pause)

        return await retry_while_away(save, self.config.poll.claim_lease, retrying)

    async def _sort_out(self, feed: FeedConfig, items: list[Item]) -> tuple[list[Item], list[Item]]:
        """Split a fetch into new items and edited ones; everything else is already known.

        An item is edited when its text changed or the publisher moved its updated time (the
        CMA case feed's only sign that the case page changed). With ``identity = "auto"``, an
        item under an unknown key whose link the feed already holds is that known item: some
        feeds change ids on every fetch without any real change.
        """
        known = await asyncio.to_thread(self.store.item_versions, feed.id, [i.item_key for i in items])
        if feed.identity == "auto":
            strays = [i for i in items if i.item_key not in known and i.link]
            if strays:
                by_link = await asyncio.to_thread(
                    self.store.keys_for_links, feed.id, [i.link for i in strays if i.link]
                )
                if by_link:
                    taken = {i.item_key for i in items}
                    items = [
                        replace(i, item_key=by_link[i.link])
                        if i.item_key not in known and i.link in by_link and by_link[i.link] not in taken
                        else i
                        for i in items
                    ]
                    known = await asyncio.to_thread(self.store.item_versions, feed.id, [i.item_key for i in items])
        fresh = [i for i in items if i.item_key not in known]
        changed = [i for i in items if i.item_key in known and _is_edit(i, *known[i.item_key])]
        return fresh, changed

    def _plan(self, match: Match, item: Item, silences: list[Silence]) -> PlannedMatch:
        rule = self._rules_by_id[match.rule_id]
        throttle = None
        if rule.throttle_max is not None and rule.throttle_seconds is not None:
            throttle = Throttle(
                rule.throttle_max, timedelta(seconds=rule.throttle_seconds), rule.throttle_key, rule.throttle_surplus
            )
        return PlannedMatch(
            match,
            rule.title,
            self._channels_for(rule, self._feeds[item.feed_id].tags if item.feed_id in self._feeds else ()),
            on_update=rule.on_update,
            throttle=throttle,
            silenced_by=_silenced_by(silences, rule.id, item),
            follow_up=rule.follow_up,
            on_official=rule.on_official,
            tags=rule.tags,
            stage=self._stages.latest(rule, item) if rule.on_update == "notify" else None,
            stage_owner=rule.authority or None,
        )

    def _match(self, feed: FeedConfig, items: list[Item], now: datetime) -> tuple[list[Match], dict[str, str]]:
        """Match what the feed's text can decide; the rest waits for its linked page.

        A page is wanted for every item of a ``full_text`` feed, and for any item that already
        satisfies part of some rule (the cheap first stage), since many feeds carry only a
        teaser. Such an item is not judged on the teaser: it joins the page queue (item key ->
        URL) and is matched when its page is read, this cycle or a later one (``read_pages``).
        """
        tags = tuple(feed.tags)
        reads_pages = self.config.poll.max_articles_per_poll > 0
        matches: list[Match] = []
        pages: dict[str, str] = {}
        for item in items:
            ev = self.ruleset.evaluate(item, feed_tags=tags, now=now, want_partial=reads_pages)
            if reads_pages and item.link and (feed.full_text or ev.partial):
                pages[item.item_key] = item.link
            else:
                matches.extend(ev.matches)
        return matches, pages

    async def read_pages(self, feed_ids: Sequence[str] | None = None) -> dict[str, PagesOutcome]:
        """Read the due pages of the page queue within the per-host budget, and match their items.

        Each URL is fetched once (and cached); an edited item's page is fetched again. A page that
        fails is tried again later; after ``PAGE_ATTEMPTS`` failures its item is matched on the
        feed's text, and the queue row keeps why (``watcher alerts --explain``).
        """
        now = self.clock()
        if self.config.poll.max_articles_per_poll <= 0:
            return {}
        lease = self.config.poll.claim_lease
        claimed = await asyncio.to_thread(
            partial(
                self.store.claim_pages,
                now,
                lease,
                per_host=self.config.poll.max_articles_per_poll,
                feed_ids=feed_ids,
            )
        )
        if not claimed:
            return {}
        renew = partial(self.store.renew_work_claims, "pages", [p.item_id for p in claimed])
        async with self._held(renew, now + lease, "pages"):
            return await self._read_claimed(claimed, now)

    async def _read_claimed(self, claimed: list[QueuedPage], now: datetime) -> dict[str, PagesOutcome]:
        cached = await asyncio.to_thread(
            partial(
                self.store.cached_articles,
                sorted({p.url for p in claimed if not p.is_update}),
                fresh_after=now - ARTICLE_CACHE_FOR,
                retry_errors_after=now,  # a failed page is the queue's to retry, not the cache's
            )
        )
        feed_of = {p.url: p.item.feed_id for p in reversed(claimed)}
        wanted = sorted(set(feed_of) - set(cached))
        fetched = await asyncio.gather(*(self._article(feed_of[url], url) for url in wanted))
        texts: dict[str, tuple[str | None, str | None]] = {u: (t, None) for u, t in cached.items()}
        texts.update(zip(wanted, fetched, strict=True))
        silences = await asyncio.to_thread(self.store.active_silences, now)
        out: dict[str, PagesOutcome] = {}
        for page in claimed:
            text, error = texts[page.url]
            if text is None and page.attempts + 1 < PAGE_ATTEMPTS:
                retry_at = self.clock() + PAGE_RETRY_AFTER * 3**page.attempts
                await asyncio.to_thread(self.store.page_failed, page.item_id, error or "fetch failed", retry_at)
                continue
            try:
                recorded = await self._judge(page, text, error, silences)
            except StoreUnwritable:
                raise
            except Exception as exc:  # the per-page guard: one bad page must not stop the others
                log.exception("page.crashed", feed=page.item.feed_id, url=page.url, error=repr(exc))
                retry_at = self.clock() + PAGE_RETRY_AFTER
                await asyncio.to_thread(self.store.page_failed, page.item_id, f"internal error: {exc!r}", retry_at)
                continue
            was = out.get(page.item.feed_id, PagesOutcome())
            out[page.item.feed_id] = PagesOutcome(
                was.read + 1, was.matches + recorded.matches, was.deliveries + recorded.deliveries
            )
        return out

    async def _judge(self, page: QueuedPage, text: str | None, error: str | None, silences: list[Silence]) -> Recorded:
        """Match a queued item on its page (or, ``text`` None, on the feed's text) and record it."""
        item = replace(page.item, article=text) if text else page.item
        feed = self._feeds.get(item.feed_id)
        tags = tuple(feed.tags) if feed else ()
        matches = self.ruleset.match(item, feed_tags=tags, now=self.clock())
        planned = [self._plan(m, item, silences) for m in matches]
        note = None
        if text is None:
            note = f"page not read after {PAGE_ATTEMPTS} tries ({error}): matched on the feed's text"
        recorded = await asyncio.to_thread(
            partial(self.store.complete_page, page, self.clock(), text or "", planned, error=note)
        )
        self._count(item.feed_id, 0, 0, recorded.decisions)
        log.info(
            "page.read" if note is None else "page.given_up",
            feed=item.feed_id,
            url=page.url,
            matches=recorded.matches,
            alerted=recorded.alerted,
            error=error,
        )
        return recorded

    async def _article(self, feed_id: str, url: str) -> tuple[str | None, str | None]:
        """(main text, None) of a linked page, fetched politely and cached; (None, why) if not."""
        try:
            result = await self.fetcher.fetch(feed_id, url)
            kind = result.headers.get("content-type", "text/html").lower()
            if "html" not in kind and "xml" not in kind and "text/plain" not in kind:
                raise FetchError(feed_id, url, f"not a web page ({kind.split(';')[0]})", FetchFailure.HTTP_STATUS)
            article = await asyncio.to_thread(extract_article, result.body, result.final_url)
        except FetchError as exc:
            error = self.config.redactor(str(exc))
            log.info("article.failed", feed=feed_id, url=url, error=error)
            await asyncio.to_thread(partial(self.store.save_article, url, self.clock(), error=error))
            return None, error
        await asyncio.to_thread(
            partial(self.store.save_article, url, self.clock(), title=article.title, text=article.text)
        )
        log.debug("article.fetched", feed=feed_id, url=url, chars=len(article.text))
        return article.text, None

    async def _parse(self, feed: FeedConfig, result: FetchResult) -> tuple[list[Item], list[str], int | None]:
        headers = dict(result.headers)
        if self.executor is None:
            return await asyncio.to_thread(
                parse_and_normalise, result.body, feed.id, result.final_url, headers, feed.identity
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, parse_and_normalise, result.body, feed.id, result.final_url, headers, feed.identity
        )

    def _alertable(self, fresh: list[Item], state: FeedState, now: datetime) -> list[Item]:
        """On a feed's first poll, history is stored but only recent items may alert.

        Subscribing to a feed with years of entries must not flood anyone. Undated items on a
        first poll count as history. Later polls alert on everything new, even if back-dated
        (DOJ back-dates releases), so an outage never swallows alerts.
        """
        if not state.is_first_poll:
            return fresh
        cutoff = now - self.config.poll.backlog_max_age
        return [i for i in fresh if i.published_at is not None and i.published_at >= cutoff]

    def _count(self, feed_id: str, new: int, updated: int, decisions: Sequence[tuple[str, str]]) -> None:
        if new:
            self.metrics.items.labels(feed_id, "new").inc(new)
        if updated:
            self.metrics.items.labels(feed_id, "updated").inc(updated)
        for rule_id, decision in decisions:
            self.metrics.matches.labels(rule_id, decision).inc()

    def _channels_for(self, rule: Rule, feed_tags: Sequence[str]) -> tuple[str, ...]:
        config = self.config
        found = destinations(
            rule, feed_tags, config.resolved_routes, config.delivery.default_channels, config.channel_min_severity
        )
        return tuple(d.channel for d in found)

    def _interval(self, feed: FeedConfig) -> timedelta:
        return self.config.interval_of(feed)

    def _polite_interval(self, feed: FeedConfig, result: FetchResult, ttl: int | None, now: datetime) -> timedelta:
        """The feed's interval, lengthened as far as the server asks (Cache-Control, Expires, ttl)
        within ``poll.max_server_interval``."""
        hint = server_hint(result.headers, ttl, now)
        return next_interval(self._interval(feed), hint, self.config.poll.max_server_interval)

    def backoff(self, feed: FeedConfig, error_count: int) -> timedelta:
        """Exponential backoff for a failing feed: interval x 2^(errors-1), capped, ±10 % jitter."""
        base = self._interval(feed).total_seconds() * 2 ** min(max(error_count - 1, 0), 16)
        capped = min(base, max(self.config.poll.max_backoff.total_seconds(), self._interval(feed).total_seconds()))
        return timedelta(seconds=capped * self.rng.uniform(0.9, 1.1))

    async def _failed(
        self, feed: FeedConfig, state: FeedState, exc: FeedError, bound: structlog.typing.FilteringBoundLogger
    ) -> PollOutcome:
        now = self.clock()
        errors = state.error_count + 1
        if isinstance(exc, FetchError) and exc.status == 410:
            reason = "gone (HTTP 410): the publisher removed this feed; `watcher feeds resume` tries it again"
            await asyncio.to_thread(self.store.feed_gone, feed.id, now, reason)
            bound.warning("feed.gone", error=reason)
            return PollOutcome(feed.id, "failed", error=reason)
        delay = self.backoff(feed, errors)
        if isinstance(exc, FetchError) and exc.retry_after_seconds:
            # The server said when (429, 503): honoured, within the same bound as its caching hints.
            asked = min(timedelta(seconds=exc.retry_after_seconds), self.config.poll.max_server_interval)
            delay = max(delay, asked)
        reason = self.config.redactor(str(exc))
        try:
            await asyncio.to_thread(self.store.record_failure, feed.id, now, reason, now + delay)
        except StoreUnwritable:
            raise
        except StoreError as store_exc:
            bound.error("feed.store_failed", error=str(store_exc))
        bound.warning(
            "feed.failed",
            failure=getattr(getattr(exc, "failure", None), "value", type(exc).__name__),
            error=reason,
            error_count=errors,
            retry_in_seconds=round(delay.total_seconds()),
        )
        return PollOutcome(feed.id, "failed", error=reason)


def _with_pages(
    outcomes: list[PollOutcome], pages: dict[str, PagesOutcome], waiting: dict[str, int]
) -> list[PollOutcome]:
    """Fold the page queue's work of this cycle into the feeds' outcomes; a feed that was not
    due but had pages read gets an outcome of its own ("pages")."""
    merged = []
    for o in outcomes:
        p = pages.get(o.feed_id, PagesOutcome())
        merged.append(
            replace(
                o,
                matches=o.matches + p.matches,
                deliveries=o.deliveries + p.deliveries,
                pages_read=p.read,
                pages_waiting=waiting.get(o.feed_id, 0),
            )
        )
    polled = {o.feed_id for o in outcomes}
    for feed_id, p in sorted(pages.items()):
        if feed_id not in polled:
            waits = waiting.get(feed_id, 0)
            merged.append(
                PollOutcome(
                    feed_id, "pages", matches=p.matches, deliveries=p.deliveries, pages_read=p.read, pages_waiting=waits
                )
            )
    return merged


def _is_edit(item: Item, known_hash: str, known_updated: datetime | None) -> bool:
    if item.content_hash != known_hash:
        return True
    return item.updated_at is not None and (known_updated is None or item.updated_at > known_updated)


def _silenced_by(silences: list[Silence], rule_id: str, item: Item) -> str | None:
    """The first active silence covering this rule (and text), described for the match record."""
    for silence in silences:
        if silence.rule_id not in (None, rule_id):
            continue
        if silence.match_text and fold(silence.match_text) not in fold(f"{item.title} {item.text} {item.article}"):
            continue
        return silence.describe()
    return None
