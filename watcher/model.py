"""Values passed between pipeline stages. Frozen, plain, picklable; no I/O.

fetch -> FetchResult -> parse -> ParsedFeed(RawEntry...) -> normalise -> Item
      -> match -> Match -> store -> outbox rows -> render -> Message -> deliver -> DeliveryResult
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class Severity(enum.StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = list(Severity)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One HTTP (or file://) response. ``status == 304`` is a normal result with an empty body."""

    url: str
    final_url: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    etag: str | None = None
    last_modified: str | None = None

    @property
    def is_modified(self) -> bool:
        return self.status != 304


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One feed entry as the publisher wrote it: HTML untouched, dates already UTC."""

    guid: str | None
    title: str | None
    link: str | None
    summary: str | None  # HTML or text, as served
    content: tuple[str, ...] = ()  # HTML or text bodies, as served
    published_at: datetime | None = None
    updated_at: datetime | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    link: str | None
    entries: tuple[RawEntry, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Item:
    """A normalised entry: plain text, canonical link, UTC dates, a stable key."""

    feed_id: str
    item_key: str
    title: str
    link: str | None
    summary: str  # plain text
    content: str  # plain text
    published_at: datetime | None
    updated_at: datetime | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    content_hash: str = ""

    @property
    def text(self) -> str:
        """Summary and content as one text, without repeating a summary that opens the content."""
        if not self.content:
            return self.summary
        if not self.summary or self.content.startswith(self.summary):
            return self.content
        return f"{self.summary}\n{self.content}"


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled-ready rule. Phrases are as written; the matcher normalises them.

    ``all_of`` is a tuple of groups: every group must have at least one phrase present.
    A plain string in the rule file's ``all`` list is a group of one.
    """

    id: str
    title: str
    severity: Severity
    any_of: tuple[str, ...] = ()
    all_of: tuple[tuple[str, ...], ...] = ()
    none_of: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    description: str = ""
    enabled: bool = True
    source: str = ""  # "path:line" of the rule header, for messages


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a rule fired: which phrase, in which field, and where in that field's folded text."""

    field: str
    phrase: str
    start: int
    end: int

    def __str__(self) -> str:
        return f'{self.field} contains "{self.phrase}"'


@dataclass(frozen=True, slots=True)
class Match:
    rule_id: str
    feed_id: str
    item_key: str
    severity: Severity
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Alert:
    """Everything a message template may use: one delivery seen as plain data, never ORM rows."""

    delivery_id: int
    channel: str
    rule_id: str
    rule_title: str
    severity: Severity
    reasons: tuple[str, ...]
    feed_id: str
    feed_title: str
    item_title: str
    item_link: str | None
    item_text: str
    published_at: datetime | None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    body_format: str = "text"  # "text" | "markdown" | "html"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Outcome of one send to one channel. ``error`` never contains a secret."""

    channel: str
    ok: bool
    error: str | None = None
    recoverable: bool = True
    retry_after_seconds: float | None = None
    details: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Channel:
    """Where alerts go. ``urls`` are apprise URLs and hold secrets: never log or print them."""

    name: str
    kind: str = "apprise"  # "apprise" | "console"
    urls: tuple[str, ...] = field(default=(), repr=False)
