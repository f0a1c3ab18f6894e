"""Tables and their unique constraints. Newness is decided by these constraints, never by select-then-insert.

Changing a table here needs an Alembic revision in ``store/migrations/versions``; a test compares
the migrated schema with these models on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Store UTC; hand back UTC-aware datetimes. SQLite returns naive values, so we re-attach UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, **kw))


class FeedRow(SQLModel, table=True):
    """Schedule state of a feed. The scheduler keeps none; it asks this table what is due."""

    __tablename__ = "feeds"

    id: str = Field(primary_key=True, max_length=64)
    url: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(default="", sa_column=Column(Text, nullable=False))
    etag: str | None = Field(default=None, sa_column=Column(Text))
    last_modified: str | None = Field(default=None, sa_column=Column(Text))
    next_check_at: datetime | None = _ts(index=True)
    last_checked_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    error_count: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = _ts()
    # Where the feed is defined: "config" (a [[feed]] block; the file wins on an id clash), "cli"
    # (`watcher feeds add` / `import`: the settings below are its definition) or "removed" (no
    # longer watched; its items stay as tombstones, so nothing of it alerts twice).
    source: str = Field(default="config", sa_column=Column(String(16), nullable=False, server_default="config"))
    # `watcher feeds pause`: not polled until resumed, whichever source defines the feed.
    paused: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    interval_seconds: int | None = Field(default=None, sa_column=Column(Integer))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    full_text: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    # The configured address a permanent redirect (301, 308) replaced with ``url``: while the
    # config still says that address, the feed is polled at ``url``.
    moved_from: str | None = Field(default=None, sa_column=Column(Text))
    # The end of the lease of the claim that set ``next_check_at`` (the two equal: claimed and in flight;
    # any later write of ``next_check_at`` ends the claim). Lets a restarted process on SQLite take back
    # what it held when it was killed, and a heartbeat renew only what is still its own.
    claimed_until: datetime | None = _ts()


class ItemRow(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("feed_id", "item_key", name="uq_items_feed_key"),
        # Link lookups: a story by exact link, a feed that changes guids (keys_for_links).
        Index("ix_items_feed_link", "feed_id", "link"),
        Index("ix_items_link", "link"),
    )

    id: int | None = Field(default=None, primary_key=True)
    feed_id: str = Field(foreign_key="feeds.id", max_length=64)
    item_key: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(default="", sa_column=Column(Text, nullable=False))
    link: str | None = Field(default=None, sa_column=Column(Text))
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    content: str = Field(default="", sa_column=Column(Text, nullable=False))
    published_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    authors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    content_hash: str = Field(default="", max_length=80)
    article: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    revision: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    changed_at: datetime | None = _ts()
    first_seen_at: datetime | None = _ts(nullable=False, index=True)


class MatchRow(SQLModel, table=True):
    """Every time a rule matched an item (one row per rule, item and revision), with what was
    decided: alerted, or why not (duplicate of an alerted story, silenced, throttled, an update
    the rule ignores). Nothing that matched is lost, so `watcher alerts --explain` can show it."""

    __tablename__ = "matches"
    __table_args__ = (
        UniqueConstraint("rule_id", "item_id", "revision", name="uq_matches_rule_item_revision"),
        Index("ix_matches_rule_decision", "rule_id", "decision", "matched_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(max_length=80)
    item_id: int = Field(foreign_key="items.id", index=True)
    revision: int = Field(default=1)
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    rule_title: str = Field(default="", sa_column=Column(Text, nullable=False))
    severity: str = Field(default="medium", max_length=16)
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    matched_at: datetime | None = _ts(nullable=False, index=True)
    decision: str = Field(default="alerted", max_length=24)
    decision_reason: str | None = Field(default=None, sa_column=Column(Text))
    story_id: int | None = Field(default=None)
    alert_kind: str = Field(default="first", max_length=16)  # first | follow_up | confirmed | update
    snippet: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    entities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))


class StoryRow(SQLModel, table=True):
    """Items from any feed that report the same event (see watcher/stories.py)."""

    __tablename__ = "stories"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime | None = _ts(nullable=False)
    last_seen_at: datetime | None = _ts(nullable=False, index=True)
    is_official: bool = Field(default=False)


class StoryItemRow(SQLModel, table=True):
    """Which story an item belongs to, with the features it was clustered on."""

    __tablename__ = "story_items"

    item_id: int = Field(foreign_key="items.id", primary_key=True)
    story_id: int = Field(foreign_key="stories.id", index=True)
    feed_id: str = Field(max_length=64)
    is_official: bool = Field(default=False)
    words: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parties: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    added_at: datetime | None = _ts(nullable=False)


class StoryTermRow(SQLModel, table=True):
    """The clustering index: distinctive word -> recent items. Looked up by term within the
    story window, so clustering costs index lookups, never a scan of history."""

    __tablename__ = "story_terms"
    __table_args__ = (
        Index("ix_story_terms_term_seen", "term", "seen_at"),
        Index("ix_story_terms_seen", "seen_at"),  # pruning what fell out of the window
    )

    term: str = Field(primary_key=True, max_length=64)
    item_id: int = Field(foreign_key="items.id", primary_key=True)
    story_id: int = Field(foreign_key="stories.id")
    seen_at: datetime | None = _ts(nullable=False)


class StoryTermCountRow(SQLModel, table=True):
    """How many items of each day indexed a term: a word in too many items of the window is no
    evidence of a story, and looking up its postings would cost more the busier the window."""

    __tablename__ = "story_term_counts"

    term: str = Field(primary_key=True, max_length=64)
    day: int = Field(primary_key=True)  # days since 1970-01-01, UTC
    n: int = Field(default=0)


class AlertKeyRow(SQLModel, table=True):
    """One row per (rule, story fingerprint) that alerted: the constraint that makes an alert once.

    The fingerprint is the canonical link when there is one, so a notice carried by two feeds
    alerts once; otherwise feed id and item key. Kept when items are purged (a tombstone)."""

    __tablename__ = "alert_keys"

    rule_id: str = Field(primary_key=True, max_length=80)
    fingerprint: str = Field(sa_column=Column(Text, primary_key=True))
    match_id: int = Field(foreign_key="matches.id")
    created_at: datetime | None = _ts(nullable=False)


class SilenceRow(SQLModel, table=True):
    """A user's "not now": matches of the rule (and text) during the window are recorded, not sent."""

    __tablename__ = "silences"

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str | None = Field(default=None, max_length=80)  # None: every rule
    match_text: str | None = Field(default=None, sa_column=Column(Text))
    starts_at: datetime | None = _ts(nullable=False)
    ends_at: datetime | None = _ts(nullable=False, index=True)
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime | None = _ts(nullable=False)


