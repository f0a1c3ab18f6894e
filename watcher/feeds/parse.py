"""Feed bytes -> ParsedFeed, through feedparser.

Owns the one feedparser call, the policy on its ``bozo`` complaints (which are warnings and which
mean "not a feed"), and copying the few fields we use out of feedparser's dicts into frozen
``RawEntry`` values. HTML stays as served: ``normalise`` turns it into text.

Must not do I/O: feedparser only ever sees a ``BytesIO`` (given a URL or a plain string it may fetch
it or open a file of that name). No HTTP, no logging, no clock; problems travel as
``ParsedFeed.warnings`` or a ``ParseError``.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import feedparser
import feedparser.mixin

from watcher.errors import ParseError
from watcher.model import ParsedFeed, RawEntry

# Complaints about the HTTP envelope, not the XML: the document itself parsed.
_BENIGN_BOZO: tuple[type[Exception], ...] = (
    feedparser.CharacterEncodingOverride,
    feedparser.NonXMLContentType,
)

# What a broken entry can raise while we copy it (a field of an unexpected type, a date that
# datetime cannot hold); anything else is a bug and should surface.
_ENTRY_ERRORS = (AttributeError, LookupError, OverflowError, TypeError, ValueError)

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

# feedparser drops a duplicate tag by comparing it with every tag the entry already has, so an
# entry with 100,000 <category> elements costs billions of comparisons and holds a parse worker
# for hours (tests/hostile, case "categories"). No honest entry has more than a few dozen tags:
# past this many, the rest are ignored, which bounds the work per tag.
MAX_TAGS_PER_ENTRY = 256
_feedparser_add_tag = feedparser.mixin._FeedParserMixin._add_tag


def _add_tag_bounded(self: Any, term: Any, scheme: Any, label: Any) -> None:
    tags = self._get_context().get("tags")
    if tags is not None and len(tags) >= MAX_TAGS_PER_ENTRY:
        return
    _feedparser_add_tag(self, term, scheme, label)


feedparser.mixin._FeedParserMixin._add_tag = _add_tag_bounded


def parse_feed(body: bytes, *, feed_id: str, url: str, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Parse a fetched body into raw entries; ``url`` is the final URL, used to resolve relative links.

    Raises ``ParseError`` when the body is not an RSS/Atom feed, or when it has entries and none
    of them could be read.
    """
    if not body.strip():
        raise ParseError(feed_id, url, "not a feed: empty body")
    try:
        result = feedparser.parse(
            io.BytesIO(_replace_impossible_char_refs(body)),
            response_headers=_response_headers(headers, url),
            sanitize_html=False,  # we never render feed HTML; normalise makes text of it
            resolve_relative_uris=True,
        )
    except Exception as exc:
        # feedparser is lenient but not total: e.g. its loose parser raises UnicodeEncodeError on
        # a character reference to a lone surrogate (&#xD800;). This is the boundary: convert.
        raise ParseError(feed_id, url, f"not a feed: feedparser failed: {_describe(exc)}") from exc

    feed: Mapping[str, Any] = dict.get(result, "feed") or {}
    entries: Sequence[Mapping[str, Any]] = dict.get(result, "entries") or ()
    bozo = dict.get(result, "bozo_exception") if dict.get(result, "bozo") else None

    warnings: list[str] = []
    if not dict.get(result, "version"):
        # An HTML page (an error page, a login wall, a 403 from a CDN) served with status 200.
        detail = f" ({_describe(bozo)})" if bozo is not None else ""
        raise ParseError(feed_id, url, f"not a feed: no RSS or Atom root element{detail}")
    if bozo is not None:
        if isinstance(bozo, _BENIGN_BOZO):
            warnings.append(f"feed: {_describe(bozo)}")
        elif not entries:
            raise ParseError(feed_id, url, f"not a feed: {_describe(bozo)}")
        else:
            # Real feeds are often slightly broken (a stray '&', a truncated tail); feedparser's
            # loose parser still recovers their entries, and losing an alert is worse.
            warnings.append(f"feed: malformed, parsed leniently: {_describe(bozo)}")

    raw_entries, entry_warnings = _convert_entries(entries, feed_id=feed_id, url=url, local=url[:5].lower() == "file:")
    warnings.extend(entry_warnings)
    return ParsedFeed(
        title=_optional_text(feed, "title"),
        link=_optional_text(feed, "link"),
        entries=raw_entries,
        warnings=tuple(warnings),
        ttl_minutes=_ttl(feed),
    )


def _replace_impossible_char_refs(body: bytes) -> bytes:
    """Character references to code points no text can hold (a lone surrogate, past U+10FFFF)
    become U+FFFD: feedparser's loose parser raises on them (&#xD800;), and one bad title would
    otherwise lose the whole feed. Only ASCII-compatible encodings spell references this way."""
    return _CHAR_REF.sub(_checked_char_ref, body) if b"&#" in body else body


_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,16})|([0-9]{1,20}));")


def _checked_char_ref(match: re.Match[bytes]) -> bytes:
    hex_digits, decimal = match.groups()
    code = int(hex_digits, 16) if hex_digits else int(decimal)
    return b"&#xFFFD;" if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else match.group(0)


def _ttl(feed: Mapping[str, Any]) -> int | None:
    """RSS <ttl> in minutes, when it is a sane whole number (a week at most); else None."""
    value = str(feed.get("ttl") or "").strip()
    return int(value) if value.isdigit() and 0 < int(value) <= 7 * 24 * 60 else None


