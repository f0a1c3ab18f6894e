"""parse_feed on saved and inline feeds: real feedparser, no sockets, no files beyond tests/data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from watcher.errors import ParseError
from watcher.feeds.parse import MAX_TAGS_PER_ENTRY, _convert_entries, parse_feed
from watcher.model import ParsedFeed

FEEDS_DIR = Path(__file__).parent.parent / "data" / "feeds"
SAVED_FEEDS = sorted(path.name for path in FEEDS_DIR.iterdir() if path.suffix in {".atom", ".rss", ".xml"})
URL = "https://www.example.org/feeds/news.xml"


def parse(body: bytes, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse_feed(body, feed_id="test-feed", url=URL, headers=headers)


def rss(items: str, *, prolog: str = '<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    return f'{prolog}<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()


def test_saved_feeds_are_present() -> None:
    assert len(SAVED_FEEDS) >= 7


@pytest.mark.parametrize("name", SAVED_FEEDS)
def test_saved_feed_parses_cleanly(name: str) -> None:
    parsed = parse_feed((FEEDS_DIR / name).read_bytes(), feed_id=Path(name).stem, url=URL)

    assert parsed.warnings == ()
    assert parsed.title
    assert parsed.entries
    for entry in parsed.entries:
        assert entry.title
        for date in (entry.published_at, entry.updated_at):
            assert date is None or date.utcoffset() == timedelta(0)
        assert entry.published_at or entry.updated_at


def test_html_error_page_is_not_a_feed() -> None:
    # An Akamai "Access Denied" page served with 200, as ftc.gov does to some cloud runners.
    body = (FEEDS_DIR / "not-a-feed.html").read_bytes()

    with pytest.raises(ParseError) as caught:
        parse_feed(body, feed_id="ftc-press", url=URL, headers={"Content-Type": "text/html"})

    assert str(caught.value).startswith("not a feed: ")
    assert caught.value.feed_id == "ftc-press"
    assert caught.value.url == URL


def test_well_formed_xhtml_page_is_not_a_feed() -> None:
    body = b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Sign in</title></head><body/></html>'

    with pytest.raises(ParseError, match=r"^not a feed: no RSS or Atom root element$"):
        parse(body)


@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_empty_body_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty body"):
        parse(body)


@pytest.mark.parametrize(
    "body",
    [
        rss(""),
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        b"<id>urn:x</id><updated>2024-05-01T00:00:00Z</updated></feed>",
    ],
)
def test_empty_valid_feed_is_fine(body: bytes) -> None:
    parsed = parse(body)

    assert parsed.entries == ()
    assert parsed.warnings == ()
    assert parsed.title == "T"


def test_body_naming_a_file_is_not_opened(tmp_path: Path) -> None:
    # feedparser opens a str or bytes argument that names a file; we only ever hand it a stream.
    saved = tmp_path / "feed.rss"
    saved.write_bytes(rss("<item><title>secret</title></item>"))

    with pytest.raises(ParseError):
        parse(str(saved).encode())


def test_encoding_override_is_a_warning() -> None:
    # Served as UTF-8 by HTTP, declared ISO-8859-1 in the prolog and really Latin-1: feedparser
    # flags CharacterEncodingOverride and decodes it correctly anyway.
    body = (FEEDS_DIR / "latin1.rss").read_bytes()

    parsed = parse(body, headers={"Content-Type": "application/rss+xml; charset=utf-8"})

    assert len(parsed.warnings) == 1
    assert "CharacterEncodingOverride" in parsed.warnings[0]
    assert parsed.entries[0].title is not None
    assert "Autorité de la concurrence" in parsed.entries[0].title


def test_non_xml_content_type_is_a_warning() -> None:
    body = (FEEDS_DIR / "doj-antitrust.rss").read_bytes()

    parsed = parse(body, headers={"content-type": "text/html; charset=utf-8"})

    assert len(parsed.entries) == 4
    assert len(parsed.warnings) == 1
    assert "NonXMLContentType" in parsed.warnings[0]


def test_utf8_without_declaration_or_content_type_is_read_as_utf8() -> None:
    # With no Content-Type feedparser would default to ISO-8859-1 and garble this.
    parsed = parse(rss("<item><title>Autorité</title></item>", prolog=""))

    assert parsed.entries[0].title == "Autorité"
    assert parsed.warnings == ()


def test_malformed_feed_with_entries_is_a_warning() -> None:
    body = rss("<item><title>Fish &amp; chips</title><guid>a</guid></item>")
    body = body.replace(b"&amp;", b"&")  # a bare ampersand: not well-formed XML

    parsed = parse(body)

    assert [entry.title for entry in parsed.entries] == ["Fish & chips"]
    assert len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith("feed: malformed, parsed leniently: SAXParseException")


def test_truncated_feed_keeps_the_entries_it_has() -> None:
    body = rss("<item><title>one</title></item><item><title>two</title><link>https://x.org/2")
    body = body[: body.index(b"</channel>")]

    parsed = parse(body)

    assert [entry.title for entry in parsed.entries] == ["one", "two"]
    assert parsed.warnings


def test_malformed_feed_without_entries_is_an_error() -> None:
    with pytest.raises(ParseError, match=r"^not a feed: SAXParseException"):
        parse(b'<rss version="2.0"><channel><title>T</title>')


def test_feedparser_crash_becomes_a_parse_error() -> None:
    # feedparser's loose parser raises UnicodeEncodeError on a reference to a lone surrogate. In
    # ASCII-compatible bodies parse_feed replaces such references first; in UTF-16 it cannot.
    body = rss("<item><title>a &#xD800; b</title></item>", prolog='<?xml version="1.0" encoding="utf-16"?>')
    with pytest.raises(ParseError, match="feedparser failed") as caught:
        parse(body.decode().encode("utf-16"))

    assert isinstance(caught.value.__cause__, UnicodeError)


def test_rss_fields() -> None:
    body = rss(
        "<item><title>A &amp;amp; B</title><link>/news/1</link>"
        "<description>&lt;p&gt;Hi&lt;/p&gt;</description>"
        '<content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        "&lt;p&gt;Full&lt;/p&gt;</content:encoded>"
        "<pubDate>Tue, 14 May 2024 16:05:12 -0400</pubDate>"
        "<author>press@example.org (Press Office)</author><category>Mergers</category>"
        '<guid isPermaLink="false">item-1</guid></item>'
    )

    (entry,) = parse(body).entries

    assert entry.guid == "item-1"
    assert entry.title == "A &amp; B"  # as served: normalise makes it text
    assert entry.link == "https://www.example.org/news/1"  # resolved against the final URL
    assert entry.summary == "<p>Hi</p>"
    assert entry.content == ("<p>Full</p>",)
    assert entry.published_at == datetime(2024, 5, 14, 20, 5, 12, tzinfo=UTC)
    assert entry.updated_at is None
    assert entry.authors == ("Press Office",)
    assert entry.tags == ("Mergers",)


def test_permalink_guid_gives_the_link() -> None:
    (entry,) = parse(rss("<item><title>t</title><guid>https://www.ftc.gov/a</guid></item>")).entries

    assert entry.guid == "https://www.ftc.gov/a"
    assert entry.link == "https://www.ftc.gov/a"


def test_atom_fields() -> None:
    body = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:feed</id>
<updated>2024-05-01T10:00:00+01:00</updated>
<entry>
  <id>tag:example.org,2024:1</id>
  <title type="html">A &lt;b&gt;bold&lt;/b&gt; move</title>
  <link rel="alternate" type="application/pdf" href="/doc.pdf"/>
  <link rel="alternate" type="text/html" href="/page"/>
  <link rel="related" href="/other"/>
  <updated>2024-05-01T10:00:00+01:00</updated>
  <content type="html">&lt;p&gt;Body&lt;/p&gt;</content>
  <category term="mergers"/><category label="Phase 1"/>
  <author><name>Case team</name></author>
</entry></feed>"""

    (entry,) = parse(body).entries

    assert entry.guid == "tag:example.org,2024:1"
    assert entry.title == "A <b>bold</b> move"
    assert entry.link == "https://www.example.org/page"  # the HTML alternate, not the PDF
    assert entry.content == ("<p>Body</p>",)
    assert entry.summary == "<p>Body</p>"  # feedparser copies content into a missing summary
    # gov.uk style: only <updated>. No published date is invented (and no DeprecationWarning
    # from feedparser's updated -> published fallback, which pytest would turn into an error).
    assert entry.published_at is None
    assert entry.updated_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert entry.tags == ("mergers", "Phase 1")
    assert entry.authors == ("Case team",)


