"""Feed management from the command line: add (fetched and validated first), pause, resume,
remove, OPML import and export, on both databases, against the loopback feed server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest

from tests.e2e.helpers import RULES, Entry, atom, run_cli
from tests.fixtures.feed_server import FeedServer
from watcher.app import merge_stored_feeds
from watcher.cli.feeds import derive_id
from watcher.config import load_config
from watcher.opml import read_opml
from watcher.store.feed_admin import StoredFeed
from watcher.store.store import Store

NOW = datetime.now(UTC)
ENTRIES = [Entry("one", "CMA opens a market study", "The CMA has launched a study.", NOW - timedelta(hours=1))]


def _config(tmp: Path, db_url: str, feed_url: str) -> Path:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "cma.toml").write_text(RULES)
    path = tmp / "config.toml"
    path.write_text(
        f'rules_dir = "rules"\n\n[database]\nurl = "{db_url}"\n\n'
        f'[[feed]]\nid = "ftc-press"\ntitle = "FTC press releases"\nurl = "{feed_url}"\n'
    )
    return path


@pytest.fixture
def setup(tmp_path: Path, db_url: str, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    ftc = feed_server.feed("/ftc.atom", atom(ENTRIES).replace("<title>CMA news</title>", "<title>FTC</title>"))
    return _config(tmp_path, db_url, ftc)


def _feeds(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, dict[str, object]]:
    result = run_cli(capsys, "-c", str(config), "feeds", "--json")
    assert result.code == 0, result.err
    return {f["id"]: f for f in json.loads(result.out)}


def _polled(capsys: pytest.CaptureFixture[str], config: Path) -> set[str]:
    result = run_cli(capsys, "-c", str(config), "poll", "--once", "--json")
    assert result.code == 0, result.err
    return {f["feed_id"] for f in json.loads(result.out)["feeds"]}


def _cli_feeds(db_url: str) -> list[StoredFeed]:
    store = Store.open(db_url)
    try:
        return store.cli_feeds()
    finally:
        store.close()


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- add -----------------------------------------------------------------------------------------


def test_add_fetches_validates_and_saves_a_feed(
    setup: Path, db_url: str, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feed_server.feed("/cma.atom", atom(ENTRIES))
    args = ("--tag", "regulator", "--tag", "uk", "--interval", "1h", "--full-text")
    result = run_cli(capsys, "-c", str(setup), "feeds", "add", url, *args)
    assert result.code == 0, result.err
    assert "added feed cma-news (CMA news, 1 entries now)" in result.out
    assert len(feed_server.requests_for("/cma.atom")) == 1  # fetched once, through the real fetcher
    assert _cli_feeds(db_url) == [StoredFeed("cma-news", url, "CMA news", 3600, ("regulator", "uk"), True)]
    listed = _feeds(capsys, setup)["cma-news"]
    assert (listed["state"], listed["source"], listed["paused"]) == ("cli", "cli", False)

    # The pipeline polls it beside the config feed, and the item is stored under its id.
    assert _polled(capsys, setup) == {"ftc-press", "cma-news"}
    assert _feeds(capsys, setup)["cma-news"]["items"] == 1


@pytest.mark.parametrize(
    ("path", "status", "body", "reason"),
    [
        ("/page.html", 200, "<!doctype html><html><body><p>Not a feed</p></body></html>", "not a feed"),
        ("/gone.atom", 404, "not found", "HTTP 404 Not Found"),
    ],
)
def test_add_refuses_what_is_not_a_feed(
    setup: Path,
    db_url: str,
    feed_server: FeedServer,
    capsys: pytest.CaptureFixture[str],
    path: str,
    status: int,
    body: str,
    reason: str,
) -> None:
    url = feed_server.route(path, body=body, status=status, headers={"content-type": "text/html"})
    result = run_cli(capsys, "-c", str(setup), "feeds", "add", url, "--id", "broken")
    assert result.code == 2
    line = _one_error_line(result.err)
    assert line.startswith(f"error: not added: {url}: ") and reason in line, line
    assert _cli_feeds(db_url) == []
    assert "broken" not in _feeds(capsys, setup)


def test_add_refuses_watched_ids_and_urls_before_fetching(
    setup: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feed_server.feed("/cma.atom", atom(ENTRIES))
    config_id = run_cli(capsys, "-c", str(setup), "feeds", "add", url, "--id", "ftc-press")
    assert config_id.code == 2
    assert _one_error_line(config_id.err) == (
        f'error: --id: {setup} defines feed "ftc-press" (the config file wins); choose another id'
    )
    config_url = run_cli(capsys, "-c", str(setup), "feeds", "add", feed_server.url("/ftc.atom"))
    assert config_url.code == 2 and "is already watched as feed ftc-press" in _one_error_line(config_url.err)
    assert feed_server.requests_for("/cma.atom") == []

    assert run_cli(capsys, "-c", str(setup), "feeds", "add", url).code == 0
    again = run_cli(capsys, "-c", str(setup), "feeds", "add", url, "--id", "other")
    assert again.code == 2 and "already watched as feed cma-news" in _one_error_line(again.err)
    bad_id = run_cli(capsys, "-c", str(setup), "feeds", "add", feed_server.url("/x.atom"), "--id", "Bad Id")
    assert bad_id.code == 2 and _one_error_line(bad_id.err).startswith('error: --id: "Bad Id" is not a feed id')
    bad_url = run_cli(capsys, "-c", str(setup), "feeds", "add", "ftp://example.org/feed")
    assert _one_error_line(bad_url.err) == 'error: URL: "ftp://example.org/feed" is not an http(s):// or file:// URL'
    bad_interval = run_cli(capsys, "-c", str(setup), "feeds", "add", url, "--interval", "soon")
    assert bad_interval.code == 2 and _one_error_line(bad_interval.err).startswith("error: --interval: ")


def test_derived_ids() -> None:
    assert derive_id("Autorité de la concurrence — communiqués", "https://x.fr/rss", set()) == (
        "autorite-de-la-concurrence-communiques"
    )
    assert derive_id("公正取引委員会", "https://www.jftc.go.jp/en/rss.xml", set()) == "jftc-go-jp-en-rss-xml"
    assert derive_id("CMA news", "https://a/b", {"cma-news", "cma-news-2"}) == "cma-news-3"
    assert len(derive_id("word " * 40, "https://a/b", set())) <= 56


# -- pause, resume, remove -------------------------------------------------------------------


def test_pause_resume_and_remove(
    setup: Path, db_url: str, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feed_server.feed("/cma.atom", atom(ENTRIES))
    assert run_cli(capsys, "-c", str(setup), "feeds", "add", url, "--id", "cma").code == 0

    for feed_id in ("cma", "ftc-press"):  # a CLI feed and a config feed alike
        paused = run_cli(capsys, "-c", str(setup), "feeds", "pause", feed_id)
        assert paused.code == 0 and f"paused feed {feed_id}" in paused.out
    assert "was already paused" in run_cli(capsys, "-c", str(setup), "feeds", "pause", "cma").out
    listed = _feeds(capsys, setup)
    assert {i: (f["state"], f["paused"]) for i, f in listed.items()} == {
        "cma": ("paused", True),
        "ftc-press": ("paused", True),
    }
    table = run_cli(capsys, "-c", str(setup), "feeds").out
    assert "paused" in table
    fetched = len(feed_server.requests_for("/cma.atom"))
    assert _polled(capsys, setup) == set()
    assert len(feed_server.requests_for("/cma.atom")) == fetched  # a paused feed is not even fetched

    assert run_cli(capsys, "-c", str(setup), "feeds", "resume", "cma").code == 0
    assert _polled(capsys, setup) == {"cma"}
    assert run_cli(capsys, "-c", str(setup), "feeds", "resume", "ftc-press").code == 0
    assert _polled(capsys, setup) == {"cma", "ftc-press"}

    removed = run_cli(capsys, "-c", str(setup), "feeds", "remove", "cma")
    assert removed.code == 0 and "removed feed cma; its items stay stored" in removed.out
    assert _feeds(capsys, setup)["cma"]["state"] == "removed"
    assert _feeds(capsys, setup)["cma"]["items"] == 1  # kept as tombstones: nothing alerts twice
    assert _polled(capsys, setup) == {"ftc-press"}
    assert _cli_feeds(db_url) == []

    twice = run_cli(capsys, "-c", str(setup), "feeds", "remove", "cma")
    assert twice.code == 2
    assert _one_error_line(twice.err) == 'error: no feed "cma" was added with `watcher feeds add` or `import`'
    config_feed = run_cli(capsys, "-c", str(setup), "feeds", "remove", "ftc-press")
    assert config_feed.code == 2 and "delete its [[feed]] block there" in _one_error_line(config_feed.err)
    unknown = run_cli(capsys, "-c", str(setup), "feeds", "pause", "nope")
    assert unknown.code == 2 and _one_error_line(unknown.err) == 'error: no feed "nope" (see `watcher feeds`)'

    # Adding the id again takes the row over with its history: a fresh first poll, old keys kept.
    assert run_cli(capsys, "-c", str(setup), "feeds", "add", url, "--id", "cma").code == 0
    assert _feeds(capsys, setup)["cma"]["state"] == "cli"
    assert _cli_feeds(db_url)[0].id == "cma"


def test_the_config_file_wins_an_id_clash(db_url: str, tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, db_url, "https://www.ftc.gov/feeds/press-release.xml"))
    now = datetime.now(UTC)
    store = Store.open(db_url)
    try:
        # As if the config gained this id after the feed was added from the command line.
        store.add_feeds([StoredFeed("ftc-press", "https://example.org/old.xml", "old", tags=("x",))], now)
        store.add_feeds([StoredFeed("extra", "https://example.org/extra.xml", paused=True)], now)
        merged = merge_stored_feeds(config, store)
    finally:
        store.close()
    by_id = {f.id: f for f in merged.feeds}
    assert by_id["ftc-press"] == config.feeds[0]
    assert by_id["extra"].url == "https://example.org/extra.xml" and not by_id["extra"].enabled


# -- OPML --------------------------------------------------------------------------------------


def _opml(n: int) -> str:
    """A reader's export: feeds in folders, some with categories, titles needing escapes."""
    folders: dict[str, list[str]] = {}
    for i in range(n):
        title = f"Régulateur {i} & partners" if i % 3 else f"Feed <{i}>"
        category = ' category="/regulator,/uk/cma"' if i % 5 == 0 else ""
        outline = f'<outline type="rss" text={quoteattr(title)} xmlUrl="http://127.0.0.1:9/feeds/{i}.xml"{category}/>'
        folders.setdefault(f"Folder {i % 4}", []).append(outline)
    body = "".join(f'<outline text="{name}">{"".join(items)}</outline>' for name, items in folders.items())
    return f'<?xml version="1.0"?><opml version="1.0"><head><title>Reader</title></head><body>{body}</body></opml>'


