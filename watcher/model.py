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


class Decision(enum.StrEnum):
    """What was done with a match; recorded on every match row (see docs/rules.md)."""

    ALERTED = "alerted"
    DUPLICATE = "duplicate"
    SILENCED = "silenced"
    THROTTLED = "throttled"
    UPDATE_IGNORED = "update_ignored"


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
    moved_to: str | None = None  # every redirect was permanent (301, 308): the feed's new address

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
    ttl_minutes: int | None = None  # RSS <ttl>: how long the publisher says the feed may be cached


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
    article: str = ""  # plain text of the linked page, when fetched (feeds with full_text = true)

    @property
    def text(self) -> str:
        """Summary and content as one text, without repeating a summary that opens the content."""
        if not self.content:
            return self.summary
        if not self.summary or self.content.startswith(self.summary):
            return self.content
        return f"{self.summary}\n{self.content}"


# -- rule conditions: a small tree compiled from `any`/`all`/`none` and `query` ----------------
# Text fields a term can be scoped to. A term without a scope looks in DEFAULT_FIELDS.
TEXT_FIELDS = ("title", "summary", "content", "article", "link", "author", "category")
DEFAULT_FIELDS = ("title", "summary", "content", "article")


@dataclass(frozen=True, slots=True)
class Term:
    """True when any of ``phrases`` occurs as whole words in one of ``fields``.

    A phrase ending in ``*`` is a prefix ("investigat*"). ``label`` names the term in reasons:
    the phrase itself, or the list it came from ("@big_tech").
    """

    phrases: tuple[str, ...]
    fields: tuple[str, ...] = DEFAULT_FIELDS
    label: str = ""


@dataclass(frozen=True, slots=True)
class Regex:
    """A regular expression over the plain (unfolded) text of ``fields``."""

    pattern: str
    ignore_case: bool = False
    fields: tuple[str, ...] = DEFAULT_FIELDS


@dataclass(frozen=True, slots=True)
class Meta:
    """A non-text condition: ``feed`` id, feed ``tag``, or link ``domain`` (a suffix match)."""

    kind: str  # "feed" | "tag" | "domain"
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Near:
    """Both terms occur in the same field within ``distance`` words of each other, either order."""

    left: Term
    right: Term
    distance: int


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Condition


Condition = Term | Regex | Meta | Near | And | Or | Not


@dataclass(frozen=True, slots=True)
class Example:
    """A text kept beside a rule, with whether the rule must fire on it."""

    expect_match: bool
    title: str
    summary: str = ""
    content: str = ""
    link: str | None = None
    feed: str = "example"
    feed_tags: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Stage:
    """A step of an authority's procedure ("phase-1"), and the phrases that say it was reached.

    Stages are declared in procedural order; an edited case page is at the latest stage it names.
    """

    name: str
    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated rule: metadata, one condition tree, and the non-text filters."""

    id: str
    title: str
    severity: Severity
    condition: Condition
    channels: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    feed_tags: tuple[str, ...] = ()
    max_age_seconds: float | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    # The competition authority whose action the rule reports ("cma", "ftc"...); "" for deal news.
    # Messages name it, and the relevance benchmark checks it against the authority that acted.
    authority: str = ""
    status: str = "stable"
    owner: str = ""
    references: tuple[str, ...] = ()
    false_positives: str = ""
    enabled: bool = True
    examples: tuple[Example, ...] = ()
    on_update: str = "ignore"  # "notify": an edited item that (still) matches alerts once per new stage
    throttle_max: int | None = None  # at most this many alerts...
    throttle_seconds: float | None = None  # ...per this window...
    throttle_key: str = "rule"  # ...counted per rule, or per feed
    throttle_surplus: str = "drop"  # the alerts over budget: "drop" (recorded only) or "digest"
    follow_up: str = "ignore"  # later items of an alerted story: "ignore", "notify" or "digest"
    on_official: str = "notify"  # an official notice joining a press-only story alerts once more
    source: str = ""  # "path:line" of the rule header, for messages
    # The procedure stages of the rule's authority ([stages.<authority>] in a rule file): an edit
    # alerts once per new stage reached, whichever words it uses (with on_update = "notify").
    stages: tuple[Stage, ...] = ()


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a rule fired: which text, in which field, where, and the words around it.

    ``start``/``end`` index the field's plain text (``Item.title``, ``Item.summary``...);
    ``snippet`` shows the hit in context with the matched words in **double asterisks**.
    ``via`` names the list the phrase came from ("@big_tech"), if any.
    """

    field: str
    phrase: str
    start: int
    end: int
    snippet: str = ""
    via: str = ""

    def __str__(self) -> str:
        via = f" (from {self.via})" if self.via else ""
        return f'{self.field} contains "{self.phrase}"{via}'


