"""normalise: golden files for every saved feed, then the rules one by one. Pure: no clock, no I/O."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from watcher.feeds.normalise import (
    MAX_TITLE_CHARS,
    canonical_link,
    content_hash,
    html_to_text,
    normalise_entry,
    normalise_feed,
)
from watcher.feeds.parse import parse_feed
from watcher.model import Item, ParsedFeed, RawEntry

FEEDS_DIR = Path(__file__).parent.parent / "data" / "feeds"

# Saved feed -> (feed id, the final URL it is parsed as coming from).
SAVED_FEEDS = {
    "cma-cases.atom": ("cma-cases", "https://www.gov.uk/cma-cases.atom"),
    "cma-news.atom": (
        "cma-news",
        "https://www.gov.uk/search/news-and-communications.atom?organisations%5B%5D=competition-and-markets-authority",
    ),
    "ftc-press.rss": ("ftc-press", "https://www.ftc.gov/feeds/press-release.xml"),
    "doj-antitrust.rss": (
        "doj-antitrust",
        "https://www.justice.gov/news/rss?type%5B0%5D=press_release&field_component=376&search_api_language=en",
    ),
    "google-news.rss": (
        "google-news",
        "https://news.google.com/rss/search?q=%22invites+comment%22+CMA&hl=en-GB&gl=GB&ceid=GB:en",
    ),
    "no-guid.rss": ("no-guid", "https://www.nca.example/news/rss.xml"),
    "latin1.rss": ("autorite", "https://www.autoritedelaconcurrence.fr/fr/rss.xml"),
}


def item_json(item: Item) -> dict[str, Any]:
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in dataclasses.asdict(item).items()
    }


def item_key(raw: RawEntry) -> str:
    return normalise_entry(raw, "f").item_key


def entry(**fields: Any) -> RawEntry:
    values: dict[str, Any] = {"guid": None, "title": None, "link": None, "summary": None}
    return RawEntry(**(values | fields))


# --- golden files ---


def test_every_saved_feed_has_a_golden_file() -> None:
    feeds = {p.name for p in FEEDS_DIR.iterdir() if p.suffix in {".atom", ".rss", ".xml"}}
    goldens = {p.name.removesuffix(".expected.json") for p in FEEDS_DIR.glob("*.expected.json")}

    assert feeds == set(SAVED_FEEDS)
    assert goldens == {Path(name).stem for name in SAVED_FEEDS}


@pytest.mark.parametrize("name", sorted(SAVED_FEEDS))
def test_saved_feed_matches_golden(name: str, golden: Any) -> None:
    feed_id, url = SAVED_FEEDS[name]
    parsed = parse_feed((FEEDS_DIR / name).read_bytes(), feed_id=feed_id, url=url)

    items, warnings = normalise_feed(parsed, feed_id)

    assert warnings == []
    golden.check(FEEDS_DIR / f"{Path(name).stem}.expected.json", [item_json(i) for i in items])


# --- html_to_text ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("Plain title", "Plain title"),
        ("  spaced \t out  \n", "spaced out"),
        ("First paragraph.\n\n\nSecond   one.", "First paragraph.\nSecond one."),
        ("Fish &amp; chips &#8211; &eacute;t&eacute;", "Fish & chips – été"),
        ("AT&T and R&D", "AT&T and R&D"),
        ("<p>One</p><p>Two</p>", "One\nTwo"),
        ("<p>Line<br>break<br/>again</p>", "Line\nbreak\nagain"),
        ("a<script>var x = '<p>no</p>';</script>b<style>p { color: red }</style>c", "abc"),
        ("<SCRIPT type='text/javascript'>alert(1)</SCRIPT>Visible", "Visible"),
        (
            "<div><div><p>nested <span>inline <em>deep</em></span> text</p></div></div>",
            "nested inline deep text",
        ),
        ("<ul>\n  <li>first</li>\n  <li>second <b>item</b></li>\n</ul>", "first\nsecond item"),
        (
            "<table><tr><th>Case</th><th>Stage</th></tr><tr><td>A</td><td>Phase 1</td></tr></table>",
            "Case Stage\nA Phase 1",
        ),
        ("<p>Media&nbsp;Contact&nbsp;</p>", "Media Contact"),
        ("<p>wrapped\n   source\n   lines</p>", "wrapped source lines"),
        ("<!-- a comment --><p>kept</p>", "kept"),
        ("price <5% and x > y", "price <5% and x > y"),
        ("<p>unclosed <b>tags", "unclosed tags"),
        ("nul\x00 byte", "nul byte"),
    ],
)
def test_html_to_text(value: str, expected: str) -> None:
    assert html_to_text(value) == expected


def test_html_to_text_leaves_no_trailing_spaces() -> None:
    text = html_to_text("<p>one </p>\n<p> two\u00a0</p>  ")

    assert text == "one\ntwo"
    assert all(line == line.strip() for line in text.splitlines())


# --- canonical_link ---


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.gov.uk/cma-cases/x", "https://www.gov.uk/cma-cases/x"),
        ("HTTPS://WWW.GOV.UK/CMA-Cases/X", "https://www.gov.uk/CMA-Cases/X"),  # path case kept
        ("https://example.org:443/a", "https://example.org/a"),
        ("http://example.org:80/a", "http://example.org/a"),
        ("https://example.org:8443/a", "https://example.org:8443/a"),
        ("https://example.org/a#section-2", "https://example.org/a"),
        ("https://example.org", "https://example.org/"),
        (
            "https://example.org/a?utm_source=rss&id=7&UTM_Campaign=x&fbclid=abc&page=2&gclid=1",
            "https://example.org/a?id=7&page=2",
        ),
        ("https://example.org/a?mc_cid=1&mc_eid=2", "https://example.org/a"),
        ("https://example.org/a?b=2&a=1", "https://example.org/a?b=2&a=1"),  # order kept
        (
            "https://www.gov.uk/cma-cases.atom?case_type%5B%5D=mergers&case_state%5B%5D=open",
            "https://www.gov.uk/cma-cases.atom?case_type%5B%5D=mergers&case_state%5B%5D=open",
        ),
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
        ("  https://example.org/a  ", "https://example.org/a"),
        (None, None),
        ("", None),
        ("   ", None),
        ("/relative/path", None),
        ("www.example.org/no-scheme", None),
        ("mailto:press@example.org", None),
        ("https://example.org:port/", None),
        ("http://[::1/", None),
    ],
)
def test_canonical_link(url: str | None, expected: str | None) -> None:
    assert canonical_link(url) == expected


# --- item_key ---


def test_item_key_is_the_guid() -> None:
    # Google News: the link is an opaque redirect token, the guid is the stable key.
    raw = entry(guid="CBMiOpaque", link="https://news.google.com/rss/articles/CBMi?oc=5")

    assert item_key(raw) == "CBMiOpaque"


def test_item_key_falls_back_to_the_canonical_link() -> None:
    raw = entry(guid="  ", link="https://Example.org/news/1?utm_source=rss#top", title="t")

    assert item_key(raw) == "https://example.org/news/1"


def test_item_key_falls_back_to_a_hash_of_title_and_date() -> None:
    published = datetime(2024, 5, 17, 9, 15, tzinfo=UTC)
    raw = entry(title="Board minutes", published_at=published)
    digest = hashlib.sha256(f"Board minutes\n{published.isoformat()}".encode()).hexdigest()

    key = normalise_entry(raw, "f").item_key

    assert key == f"sha256:{digest}"
    # Stable across fetches and cosmetic whitespace; different for another date or title.
    assert item_key(entry(title=" Board  minutes ", published_at=published)) == key
    assert item_key(dataclasses.replace(raw, published_at=published + timedelta(days=1))) != key
    assert item_key(dataclasses.replace(raw, title="Board agenda")) != key
    # An edit (updated_at) does not make it a new item.
    assert item_key(dataclasses.replace(raw, updated_at=published + timedelta(hours=1))) == key


def test_item_key_of_a_description_only_item_uses_the_summary() -> None:
    item = normalise_entry(entry(summary="<p>Only a description.</p>"), "f")

    assert item.item_key.startswith("sha256:")
    assert item.title == ""


def test_entry_with_nothing_to_identify_it_is_skipped() -> None:
    parsed = ParsedFeed(title="T", link=None, entries=(entry(), entry(guid="ok")))

    with pytest.raises(ValueError, match="no guid, link, title or summary"):
        normalise_entry(entry(), "f")
    items, warnings = normalise_feed(parsed, "f")

    assert [item.item_key for item in items] == ["ok"]
    assert warnings == ["entry 0: skipped: no guid, link, title or summary to identify the entry by"]


def test_duplicate_keys_in_one_fetch_keep_the_first() -> None:
    parsed = ParsedFeed(
        title="T",
        link=None,
        entries=(
            entry(guid="same", title="first"),
            entry(guid="other", title="middle"),
            entry(guid="same", title="second"),
            entry(link="https://example.org/a?utm_medium=email", title="by link"),
            entry(link="https://EXAMPLE.org/a#frag", title="same link"),
        ),
    )

    items, warnings = normalise_feed(parsed, "f")

    assert [item.title for item in items] == ["first", "middle", "by link"]
    assert warnings == [
        "entry 2: skipped: duplicate item key 'same'",
        "entry 4: skipped: duplicate item key 'https://example.org/a'",
    ]


# --- fields ---


def test_title_is_plain_collapsed_text() -> None:
    raw = entry(guid="g", title="A <b>bold</b>\n   move &amp; more<br>after")

    assert normalise_entry(raw, "f").title == "A bold move & more after"
    assert normalise_entry(entry(guid="g"), "f").title == ""


def test_content_equal_to_summary_is_dropped() -> None:
    # feedparser copies an Atom <content> into the missing summary.
    raw = entry(guid="g", summary="<p>Body</p>", content=("<p>Body</p>",))

    item = normalise_entry(raw, "f")

    assert item.summary == "Body"
    assert item.content == ""


def test_content_values_are_joined_as_text() -> None:
    raw = entry(guid="g", summary="Teaser", content=("<p>Part one</p>", "", "<p>Part two</p>"))

    item = normalise_entry(raw, "f")

    assert item.summary == "Teaser"
    assert item.content == "Part one\nPart two"


def test_missing_dates_stay_missing() -> None:
    item = normalise_entry(entry(guid="g", title="undated"), "f")

    assert item.published_at is None
    assert item.updated_at is None


def test_published_falls_back_to_updated() -> None:
    # gov.uk Atom entries have only <updated>.
    updated = datetime(2024, 5, 20, 14, 41, 2, tzinfo=UTC)

    item = normalise_entry(entry(guid="g", updated_at=updated), "f")

    assert item.published_at == updated
    assert item.updated_at == updated


def test_dates_become_utc() -> None:
    eastern = timezone(timedelta(hours=-4))
    raw = entry(
        guid="g",
        published_at=datetime(2024, 5, 14, 16, 5, 12, tzinfo=eastern),
        updated_at=datetime(2024, 5, 15, 9, 0),  # naive: taken as UTC, not local time
    )

    item = normalise_entry(raw, "f")

    assert item.published_at == datetime(2024, 5, 14, 20, 5, 12, tzinfo=UTC)
    assert item.published_at.tzinfo is UTC
    assert item.updated_at == datetime(2024, 5, 15, 9, 0, tzinfo=UTC)


def test_authors_and_tags_are_stripped_and_unique() -> None:
    raw = entry(guid="g", authors=(" Ann ", "Ann", "", "Bob"), tags=("Mergers", " ", "AI", "Mergers "))

    item = normalise_entry(raw, "f")

    assert item.authors == ("Ann", "Bob")
    assert item.tags == ("Mergers", "AI")


def test_link_is_canonical() -> None:
    raw = entry(guid="g", link="https://WWW.NCA.example:443/news?utm_source=x&id=1#main")

    assert normalise_entry(raw, "f").link == "https://www.nca.example/news?id=1"


# --- content_hash ---


def test_content_hash_ignores_cosmetic_whitespace() -> None:
    one = normalise_entry(entry(guid="g", title="T", summary="<p>Some  text</p>\n<p>more</p>"), "f")
    two = normalise_entry(entry(guid="g", title=" T ", summary="<p>Some text</p><p>more</p>  "), "f")

    assert one.content_hash == two.content_hash
    assert one.content_hash == content_hash("T", "Some text\nmore", "")
    assert len(one.content_hash) == 64


def test_content_hash_changes_with_the_words() -> None:
    assert content_hash("T", "phase 1", "") != content_hash("T", "phase 2", "")
    # Fields are separated: text moving from title to summary is a change.
    assert content_hash("ab", "", "") != content_hash("a", "b", "")


def test_links_are_web_addresses_spelt_safely() -> None:
    assert canonical_link("javascript://example.org/%0aalert(1)") is None  # it has a host, still no page
    assert canonical_link("ftp://example.org/x") is None and canonical_link("data:text/html,x") is None
    assert canonical_link("file://localhost/srv/demo/page.html") == "file://localhost/srv/demo/page.html"
    assert canonical_link("https://example.org/a b\u202ec") == "https://example.org/a%20b%E2%80%AEc"
    assert canonical_link("https://example.org/" + "a" * 3000) is None  # past any index and browser


def test_long_titles_are_cut_and_long_keys_hashed() -> None:
    entry = RawEntry(guid="g" * 5000, title="word " * 1000, link=None, summary=None)
    item = normalise_entry(entry, "f")
    assert len(item.title) <= MAX_TITLE_CHARS + 1 and item.title.endswith("word…")
    assert item.item_key == "sha256:" + hashlib.sha256(b"g" * 5000).hexdigest()
    assert normalise_entry(entry, "f").item_key == item.item_key  # still stable


def test_controls_and_surrogates_never_reach_the_item() -> None:
    entry = RawEntry(
        guid="a\x00b\n", title="t\x9b1\ud800", link=None, summary="s\x85t", authors=("x\x1by",), tags=("\x07",)
    )
    item = normalise_entry(entry, "f")
    assert (item.item_key, item.title, item.summary, item.authors, item.tags) == ("ab", "t1", "s\nt", ("xy",), ())