def _store_view(db_url: str) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {(f.id, f.url, f.title, f.tags) for f in _cli_feeds(db_url)}


def test_opml_import_and_export_round_trip_100_feeds(
    setup: Path, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = (
        '<outline text="dup" xmlUrl="http://127.0.0.1:9/feeds/7.xml"/>'
        f'<outline text="FTC again" xmlUrl={quoteattr(load_config(setup).feeds[0].url)}/>'
        '<outline text="mail" xmlUrl="mailto:someone@example.org"/>'
    )
    (tmp_path / "reader.opml").write_text(_opml(100).replace("</body>", extra + "</body>"), encoding="utf-8")
    result = run_cli(capsys, "-c", str(setup), "feeds", "import", "reader.opml")
    assert result.code == 0, result.err
    assert "imported 100 of 103 feeds; skipped 3" in result.out
    assert "skipped http://127.0.0.1:9/feeds/7.xml: listed twice in the file" in result.out
    assert f"skipped {load_config(setup).feeds[0].url}: already watched" in result.out
    assert 'skipped mailto:someone@example.org: "mailto:someone@example.org" is not an http(s)' in result.out
    imported = _store_view(db_url)
    assert len(imported) == 100
    by_url = {url: (feed_id, title, tags) for feed_id, url, title, tags in imported}
    assert by_url["http://127.0.0.1:9/feeds/1.xml"] == (
        "regulateur-1-partners",
        "Régulateur 1 & partners",
        ("Folder 1",),
    )
    assert by_url["http://127.0.0.1:9/feeds/5.xml"][2] == ("Folder 1", "regulator", "uk/cma")

    again = run_cli(capsys, "-c", str(setup), "feeds", "import", "reader.opml")
    assert again.code == 0 and "imported 0 of 103 feeds; skipped 103" in again.out

    exported = run_cli(capsys, "-c", str(setup), "feeds", "export", "--opml", "--source", "cli")
    assert exported.code == 0, exported.err
    (tmp_path / "export.opml").write_text(exported.out, encoding="utf-8")
    outlines = read_opml(exported.out.encode(), "export.opml")
    assert {(o.id, o.url, o.title, o.tags) for o in outlines} == imported

    # Into a fresh database: the same ids, URLs, titles and tags.
    other = tmp_path / "other"
    other.mkdir()
    fresh = _config(other, f"sqlite:///{other}/fresh.db", "https://www.ftc.gov/feeds/press-release.xml")
    assert run_cli(capsys, "-c", str(fresh), "feeds", "import", str(tmp_path / "export.opml")).code == 0
    assert _store_view(f"sqlite:///{other}/fresh.db") == imported

    # TOML blocks load as a config file with the same feeds.
    toml = run_cli(capsys, "-c", str(setup), "feeds", "export")
    assert toml.code == 0, toml.err
    (other / "exported.toml").write_text(toml.out, encoding="utf-8")
    feeds = load_config(other / "exported.toml").feeds
    assert len(feeds) == 101  # the config feed too
    assert {(f.id, f.url, f.title, tuple(f.tags)) for f in feeds if f.id != "ftc-press"} == imported


def test_import_of_a_broken_file_is_one_line(setup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.opml").write_text('<?xml version="1.0"?>\n<opml>\n<body>\n<outline text="x">\n</opml>\n')
    result = run_cli(capsys, "-c", str(setup), "feeds", "import", "broken.opml")
    assert result.code == 2
    assert _one_error_line(result.err) == "broken.opml:5: not OPML: malformed XML: mismatched tag"

    (tmp_path / "feed.opml").write_text(atom(ENTRIES))
    result = run_cli(capsys, "-c", str(setup), "feeds", "import", "feed.opml")
    assert result.code == 2
    assert _one_error_line(result.err) == (
        "feed.opml: not OPML: the root element is <{http://www.w3.org/2005/Atom}feed>, not <opml>"
    )
    missing = run_cli(capsys, "-c", str(setup), "feeds", "import", "missing.opml")
    assert missing.code == 2 and _one_error_line(missing.err) == "missing.opml: cannot read: No such file or directory"