def test_unusable_date_keeps_the_entry_undated() -> None:
    # A CMS writing "0000-00-00 00:00:00": feedparser turns it into year -1.
    body = rss("<item><title>t</title><guid>g</guid><pubDate>0000-00-00 00:00:00</pubDate></item>")

    parsed = parse(body)

    (entry,) = parsed.entries
    assert entry.published_at is None
    assert parsed.warnings == ("entry 0: ignored unusable published date '0000-00-00 00:00:00'",)


def test_broken_entry_is_skipped_with_a_warning() -> None:
    entries = [
        feedparser.FeedParserDict(id="bad", title=["not", "text"]),
        feedparser.FeedParserDict(id="good", title="fine"),
    ]

    converted, warnings = _convert_entries(entries, feed_id="f", url=URL)

    assert [entry.guid for entry in converted] == ["good"]
    assert warnings == ["entry 0: skipped: TypeError: title is list, not text"]


def test_feed_fails_when_every_entry_is_broken() -> None:
    entries = [feedparser.FeedParserDict(id="bad", published_parsed="yesterday")]

    with pytest.raises(ParseError, match="none of its 1 entries could be read"):
        _convert_entries(entries, feed_id="f", url=URL)


def test_references_to_impossible_code_points_do_not_lose_the_feed() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>a &#xD800; b &#55296; c &#x110000;</title><guid>1</guid></item>"
        b"<item><title>fine &#xE9;</title><guid>2</guid></item></channel></rss>"
    )
    parsed = parse_feed(body, feed_id="f", url="https://example.org/feed")
    assert [e.title for e in parsed.entries] == ["a \ufffd b \ufffd c \ufffd", "fine é"]


def test_an_entry_with_a_flood_of_categories_keeps_the_first_ones() -> None:
    categories = "".join(f"<category>c{n}</category>" for n in range(MAX_TAGS_PER_ENTRY + 50))
    body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><guid>1</guid>{categories}</item></channel></rss>'
    (entry,) = parse_feed(body.encode(), feed_id="f", url="https://example.org/feed").entries
    assert entry.tags == tuple(f"c{n}" for n in range(MAX_TAGS_PER_ENTRY))


def test_file_links_count_only_in_local_feeds() -> None:
    body = rss("<item><title>t</title><link>file://localhost/etc/passwd</link><guid>1</guid></item>")
    assert parse(body).entries[0].link is None  # served over HTTP: never read as a page
    local = parse_feed(body, feed_id="f", url="file:///srv/feeds/local.xml")
    assert local.entries[0].link == "file://localhost/etc/passwd"