@dataclass(frozen=True, slots=True)
class Match:
    rule_id: str
    feed_id: str
    item_key: str
    severity: Severity
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that fired, as a message names it."""

    rule_id: str
    title: str
    severity: Severity
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Alert:
    """Everything a message template may use: one delivery seen as plain data, never ORM rows.

    When several rules fired on one item or story for one channel, the outbox merges their
    deliveries into one Alert (``notify.merge``): ``rules`` names each of them, ``delivery_ids``
    carries every delivery the one message stands for, and the first rule is the most severe.
    """

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
    kind: str = "first"  # first | follow_up | confirmed | update
    sources: tuple[str, ...] = ()  # feeds the story appeared in, first first
    story_id: int | None = None
    # The best reason's words in context, matched words in **double asterisks**. Feed text:
    # untrusted, so templates escape it and turn only our own ** markers into emphasis.
    snippet: str = ""
    entities: tuple[str, ...] = ()  # parties named in the headline ("Microsoft", "Mistral AI")
    created_at: datetime | None = None  # when the alert was queued
    item_id: int | None = None
    tags: tuple[str, ...] = ()  # the rule's tags (merged: the union of every rule's)
    rules: tuple[RuleHit, ...] = ()  # merged: every rule that fired, most severe first
    delivery_ids: tuple[int, ...] = ()  # merged: every delivery this message carries

    @property
    def carried(self) -> tuple[int, ...]:
        """The deliveries one send of this alert settles."""
        return self.delivery_ids or (self.delivery_id,)

    @property
    def hits(self) -> tuple[RuleHit, ...]:
        return self.rules or (RuleHit(self.rule_id, self.rule_title, self.severity, self.tags),)


@dataclass(frozen=True, slots=True)
class Digest:
    """Every alert held for one channel since its previous digest, sent as one message."""

    digest_id: int
    channel: str
    due_at: datetime  # the scheduled time this digest is for
    since: datetime | None  # the previous digest's scheduled time, if any
    alerts: tuple[Alert, ...]
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str  # a file name, e.g. "watcher-digest-2026-11-30.csv"
    content: bytes


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    body_format: str = "text"  # "text" | "markdown" | "html"
    attachments: tuple[Attachment, ...] = ()


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
    fallback: str | None = None  # told when this channel has been failing for fallback_after_seconds
    fallback_after_seconds: float = 3600.0
    # "markdown" (CommonMark; apprise turns it into Slack mrkdwn, Discord, Teams...), "html"
    # (e-mail: apprise adds the plain-text part) or "text".
    format: str = "text"
    template_dir: str | None = None  # files here override the built-in templates of `format`
    mode: str = "immediate"  # "immediate" | "digest"
    digest_schedule: str = ""  # crontab, in `timezone`: "0 8 * * mon-fri"
    timezone: str = "UTC"
    digest_max_items: int = 25  # listed in the message; the rest are counted, and attached
    quiet_hours: tuple[str, str] | None = None  # ("22:00", "07:00"), local to `timezone`
    quiet_bypass: Severity | None = None  # this severity and above are sent even in quiet hours
    rate_limit: tuple[int, float] | None = None  # (messages, per seconds)


@dataclass(frozen=True, slots=True)
class Silence:
    """A user's "not now" for a rule (or every rule), optionally only for items containing a text."""

    id: int
    rule_id: str | None
    match_text: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_at: datetime

    def describe(self) -> str:
        what = f"rule {self.rule_id}" if self.rule_id else "every rule"
        text = f' matching "{self.match_text}"' if self.match_text else ""
        note = f": {self.comment}" if self.comment else ""
        return f"silence #{self.id} ({what}{text}, until {self.ends_at:%Y-%m-%d %H:%M} UTC){note}"


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the routing list: which matches it takes, and where they go."""

    channels: tuple[str, ...]
    min_severity: Severity | None = None
    rules: tuple[str, ...] = ()  # rule id globs
    rule_tags: tuple[str, ...] = ()
    feed_tags: tuple[str, ...] = ()
    continue_: bool = False
    name: str = ""
