"""Store: the only code that writes SQL. Same statements on SQLite and PostgreSQL.

Owns: engines, migrations, transactions, insert-or-ignore writes, claiming due feeds and due
deliveries, and the read views the CLI shows. Must not: call HTTP, parse feeds or send anything.
Every method takes ``now`` from the caller, so tests control time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, create_engine, event, false, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, col

from watcher.errors import StoreError
from watcher.model import DeliveryStatus, Item
from watcher.store.claims import release_rows, renew_rows, rowcount
from watcher.store.cluster import assign_stories
from watcher.store.decide import PlannedMatch, record_matches
from watcher.store.digest_queries import DigestQueries
from watcher.store.feed_admin import FeedAdminQueries
from watcher.store.outbox_queries import ChannelHealthQueries, OutboxQueries
from watcher.store.page_queue import WAITING, PageQueueQueries, item_from_row
from watcher.store.schema import ArticleRow, DeliveryRow, DigestRow, FeedRow, ItemRow, PageQueueRow
from watcher.store.silences import SilenceQueries
from watcher.store.source_health import SourceHealthQueries
from watcher.stories import OFFICIAL_DOMAINS

# SQLite allows 32766 bound parameters per statement; items have 13 columns.
_CHUNK = 500
SQLITE_CACHE_KIB = 64 * 1024


class StoreUnwritable(StoreError):
    """The database refuses every write (disk full, a read-only file or server): retrying cannot
    help until an operator acts, so the daemon stops with this error instead of polling, and
    dropping, everything it fetches (issue 13)."""


_T = TypeVar("_T")


async def retry_while_away(
    write: Callable[[], _T], patience: timedelta, on_retry: Callable[[StoreError, float], None]
) -> _T:
    """Run ``write`` in a thread, retrying with backoff (0.25 s doubling to 5 s) while the
    database is away (a restart, a lock held by another process), for up to ``patience``; then
    the StoreError stands. For work already done that must not be redone: a fetched poll, a
    message that was sent. A database refusing writes (StoreUnwritable) is not waited for."""
    deadline = time.monotonic() + patience.total_seconds()
    pause = 0.25
    while True:
        try:
            return await asyncio.to_thread(write)
        except StoreUnwritable:
            raise
        except StoreError as exc:
            if time.monotonic() + pause > deadline:
                raise
            on_retry(exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


# SQLite primary result codes (the low byte of the extended code): SQLITE_READONLY, SQLITE_FULL.
_SQLITE_UNWRITABLE = {8, 13}
# PostgreSQL SQLSTATEs: disk_full, read_only_sql_transaction (a standby, or a database set read-only).
_PG_UNWRITABLE = {"53100", "25006"}


def _is_unwritable(exc: SQLAlchemyError) -> bool:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _SQLITE_UNWRITABLE:
        return True
    return getattr(orig, "sqlstate", None) in _PG_UNWRITABLE


# What a claim on each kind of work holds: (table, key column, the status of a waiting row).
_WORK: dict[str, tuple[Any, str, str]] = {
    "deliveries": (DeliveryRow, "id", DeliveryStatus.PENDING.value),
    "digests": (DigestRow, "id", DeliveryStatus.PENDING.value),
    "pages": (PageQueueRow, "item_id", WAITING),
}


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a poll needs to know about a feed from its row."""

    id: str
    url: str
    etag: str | None
    last_modified: str | None
    error_count: int
    last_success_at: datetime | None
    next_check_at: datetime | None
    moved_from: str | None = None  # the configured URL a permanent redirect replaced with ``url``

    @property
    def is_first_poll(self) -> bool:
        return self.last_success_at is None


@dataclass(frozen=True, slots=True)
class FeedSpec:
    id: str
    url: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class SaveResult:
    new_items: int
    new_matches: int
    new_deliveries: int
    updated_items: int = 0
    alerted: int = 0
    pages_queued: int = 0  # items that wait for their page before they are matched
    decisions: tuple[tuple[str, str], ...] = ()  # (rule id, decision) of each match recorded