class DeliveryRow(SQLModel, table=True):
    """The outbox: one row per (match, channel), written in the match's transaction."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("match_id", "channel", name="uq_deliveries_match_channel"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_channel_sent", "channel", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    match_id: int = Field(foreign_key="matches.id")
    channel: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = _ts(nullable=False)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = _ts(nullable=False)
    sent_at: datetime | None = _ts()
    # Set when a digest collected this row: the digest is then the one message that carries it.
    digest_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    # Waits for the channel's next digest even on an immediate channel: a follow-up of a rule with
    # follow_up = "digest", or a throttled rule's surplus with surplus = "digest".
    batched: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    # The end of the lease of the claim that set ``next_attempt_at`` (the two equal: claimed and in flight;
    # any later write of ``next_attempt_at`` ends the claim). Lets a restarted process on SQLite take back
    # what it held when it was killed, and a heartbeat renew only what is still its own.
    claimed_until: datetime | None = _ts()


class DigestRow(SQLModel, table=True):
    """One digest message per (channel, scheduled time), claimed and retried like a delivery.

    Its deliveries point at it (``deliveries.digest_id``) and are marked sent with it. The unique
    constraint lets exactly one replica open the digest for a scheduled time.
    """

    __tablename__ = "digests"
    __table_args__ = (
        UniqueConstraint("channel", "due_at", name="uq_digests_channel_due"),
        Index("ix_digests_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=64)
    due_at: datetime | None = _ts(nullable=False)
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = _ts(nullable=False)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = _ts(nullable=False)
    sent_at: datetime | None = _ts()
    # The end of the lease of the claim that set ``next_attempt_at`` (the two equal: claimed and in flight;
    # any later write of ``next_attempt_at`` ends the claim). Lets a restarted process on SQLite take back
    # what it held when it was killed, and a heartbeat renew only what is still its own.
    claimed_until: datetime | None = _ts()


class ArticleRow(SQLModel, table=True):
    """Linked pages fetched for matching, cached by URL so each is fetched once (failures too,
    for a while, so a broken page is not hammered on every poll)."""

    __tablename__ = "articles"

    url: str = Field(sa_column=Column(Text, primary_key=True))
    fetched_at: datetime | None = _ts(nullable=False)
    title: str = Field(default="", sa_column=Column(Text, nullable=False))
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text))


class ChannelHealthRow(SQLModel, table=True):
    """Since when a channel has been failing, so a long outage is reported on its fallback, once."""

    __tablename__ = "channel_health"

    channel: str = Field(primary_key=True, max_length=64)
    failing_since: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    fallback_sent_at: datetime | None = _ts()
    # Per-channel backoff: consecutive failed sends, and no send to this channel before paused_until
    # (a 429's Retry-After, a rate limit, or the backoff of a failing endpoint). Other channels go on.
    failures: int = Field(default=0)
    paused_until: datetime | None = _ts()


class SourceHealthRow(SQLModel, table=True):
    """A feed's open problem (failing, silent, serving HTML), reported once; the row goes when it
    recovers, and the recovery is reported then."""

    __tablename__ = "source_health"

    feed_id: str = Field(foreign_key="feeds.id", primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    since: datetime | None = _ts(nullable=False)


metadata = SQLModel.metadata


class PageQueueRow(SQLModel, table=True):
    """An item whose linked page must be read before its matches are final (issue: every item
    judged on its full text). Written in the poll's transaction; the page is fetched in a later
    cycle within the per-host budget, and the item is matched when its text arrives. A page that
    cannot be fetched after its retries is matched on the feed's text, and the row keeps why."""

    __tablename__ = "page_queue"
    __table_args__ = (Index("ix_page_queue_due", "status", "next_attempt_at"),)

    item_id: int = Field(foreign_key="items.id", primary_key=True)
    feed_id: str = Field(max_length=64, index=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    revision: int = Field(default=1)
    is_update: bool = Field(default=False)
    status: str = Field(default="waiting", max_length=16)  # waiting | done | gave_up
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = _ts(nullable=False)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    queued_at: datetime | None = _ts(nullable=False)
    done_at: datetime | None = _ts()
    # The end of the lease of the claim that set ``next_attempt_at`` (the two equal: claimed and in flight;
    # any later write of ``next_attempt_at`` ends the claim). Lets a restarted process on SQLite take back
    # what it held when it was killed, and a heartbeat renew only what is still its own.
    claimed_until: datetime | None = _ts()
