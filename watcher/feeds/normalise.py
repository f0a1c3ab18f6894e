"""RawEntry -> Item: a stable identity key, plain text, a canonical link, UTC dates, a content hash.

Pure: no I/O, no clock (a missing date stays ``None``, never "now"), no logging; problems come back
as warning strings. Imports only the standard library, ``watcher.model`` and ``watcher.errors``.
Must not match, store or render: text is made plain here for matching and escaped at render time.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from watcher.model import Item, ParsedFeed, RawEntry

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LINK_SCHEMES = frozenset({"http", "https", "file"})
# Click and campaign trackers: the same article reached from a newsletter or from the feed itself
# must give the same canonical link (it is the store's cross-feed fingerprint).
_TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "_ga", "_gl",
        "igshid", "yclid", "twclid", "ttclid", "li_fat_id", "ocid", "ncid", "cmpid", "smid", "ref_src",
        # AMP switches: the AMP rendering of an article is the article.
        "amp", "outputtype", "_amp",
    }
)  # fmt: skip
# Google's AMP cache serves https://www-example-com.cdn.ampproject.org/c/s/www.example.com/path.
_AMP_CACHE = re.compile(r"^/[a-z]/(?:s/)?([^/]+)(/.*)?$")

# Elements whose text is never prose.
_SKIPPED_TAGS = frozenset({"script", "style", "template"})
# Elements that start a new line in rendered HTML; table cells only need a space between them.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
        "ol", "p", "pre", "section", "table", "tr", "ul",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
_SPACES = re.compile(r"\s+")
# C0 and C1 controls other than line breaks, and lone surrogates: PostgreSQL rejects NUL in text,
# SQLite's driver cannot encode a lone surrogate, and none of them is prose. Seen as "&#0;" and
# stray bytes in hand-made feeds (feedparser's loose parser lets them through) and as C1 bytes in
# feeds decoded as ISO-8859-1. The line breaks among them (\x1c-\x1f, NEL) split lines instead.
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff]")
# A key is one line: every control (line breaks too) goes, so it prints and logs as one.
_KEY_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A title past this is not a title (seen: a whole article pasted into <title>); it is cut, so a
# subject line, a Slack header or a terminal row stays readable. The text keeps everything.
MAX_TITLE_CHARS = 1_000
# Keys and links are indexed: PostgreSQL refuses a B-tree entry past about 2,700 bytes. A longer
# guid is hashed (still stable, still unique); a longer link is no link (browsers and sitemaps
# stop at about 2,000 characters, so it is junk or an attack).
_MAX_KEY_BYTES = 1_000
_MAX_LINK_BYTES = 2_048
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]|\s")


def normalise_entry(entry: RawEntry, feed_id: str) -> Item:
    """Turn one raw entry into an Item.

    Raises ``ValueError`` when the entry has nothing to identify it by (no guid, link, title or
    summary); ``normalise_feed`` skips such entries with a warning.
    """
    title = _bounded_title(html_to_text(entry.title or "").replace("\n", " "))
    summary = html_to_text(entry.summary or "")
    content = "\n".join(filter(None, (html_to_text(value) for value in entry.content)))
    if content == summary:
        # feedparser copies an Atom <content> (and RSS content:encoded) into the summary when the
        # entry has none, so the same text would be stored and matched twice.
        content = ""
    published_at = _utc(entry.published_at)
    updated_at = _utc(entry.updated_at)
    return Item(
        feed_id=feed_id,
        item_key=_item_key(entry, title, summary, published_at),
        title=title,
        link=canonical_link(entry.link),
        summary=summary,
        content=content,
        # gov.uk Atom entries carry only <updated>; an undated entry stays undated, never "now".
        published_at=published_at or updated_at,
        updated_at=updated_at,
        authors=_unique(entry.authors),
        tags=_unique(entry.tags),
        content_hash=content_hash(title, summary, content),
    )


def normalise_feed(parsed: ParsedFeed, feed_id: str, identity: str = "auto") -> tuple[list[Item], list[str]]:
    """Normalise every entry of one fetch, in feed order; return the items and this stage's warnings.

    ``identity`` picks the item key: ``"guid"`` (the publisher's id, then link, then hash),
    ``"link"`` (the canonical link first: for feeds whose ids change without any real change,
    like gov.uk's organisation feeds), or ``"auto"``: guids, unless this fetch shows the feed
    reusing one guid for different links, in which case those entries are keyed by link.
    ``parsed.warnings`` are not repeated here. Entries that cannot be normalised are skipped, and
    a key seen twice in one fetch keeps its first entry, each with a warning.
    """
    items: list[Item] = []
    warnings: list[str] = []
    seen: set[str] = set()
    links_per_guid: dict[str, set[str | None]] = {}
    for entry in parsed.entries:
        if entry.guid:
            links_per_guid.setdefault(entry.guid.strip(), set()).add(canonical_link(entry.link))
    for index, entry in enumerate(parsed.entries):
        try:
            item = normalise_entry(entry, feed_id)
        except ValueError as exc:
            warnings.append(f"entry {index}: skipped: {exc}")
            continue
        reused = identity == "auto" and len(links_per_guid.get((entry.guid or "").strip(), ())) > 1
        if (identity == "link" or reused) and item.link:
            # Some feeds reuse one guid for every item (a CMS default) or change ids on every
            # update (gov.uk organisation feeds): the canonical link is the stable identity then.
            item = replace(item, item_key=_bounded_key(item.link))
        if item.item_key in seen:
            # An item listed twice in one fetch must not be inserted (and alerted) twice.
            warnings.append(f"entry {index}: skipped: duplicate item key {item.item_key!r}")
            continue
        seen.add(item.item_key)
        items.append(item)
    if any(len(links) > 1 for links in links_per_guid.values()) and identity == "auto":
        warnings.append("the feed reuses guids for different links; those items are keyed by link")
    return items, warnings


def _item_key(entry: RawEntry, title: str, summary: str, published_at: datetime | None) -> str:
    guid = _KEY_CONTROLS.sub("", (entry.guid or "").strip())
    if guid:
        # The publisher's id is the key: gov.uk Atom ids (CMA cases keep theirs while the case page
        # changes), FTC and DOJ guids, and Google News, whose links are opaque redirect tokens that
        # are useless as keys. (The CMA organisation feed changes ids on every update; keying it by
        # link needs a per-feed setting, not this default.)
        return _bounded_key(guid)
    link = canonical_link(entry.link)
    if link:
        # RSS 2.0 makes <guid> optional; small publishers' hand-made feeds omit it (tests/data/
        # feeds/no-guid.rss). The canonical link drops tracking params so a re-tagged URL is the
        # same item.
        return _bounded_key(link)
    # Neither guid nor link (seen in hand-made feeds): title and publication date are the only
    # identity left. RSS 2.0 allows an item with only a <description>, so that stands in for the
    # title. Not updated_at: it moves on every edit and would make the item new each time.
    text = title or " ".join(summary.split())
    if not text:
        raise ValueError("no guid, link, title or summary to identify the entry by")
    date = published_at.isoformat() if published_at else ""
    return "sha256:" + hashlib.sha256(f"{text}\n{date}".encode()).hexdigest()


def _bounded_key(key: str) -> str:
    if len(key.encode("utf-8", "surrogatepass")) <= _MAX_KEY_BYTES:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _bounded_title(title: str) -> str:
    return title if len(title) <= MAX_TITLE_CHARS else title[:MAX_TITLE_CHARS].rstrip() + "…"


def html_to_text(value: str) -> str:
    """Make HTML (or plain text) plain: one line per block, collapsed spaces, entities decoded."""
    if "<" in value:
        parser = _TextExtractor()
        parser.feed(value)
        parser.close()
        value = "".join(parser.parts)
    elif "&" in value:
        value = html.unescape(value)
    # Plain text keeps its own line breaks; HTML's source newlines became spaces in the parser.
    lines = (" ".join(line.split()) for line in _CONTROLS.sub("", value).splitlines())
    return "\n".join(line for line in lines if line)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>: a break, and never the start of a skipped element.
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(_SPACES.sub(" ", data))


def canonical_link(url: str | None) -> str | None:
    """Give one spelling per page: the store's cross-feed fingerprint and the link fallback key.

    Folds scheme and host case and default ports, drops fragments and tracking parameters, and
    maps AMP variants (AMP cache URLs, ``amp.`` hosts, ``/amp`` path segments, ``.amp.html``) to
    the article, so the same story reached through a newsletter, social media or AMP is one link.
    """
    if not url or not url.strip():
        return None
    # Spaces, controls and bidi marks are not URL characters (RFC 3986 2.2): percent-encoded, so a
    # link shown in a message or a terminal is exactly the link followed. Surrogates cannot be.
    url = _URL_UNSAFE.sub(lambda m: "" if m.group(0) >= "\ud800" else quote(m.group(0), safe=""), url.strip())
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _LINK_SCHEMES or not host:
        # Relative, or not a page: javascript:, data:, ftp: links are never fetched as pages nor
        # put in a message as links (even javascript://host/%0a..., which has a host). file:
        # links stay for local feeds (`watcher demo`); parse drops them from feeds served over HTTP.
        return None
    path = parts.path
    if host.endswith(".cdn.ampproject.org"):
        cached = _AMP_CACHE.match(path)
        if cached:
            return canonical_link(
                f"https://{cached.group(1)}{cached.group(2) or '/'}" + (f"?{parts.query}" if parts.query else "")
            )
    if host.startswith("amp.") and host.count(".") >= 2:
        host = "www." + host[4:]
    segments = [seg for seg in path.split("/") if seg.lower() != "amp"]
    path = "/".join(segments) if len(segments) > 1 else ("/" if path else "")
    path = re.sub(r"\.amp(\.html?)$", r"\1", path)
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal; hostname dropped the brackets
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if "@" in parts.netloc:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    query = "&".join(pair for pair in parts.query.split("&") if pair and not _is_tracking(pair.partition("=")[0]))
    path = path or ("/" if scheme in _DEFAULT_PORTS else "")
    link = urlunsplit((scheme, netloc, path, query, ""))
    return link if len(link.encode()) <= _MAX_LINK_BYTES else None


def _is_tracking(name: str) -> bool:
    name = unquote(name).lower()
    return name.startswith("utm_") or name in _TRACKING_PARAMS


def content_hash(title: str, summary: str, content: str) -> str:
    """Fingerprint the text, so a changed entry can be told from an unchanged one.

    Whitespace is collapsed first: publishers re-indent or re-wrap without changing a word.
    """
    text = "\x1f".join(" ".join(part.split()) for part in (title, summary, content))
    return hashlib.sha256(text.encode()).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # parse gives UTC-aware dates; a naive one (a hand-built RawEntry) is taken to be UTC, not local.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    """Authors and tags: plain, one line, without controls, each once."""
    cleaned = (" ".join(_CONTROLS.sub("", value).split()) for value in values)
    return tuple(dict.fromkeys(value for value in cleaned if value))