def _response_headers(headers: Mapping[str, str] | None, url: str) -> dict[str, str]:
    """Lower-case the headers and fill in what feedparser reads from them."""
    result = {name.lower(): value for name, value in (headers or {}).items()}
    # Without a Content-Type, feedparser falls back to HTTP's ISO-8859-1 default and garbles a UTF-8
    # feed that has no encoding declaration (and flags every saved file as NonXMLContentType). We
    # only call this on bodies we expect to be feeds, so apply XML's rules: BOM, prolog, else UTF-8.
    result.setdefault("content-type", "application/xml")
    # feedparser resolves relative links against Content-Location; we always want the final URL.
    result["content-location"] = url
    return result


def _convert_entries(
    entries: Sequence[Mapping[str, Any]], *, feed_id: str, url: str, local: bool = False
) -> tuple[tuple[RawEntry, ...], list[str]]:
    """Copy every readable entry; skip a broken one with a warning, fail only if all are broken."""
    converted: list[RawEntry] = []
    warnings: list[str] = []
    first_error = ""
    for index, entry in enumerate(entries):
        try:
            raw, date_warnings = _convert_entry(entry, local=local)
        except _ENTRY_ERRORS as exc:
            message = f"entry {index}: skipped: {_describe(exc)}"
            first_error = first_error or message
            warnings.append(message)
            continue
        converted.append(raw)
        warnings.extend(f"entry {index}: {warning}" for warning in date_warnings)
    if entries and not converted:
        raise ParseError(feed_id, url, f"not a feed: none of its {len(entries)} entries could be read ({first_error})")
    return tuple(converted), warnings


def _convert_entry(entry: Mapping[str, Any], *, local: bool = False) -> tuple[RawEntry, list[str]]:
    warnings: list[str] = []
    dates: dict[str, datetime | None] = {}
    for name in ("published", "updated"):
        try:
            dates[name] = _utc(_field(entry, f"{name}_parsed"))
        except (ValueError, OverflowError):
            # A CMS writing "0000-00-00 00:00:00" makes feedparser return year -1. The entry is
            # still news; it just has no usable date.
            dates[name] = None
            warnings.append(f"ignored unusable {name} date {_field(entry, name)!r}")
    raw = RawEntry(
        guid=_optional_text(entry, "id"),
        title=_optional_text(entry, "title"),
        link=_link(entry, local=local),
        summary=_optional_text(entry, "summary"),
        content=tuple(_texts(_field(entry, "content"), "value")),
        published_at=dates["published"],
        updated_at=dates["updated"],
        authors=tuple(_texts(_field(entry, "authors"), "name")),
        tags=tuple(_texts(_field(entry, "tags"), "term", "label")),
    )
    return raw, warnings


def _link(entry: Mapping[str, Any], *, local: bool = False) -> str | None:
    """The entry's web page: an HTML rel=alternate link, else any alternate, else feedparser's link.

    A file: link counts only in a feed read from a file (``local``): from a feed served over HTTP
    it would have the daemon read a local file as the item's page (/etc/passwd as an article).
    """
    link = _any_link(entry)
    if link is not None and not local and link.lstrip()[:5].lower() == "file:":
        return None
    return link


def _any_link(entry: Mapping[str, Any]) -> str | None:
    links: Iterable[Mapping[str, Any]] = _field(entry, "links") or ()
    alternates = [link for link in links if _field(link, "rel") in (None, "alternate") and _field(link, "href")]
    # Atom allows several alternates (a PDF beside the page); the HTML page is what people open.
    for link in alternates:
        if (_field(link, "type") or "text/html") in _HTML_TYPES:
            return _checked_text(_field(link, "href"), "link")
    if alternates:
        return _checked_text(_field(alternates[0], "href"), "link")
    # RSS items with only <guid isPermaLink="true"> get their link from the guid here.
    return _optional_text(entry, "link")


def _texts(values: Iterable[Mapping[str, Any]] | None, *keys: str) -> Iterable[str]:
    """The first non-empty of ``keys`` in each mapping (e.g. a tag's term, else its label)."""
    for value in values or ():
        for key in keys:
            text = _field(value, key)
            if text:
                yield _checked_text(text, key)
                break


def _optional_text(mapping: Mapping[str, Any], key: str) -> str | None:
    value = _field(mapping, key)
    if value is None or value == "":
        return None
    return _checked_text(value, key)


def _field(mapping: Mapping[str, Any], key: str) -> Any:
    # Not mapping.get: FeedParserDict maps a missing "updated*" key onto "published*" with a
    # DeprecationWarning (feedparser issue 310) and aliases other keys; we want what was served.
    return dict.get(mapping, key) if isinstance(mapping, dict) else mapping.get(key)


def _checked_text(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{key} is {type(value).__name__}, not text")
    return value


def _utc(value: object) -> datetime | None:
    """feedparser's ``*_parsed`` struct_time, already in UTC, as an aware datetime."""
    if value is None:
        return None
    if not isinstance(value, time.struct_time):
        raise TypeError(f"date is {type(value).__name__}, not struct_time")
    # struct_time allows a leap second (tm_sec 60 or 61); datetime does not.
    return datetime(*value[:5], min(value.tm_sec, 59), tzinfo=UTC)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
