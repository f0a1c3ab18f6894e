"""Property tests: the feed parser, the normaliser and the article extractor on arbitrary and
broken input raise nothing but our own clear errors, and keep the promises their output makes.

The example count is small by default (the folder must stay fast); set WATCHER_FUZZ_EXAMPLES to
run a longer fuzzing pass, e.g. ``WATCHER_FUZZ_EXAMPLES=5000 pytest tests/hostile/test_properties.py``.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.errors import ParseError
from watcher.feeds.article import extract_article
from watcher.feeds.normalise import MAX_TITLE_CHARS, canonical_link, html_to_text, normalise_entry, normalise_feed
from watcher.feeds.parse import parse_feed
from watcher.model import ParsedFeed, RawEntry

settings.register_profile(
    "hostile", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.register_profile(
    "hostile-fuzz",
    parent=settings.get_profile("hostile"),
    max_examples=int(os.environ.get("WATCHER_FUZZ_EXAMPLES") or 1),
)
PROFILE = settings.get_profile("hostile-fuzz" if os.environ.get("WATCHER_FUZZ_EXAMPLES") else "hostile")

# What normalised text never holds: controls other than newline and tab, and lone surrogates.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACES = re.compile(r"\s")

# Text with the characters hostile feeds use: markup, entities, controls, bidi, surrogates.
_ALPHABET = st.one_of(
    st.characters(codec=None),
    st.sampled_from([*"<>&;#/=\"' \n\t\x00\x1b\x9b\u202e\u2066\ufeff", chr(0xD800), chr(0xDFFF)]),
)
hostile_text = st.text(_ALPHABET, max_size=300)
_FRAGMENTS = st.sampled_from(
    [
        "<p>", "</p>", "<br/>", "<script>", "</script>", "<style>", "<td>", "<div>", "</div>", "<!--", "-->",
        "&amp;", "&#0;", "&#xD800;", "&#x1b;", "&#x202e;", "&lt;b&gt;", "&nbsp;", "&acE;", "&", "<![CDATA[", "]]>",
        "<a href='javascript:x'>", "</a>", "<?xml ?>", "<!DOCTYPE x>", "<", ">",
    ]
)  # fmt: skip
markup = st.lists(st.one_of(_FRAGMENTS, hostile_text), max_size=20).map("".join)
dates = st.one_of(
    st.none(),
    st.datetimes(timezones=st.sampled_from([UTC, None])).filter(
        lambda d: timedelta(days=1) < d - datetime(1, 1, 1, tzinfo=d.tzinfo) and d.year < 9999
    ),
)
raw_entries = st.builds(
    RawEntry,
    guid=st.one_of(st.none(), hostile_text),
    title=st.one_of(st.none(), markup),
    link=st.one_of(
        st.none(), hostile_text, st.sampled_from(["javascript:alert(1)", "https://example.org/a?utm_source=x"])
    ),
    summary=st.one_of(st.none(), markup),
    content=st.lists(markup, max_size=3).map(tuple),
    published_at=dates,
    updated_at=dates,
    authors=st.lists(hostile_text, max_size=3).map(tuple),
    tags=st.lists(hostile_text, max_size=3).map(tuple),
)


@PROFILE
@given(markup)
def test_html_to_text_is_plain_bounded_and_tidy(value: str) -> None:
    text = html_to_text(value)
    assert not _UNSAFE.search(text)
    assert len(text) <= len(value)
    for line in text.split("\n") if text else ():
        assert line and line == line.strip() and "  " not in line


@PROFILE
@given(st.one_of(hostile_text, st.from_regex(r"\A[a-zA-Z]{0,10}:(//)?[^\s]{0,40}\Z")))
def test_canonical_link_is_a_web_address_or_none(value: str) -> None:
    link = canonical_link(value)
    if link is not None:
        assert link.startswith(("http://", "https://", "file://"))
        assert not _SPACES.search(link) and not _UNSAFE.search(link)
        assert canonical_link(link) == link  # one spelling per page: canonical is a fixed point


@PROFILE
@given(raw_entries)
def test_normalise_entry_gives_a_safe_item_or_a_clear_value_error(entry: RawEntry) -> None:
    try:
        item = normalise_entry(entry, "f")
    except ValueError as exc:
        assert "identify" in str(exc)
        return
    assert item.item_key and not _UNSAFE.search(item.item_key)
    assert "\n" not in item.title and len(item.title) <= MAX_TITLE_CHARS + 1
    for text in (item.title, item.summary, item.content, *item.authors, *item.tags):
        assert not _UNSAFE.search(text)
    for date in (item.published_at, item.updated_at):
        assert date is None or date.utcoffset() == timedelta(0)


@PROFILE
@given(st.lists(raw_entries, max_size=8))
def test_normalise_feed_keys_are_unique(entries: list[RawEntry]) -> None:
    items, warnings = normalise_feed(ParsedFeed(title=None, link=None, entries=tuple(entries)), "f")
    assert len({i.item_key for i in items}) == len(items)
    assert len(items) + sum("skipped" in w for w in warnings) == len(entries)


@PROFILE
@given(st.binary(max_size=2000))
def test_parse_feed_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_feed(body, feed_id="f", url="https://example.org/feed")
    except ParseError as exc:
        assert str(exc).startswith("not a feed")


_ELEMENT = st.sampled_from(["title", "link", "guid", "description", "pubDate", "category", "enclosure", "x"])


@st.composite
def broken_feeds(draw: st.DrawFn) -> bytes:
    """Well-formed-looking RSS or Atom, then damaged: cut short, bytes spliced in, tags dropped."""
    items = []
    for _ in range(draw(st.integers(0, 4))):
        fields = [f"<{name}>{draw(markup)}</{name}>" for name in draw(st.lists(_ELEMENT, max_size=5))]
        items.append("<item>" + "".join(fields) + "</item>")
    encoding = draw(st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "utf-16", "x-bogus", "ascii"]))
    doc = f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel><title>t</title>'
    doc += "".join(items) + "</channel></rss>"
    body = doc.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none", "cut", "splice", "drop"]))
    if damage == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == "splice":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=20)) + body[at:]
    elif damage == "drop":
        body = re.sub(rb"</[a-z]+>", b"", body, count=draw(st.integers(1, 5)))
    return body


@PROFILE
@given(broken_feeds(), st.sampled_from([None, "application/rss+xml", "text/html; charset=utf-8", "text/plain"]))
def test_parse_and_normalise_broken_feeds(body: bytes, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else None
    try:
        parsed = parse_feed(body, feed_id="f", url="https://example.org/feed", headers=headers)
    except ParseError as exc:
        assert str(exc).startswith("not a feed")
        return
    items, _ = normalise_feed(parsed, "f")
    for item in items:
        assert not _UNSAFE.search(item.title + item.summary + item.content)
        assert item.link is None or item.link.startswith(("http://", "https://"))


@PROFILE
@given(
    st.one_of(
        markup,
        st.binary(max_size=2000),
        markup.map(lambda m: f"<html><head><title>{m}</title></head><body><article><p>{m}</p></article></body></html>"),
    )
)
def test_extract_article_on_arbitrary_pages(page: str | bytes) -> None:
    article = extract_article(page, "https://example.org/a")
    assert "\n" not in article.title and not _UNSAFE.search(article.title)
    assert not _UNSAFE.search(article.text)
    assert len(article.text) <= len(page) and len(article.title) <= len(page)