@dataclass(frozen=True, slots=True)
class FeedStatus:
    id: str
    url: str
    title: str
    items: int
    last_checked_at: datetime | None
    last_success_at: datetime | None
    next_check_at: datetime | None
    error_count: int
    last_error: str | None
    pages_waiting: int = 0  # items whose linked page is still to be fetched before matching


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT (used by dry runs): take it over.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    # SQLite's default page cache is 2 MiB; the story index alone outgrows that within a day of a
    # thousand feeds, and every insert into it then reads its pages back from the OS.
    cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE: take the write lock at the start. A deferred transaction that reads, then writes
    # after another process (the CLI beside the daemon, a second replica) committed, fails at once
    # with "database is locked" whatever the busy timeout; an immediate one waits its turn.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings each backend needs. Raises StoreError."""
    try:
        if url.startswith("sqlite"):
            if ":memory:" in url or url in ("sqlite://", "sqlite:///"):
                kwargs.setdefault("poolclass", StaticPool)
            engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return create_engine(url, pool_pre_ping=True, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use database: {exc}") from None


# Advisory locks on PostgreSQL, for work exactly one replica may do at a time ("migr", "purg").
MIGRATE_LOCK = 0x6D696772
RETENTION_LOCK = 0x70757267


def _alembic(connection: Connection) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("watcher.store") / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(connection: Connection) -> None:
    """Bring the schema to the newest Alembic revision on this connection. On PostgreSQL, replicas
    starting together migrate one at a time (the others then find nothing to do)."""
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
    command.upgrade(_alembic(connection), "head")


def schema_revisions(connection: Connection) -> tuple[str | None, str]:
    """(the database's Alembic revision, or None for an empty database; the newest this code knows)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic(connection)).get_current_head()
    assert head is not None
    return MigrationContext.configure(connection).get_current_revision(), head


class Store(
    OutboxQueries,
    DigestQueries,
    ChannelHealthQueries,
    SilenceQueries,
    PageQueueQueries,
    FeedAdminQueries,
    SourceHealthQueries,
):
    """All database access. Thread-safe; methods are synchronous and short."""

    def __init__(self, engine: Engine, *, dry_run: bool = False):
        self.engine = engine
        self.dialect = engine.dialect.name
        self.dry_run = dry_run
        # SQLite has one writer; serialising here avoids lock-upgrade failures between threads.
        self._lock = threading.RLock() if (self.dialect == "sqlite" or dry_run) else None
        self._conn: Connection | None = None
        self._outer: Any = None
        # Transactions the database refused or could not run (it was away, locked, full): the
        # outages the daemon rode out, for /metrics.
        self.failures = 0
        self._failures_lock = threading.Lock()
        if dry_run:
            # Everything happens inside one transaction that close() rolls back.
            try:
                self._conn = engine.connect()
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot open the database: {_reason(exc)}") from None
            self._outer = self._conn.begin()

    @classmethod
    def open(cls, url: str, *, dry_run: bool = False, migrate_schema: bool = True) -> Store:
        """Connect and migrate. Raises StoreError with the reason (never the password)."""
        store = cls(make_engine(url), dry_run=dry_run)
        if migrate_schema:
            store.migrate()
        return store

    def migrate(self) -> None:
        try:
            if self._conn is not None:
                with self._conn.begin_nested():
                    migrate(self._conn)
            else:
                with self.engine.begin() as conn:
                    migrate(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot migrate the database: {_reason(exc)}") from None

    def schema_status(self) -> tuple[str | None, str]:
        """(the database's schema revision, the one this code needs): equal when up to date."""
        try:
            with self.engine.connect() as conn:
                return schema_revisions(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the schema revision: {_reason(exc)}") from None

    def close(self) -> None:
        if self._outer is not None:
            self._outer.rollback()
        if self._conn is not None:
            self._conn.close()
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            if self._conn is not None:
                session = Session(bind=self._conn, join_transaction_mode="create_savepoint")
            else:
                session = Session(self.engine)
            with session:
                try:
                    yield session
                    session.commit()
                except SQLAlchemyError as exc:
                    session.rollback()
                    with self._failures_lock:
                        self.failures += 1
                    if _is_unwritable(exc):
                        raise StoreUnwritable(f"the database cannot be written: {_reason(exc)}") from exc
                    raise StoreError(f"database error: {_reason(exc)}") from exc
                except BaseException:
                    session.rollback()
                    raise
        finally:
            if lock is not None:
                lock.release()

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # -- feeds -------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[FeedSpec], now: datetime) -> None:
        """Make sure every configured feed has a row; a new feed is due at once."""
        if not feeds:
            return
        with self._session() as s:
            rows = sorted(({"id": f.id, "url": f.url, "title": f.title} for f in feeds), key=lambda r: r["id"])
            stmt = self._insert(FeedRow).values(
                [{**r, "next_check_at": now, "created_at": now, "error_count": 0} for r in rows]
            )
            s.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
            for r in rows:
                # A feed that moved (301) from the configured URL keeps its new one; any other
                # change of URL in the config is a new address, and the old validators go.
                moved = col(FeedRow.moved_from) == r["url"]
                s.execute(
                    update(FeedRow)
                    .where(col(FeedRow.id) == r["id"])
                    .where(col(FeedRow.url) != r["url"], or_(col(FeedRow.moved_from).is_(None), ~moved))
                    .values(url=r["url"], etag=None, last_modified=None, moved_from=None)
                )
                s.execute(
                    update(FeedRow)
                    .where(col(FeedRow.id) == r["id"], col(FeedRow.title) != r["title"])
                    .values(title=r["title"])
                )

    def claim_due_feeds(
        self, feed_ids: Sequence[str], *, due_by: datetime | None, until: datetime, limit: int
    ) -> list[FeedState]:
        """Claim up to ``limit`` feeds due by ``due_by`` (any, when None) until ``until``.

        The conditional UPDATE is the claim: of several replicas, only one sees rowcount 1.
        If this process dies mid-poll, the feed is due again at ``until``.
        """
        if not feed_ids:
            return []
        with self._session() as s:
            stmt = select(col(FeedRow.id), col(FeedRow.next_check_at)).where(
                col(FeedRow.id).in_(feed_ids),
                col(FeedRow.paused) == false(),  # paused: never, even forced
            )
            if due_by is not None:
                stmt = stmt.where(or_(col(FeedRow.next_check_at).is_(None), col(FeedRow.next_check_at) <= due_by))
            stmt = stmt.order_by(col(FeedRow.next_check_at), col(FeedRow.id)).limit(limit)
            if self.dialect == "postgresql":
                # Replicas claiming at the same moment take disjoint sets instead of queueing on
                # each other's row locks: rows another transaction is claiming are skipped.
                stmt = stmt.with_for_update(skip_locked=True)
            due = s.execute(stmt).all()
            claimed = []
            for feed_id, seen_next in due:
                # Claim only if nobody changed the row since we read it.
                same = (
                    col(FeedRow.next_check_at).is_(None)
                    if seen_next is None
                    else col(FeedRow.next_check_at) == seen_next
                )
                result = s.execute(
                    update(FeedRow)
                    .where(col(FeedRow.id) == feed_id)
                    .where(same)
                    .values(next_check_at=until, claimed_until=until)
                )
                if rowcount(result) == 1:
                    claimed.append(feed_id)
            rows = s.execute(select(FeedRow).where(col(FeedRow.id).in_(claimed))).scalars().all()
            by_id = {r.id: _feed_state(r) for r in rows}
            return [by_id[i] for i in claimed]

    def feed_moved(self, feed_id: str, configured: str, new_url: str) -> None:
        """Poll the feed at ``new_url`` from now on (its server answered a permanent redirect)."""
        with self._session() as s:
            s.execute(
                update(FeedRow)
                .where(col(FeedRow.id) == feed_id)
                .values(url=new_url, moved_from=configured, etag=None, last_modified=None)
            )

    def feed_gone(self, feed_id: str, now: datetime, reason: str) -> None:
        """Stop polling a feed its server says is gone (410): paused, with the reason as its error,
        until someone runs `watcher feeds resume`."""
        with self._session() as s:
            s.execute(
                update(FeedRow)
                .where(col(FeedRow.id) == feed_id)
                .values(paused=True, **_failure(now, reason, now + timedelta(days=3650)))
            )

    def renew_claims(self, feed_ids: Sequence[str], until: datetime, renewed: datetime) -> int:
        """Extend the claims that still end at ``until`` (ours, still in flight) to ``renewed``; a
        feed whose poll finished has its next check instead, and keeps it."""
        with self._session() as s:
            return renew_rows(
                s, FeedRow, "id", feed_ids, due="next_check_at", waiting=None, until=until, renewed=renewed
            )

    def renew_work_claims(self, kind: str, ids: Sequence[int], until: datetime, renewed: datetime) -> int:
        """``renew_claims`` for claimed deliveries, digests or queued pages (``kind``): a heartbeat
        keeps them while their send or fetch is in flight, so the lease can be short."""
        table, key, waiting = _WORK[kind]
        with self._session() as s:
            return renew_rows(s, table, key, ids, due="next_attempt_at", waiting=waiting, until=until, renewed=renewed)

    def release_stale_claims(self, now: datetime) -> dict[str, int]:
        """Make due at ``now`` everything still claimed: feeds, deliveries, digests, queued pages.

        For a daemon starting on SQLite, where it is the only process: any claim it finds was left
        by a predecessor that was killed mid-work, and waiting out the lease would poll and send
        nothing for that long (for ever, in a crash loop shorter than the lease). Never on
        PostgreSQL, where the claims may be another live replica's. Returns the rows per table.
        """
        with self._session() as s:
            return {
                "feeds": release_rows(s, FeedRow, due="next_check_at", waiting=None, now=now),
                "deliveries": release_rows(
                    s, DeliveryRow, due="next_attempt_at", waiting=DeliveryStatus.PENDING.value, now=now
                ),
                "digests": release_rows(
                    s, DigestRow, due="next_attempt_at", waiting=DeliveryStatus.PENDING.value, now=now
                ),
                "pages": release_rows(s, PageQueueRow, due="next_attempt_at", waiting=WAITING, now=now),
            }

    def feed_state(self, feed_id: str) -> FeedState | None:
        with self._session() as s:
            row = s.get(FeedRow, feed_id)
            return _feed_state(row) if row else None

    def record_not_modified(self, feed_id: str, now: datetime, next_check_at: datetime) -> None:
        with self._session() as s:
            s.execute(update(FeedRow).where(col(FeedRow.id) == feed_id).values(**_success(now, next_check_at)))

    def record_failure(self, feed_id: str, now: datetime, error: str, next_check_at: datetime) -> int:
        """Count a failed poll; return the new error count."""
        with self._session() as s:
            s.execute(update(FeedRow).where(col(FeedRow.id) == feed_id).values(**_failure(now, error, next_check_at)))
            count = s.execute(select(col(FeedRow.error_count)).where(col(FeedRow.id) == feed_id)).scalar_one_or_none()
            return int(count or 0)

    def item_versions(self, feed_id: str, keys: Sequence[str]) -> dict[str, tuple[str, datetime | None]]:
        """(content hash, publisher's updated time) of each of ``keys`` this feed already holds."""
        found: dict[str, tuple[str, datetime | None]] = {}
        with self._session() as s:
            for i in range(0, len(keys), _CHUNK):
                rows = s.execute(
                    select(ItemRow)
                    .where(col(ItemRow.feed_id) == feed_id)
                    .where(col(ItemRow.item_key).in_(list(keys[i : i + _CHUNK])))
                ).scalars()
                found.update({r.item_key: (r.content_hash, r.updated_at) for r in rows})
        return found

    def keys_for_links(self, feed_id: str, links: Sequence[str]) -> dict[str, str]:
        """Existing item keys of this feed by canonical link: a feed that changes guids on every
        fetch re-serves known items under new keys, and the link gives them away."""
        found: dict[str, str] = {}
        with self._session() as s:
            for i in range(0, len(links), _CHUNK):
                rows = s.execute(
                    select(col(ItemRow.link), col(ItemRow.item_key))
                    .where(col(ItemRow.feed_id) == feed_id)
                    .where(col(ItemRow.link).in_(list(links[i : i + _CHUNK])))
                    .order_by(col(ItemRow.id))
                ).all()
                for link, key in rows:
                    found.setdefault(link, key)
        return found

    def save_poll(
        self,
        feed_id: str,
        now: datetime,
        items: Sequence[Item],
        planned: Sequence[PlannedMatch],
        *,
        etag: str | None,
        last_modified: str | None,
        next_check_at: datetime,
        updated: Sequence[Item] = (),
        story_window: timedelta = timedelta(days=7),
        official_domains: Sequence[str] = OFFICIAL_DOMAINS,
        pages: Mapping[str, str] = {},
    ) -> SaveResult:
        """Record one successful poll in one transaction: new and edited items, every match with
        its decision, and outbox rows for what alerted.

        Only items that this transaction really created or changed get matches recorded; a
        replica that raced us to the same items records nothing twice. ``pages`` (item key ->
        URL) are items left unmatched until their page is read: they join the page queue.
        """
        with self._session() as s:
            s.execute(
                update(FeedRow)
                .where(col(FeedRow.id) == feed_id)
                .values(etag=etag, last_modified=last_modified, **_success(now, next_check_at))
            )
            new_ids = self._insert_items(s, feed_id, now, items)
            rows = {key: (id_, 1, False) for key, id_ in new_ids.items()}
            rows.update(self._update_items(s, feed_id, now, updated))
            by_key = {i.item_key: i for i in (*items, *updated)}
            stories = assign_stories(
                s, self._insert, now, story_window, [(by_key[k], id_) for k, id_ in new_ids.items()], official_domains
            )
            recorded = record_matches(s, self._insert, now, planned, by_key, rows, stories)
            queued = self._queue_in(s, self._insert, now, feed_id, pages, rows)
            return SaveResult(
                len(new_ids),
                recorded.matches,
                recorded.deliveries,
                len(rows) - len(new_ids),
                recorded.alerted,
                queued,
                recorded.decisions,
            )

    def _update_items(
        self, s: Session, feed_id: str, now: datetime, items: Sequence[Item]
    ) -> dict[str, tuple[int, int, bool]]:
        """Store edited items as a new revision; only rows whose content really changed count."""
        out: dict[str, tuple[int, int, bool]] = {}
        for it in sorted(items, key=lambda i: i.item_key):
            row = s.execute(
                update(ItemRow)
                .where(col(ItemRow.feed_id) == feed_id, col(ItemRow.item_key) == it.item_key)
                .where(
                    or_(
                        col(ItemRow.content_hash) != it.content_hash,
                        col(ItemRow.updated_at).is_(None) if it.updated_at else false(),
                        col(ItemRow.updated_at) < it.updated_at if it.updated_at else false(),
                    )
                )
                .values(
                    title=it.title,
                    link=it.link,
                    summary=it.summary,
                    content=it.content,
                    article=it.article,
                    updated_at=it.updated_at,
                    content_hash=it.content_hash,
                    revision=col(ItemRow.revision) + 1,
                    changed_at=now,
                )
                .returning(col(ItemRow.id), col(ItemRow.revision))
            ).first()
            if row is not None:
                out[it.item_key] = (int(row[0]), int(row[1]), True)
        return out

    def _insert_items(self, s: Session, feed_id: str, now: datetime, items: Sequence[Item]) -> dict[str, int]:
        """Insert-or-ignore in key order (unsorted concurrent batches deadlock on PostgreSQL)."""
        new_ids: dict[str, int] = {}
        ordered = sorted(items, key=lambda i: i.item_key)
        for i in range(0, len(ordered), _CHUNK):
            rows = [
                {
                    "feed_id": feed_id,
                    "item_key": it.item_key,
                    "title": it.title,
                    "link": it.link,
                    "summary": it.summary,
                    "content": it.content,
                    "published_at": it.published_at,
                    "updated_at": it.updated_at,
                    "authors": list(it.authors),
                    "tags": list(it.tags),
                    "content_hash": it.content_hash,
                    "article": it.article,
                    "first_seen_at": now,
                }
                for it in ordered[i : i + _CHUNK]
            ]
            # Rows as parameters (an executemany with RETURNING), not as literal VALUES: the
            # statement is compiled once and cached, not once per poll with 13 x 500 values.
            result = s.execute(
                self._insert(ItemRow)
                .on_conflict_do_nothing(index_elements=["feed_id", "item_key"])
                .returning(col(ItemRow.id), col(ItemRow.item_key)),
                rows,
            )
            new_ids.update({key: id_ for id_, key in result.all()})
        return new_ids

    def purge_text(self, before: datetime, *, singleton: bool = False) -> int | None:
        """Drop the text of items first seen before ``before``; keys, links and hashes stay as
        tombstones, so a purged item re-served by its feed is still known and never alerts again.

        With ``singleton`` (the daemon's scheduled retention), on PostgreSQL only one replica
        purges at a time: the others return None at once instead of repeating the work."""
        with self._session() as s:
            if singleton and self.dialect == "postgresql":
                taken = s.execute(text(f"SELECT pg_try_advisory_xact_lock({RETENTION_LOCK})")).scalar()
                if not taken:
                    return None
            result = s.execute(
                update(ItemRow)
                .where(col(ItemRow.first_seen_at) < before)
                .where(or_(col(ItemRow.summary) != "", col(ItemRow.content) != "", col(ItemRow.article) != ""))
                .values(summary="", content="", article="")
            )
            return rowcount(result)

    # -- articles ----------------------------------------------------------------------------

    def cached_articles(
        self, urls: Sequence[str], *, fresh_after: datetime, retry_errors_after: datetime
    ) -> dict[str, str]:
        """Texts of already fetched pages; failed fetches count as cached until they may be retried."""
        out: dict[str, str] = {}
        with self._session() as s:
            for i in range(0, len(urls), _CHUNK):
                rows = s.execute(
                    select(ArticleRow).where(col(ArticleRow.url).in_(list(urls[i : i + _CHUNK])))
                ).scalars()
                for row in rows:
                    fetched = row.fetched_at
                    if fetched is None or fetched < fresh_after:
                        continue
                    if row.error is not None and fetched < retry_errors_after:
                        continue
                    out[row.url] = row.text
        return out

    def save_article(
        self, url: str, now: datetime, *, title: str = "", text: str = "", error: str | None = None
    ) -> None:
        with self._session() as s:
            values = {"fetched_at": now, "title": title, "text": text, "error": error}
            stmt = self._insert(ArticleRow).values(url=url, **values)
            s.execute(stmt.on_conflict_do_update(index_elements=["url"], set_=values))

    def items_since(self, since: datetime, *, limit: int = 100_000) -> list[Item]:
        """Items first seen since ``since``, oldest first, for backtests."""
        with self._session() as s:
            rows = (
                s.execute(
                    select(ItemRow)
                    .where(col(ItemRow.first_seen_at) >= since)
                    .order_by(col(ItemRow.first_seen_at), col(ItemRow.id))
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            return [item_from_row(r) for r in rows]

    # -- views -------------------------------------------------------------------------------

    def ping(self) -> None:
        """One round trip to the database; raises StoreError when it cannot be reached."""
        with self._session() as s:
            s.execute(select(1))

    def health(self) -> tuple[list[tuple[str, datetime | None, int]], int, datetime | None]:
        """(feed id, last success, consecutive failures) of every feed, and the outbox's pending
        count and oldest pending creation time: the gauges of /metrics, in one transaction."""
        with self._session() as s:
            columns = (col(FeedRow.id), col(FeedRow.last_success_at), col(FeedRow.error_count))
            feeds = s.execute(select(*columns).order_by(col(FeedRow.id))).all()
            pending = s.execute(
                select(func.count(), func.min(col(DeliveryRow.created_at))).where(
                    col(DeliveryRow.status) == DeliveryStatus.PENDING.value
                )
            ).one()
            return [(f, at, int(n or 0)) for f, at, n in feeds], int(pending[0]), pending[1]

    def feed_statuses(self) -> list[FeedStatus]:
        waiting = self.pages_waiting()
        with self._session() as s:
            counts = dict(s.execute(select(col(ItemRow.feed_id), func.count()).group_by(col(ItemRow.feed_id))).all())
            rows = s.execute(select(FeedRow).order_by(col(FeedRow.id))).scalars().all()
            return [
                FeedStatus(
                    r.id,
                    r.url,
                    r.title,
                    int(counts.get(r.id, 0)),
                    r.last_checked_at,
                    r.last_success_at,
                    r.next_check_at,
                    r.error_count,
                    r.last_error,
                    waiting.get(r.id, 0),
                )
                for r in rows
            ]

    def count_items(self, feed_id: str | None = None) -> int:
        with self._session() as s:
            stmt = select(func.count()).select_from(ItemRow)
            if feed_id is not None:
                stmt = stmt.where(and_(col(ItemRow.feed_id) == feed_id))
            return int(s.execute(stmt).scalar_one())


def _success(now: datetime, next_check_at: datetime) -> dict[str, Any]:
    """Feed columns after any successful poll, 304 or 200: the error streak is over."""
    return {
        "last_checked_at": now,
        "last_success_at": now,
        "next_check_at": next_check_at,
        "error_count": 0,
        "last_error": None,
    }


def _failure(now: datetime, error: str, next_check_at: datetime) -> dict[str, Any]:
    """Feed columns after a failed poll: one more in the error streak."""
    return {
        "last_checked_at": now,
        "next_check_at": next_check_at,
        "error_count": col(FeedRow.error_count) + 1,
        "last_error": error[:2000],
    }


def _feed_state(row: FeedRow) -> FeedState:
    return FeedState(
        row.id,
        row.url,
        row.etag,
        row.last_modified,
        row.error_count,
        row.last_success_at,
        row.next_check_at,
        row.moved_from,
    )


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's own message, first line only: SQLAlchemy appends the SQL and parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
