"""``watcher feeds`` and its subcommands: see the feeds' state; add, remove, pause, resume, import
and export feeds without editing the config file.

Feeds added here live in the database beside the config's ``[[feed]]`` blocks, and both are
polled. The config file wins on an id clash: adding a config id is refused, and a config that
later gains the id of a stored feed replaces it. An added URL is fetched and parsed once, through
the daemon's own fetcher and parser, before anything is saved.
"""

from __future__ import annotations

import asyncio
import re
import sys
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import tomli_w
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from watcher.app import make_fetcher, merge_stored_feeds, utcnow
from watcher.cli.common import Ctx, out, print_json, when
from watcher.config import Config, FeedConfig
from watcher.duration import format_duration, parse_duration
from watcher.errors import ConfigError, FeedError
from watcher.feeds.parse import parse_feed
from watcher.model import ParsedFeed
from watcher.opml import Outline, read_opml, write_opml
from watcher.store.feed_admin import CLI, REMOVED, AddResult, FeedFlags, StoredFeed
from watcher.store.store import FeedSpec, Store

# Derived ids leave room for a "-2" suffix within the 64 characters of a feed id.
_ID_BASE_LENGTH = 56
ID_RULE = 'at most 64 lower-case letters, digits, ".", "_" and "-", starting with a letter or digit'
RELOAD_HINT = "a running daemon picks this up when it reloads (SIGHUP, `systemctl reload watcher`)"


class Refused(click.ClickException):
    """Bad input: one line, ``error: ...``, exit 2 (the CLI's code for bad input)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def feeds(ctx: click.Context, as_json: bool) -> None:
    """Show each feed's state (last check, next check, errors, items stored, paused); manage feeds.

    \b
    Examples:
      watcher feeds
      watcher feeds add https://www.gov.uk/cma-cases.atom --tag regulator --interval 30m
      watcher feeds pause cma-cases
      watcher feeds import subscriptions.opml
      watcher feeds export --opml > feeds.opml
    """
    if ctx.invoked_subcommand is None:
        _show(ctx.obj, as_json)


def _show(obj: Ctx, as_json: bool) -> None:
    loaded = obj.load()
    store = Store.open(loaded.config.database.url)
    try:
        statuses = store.feed_statuses()
        flags = store.feed_flags()
    finally:
        store.close()
    in_config = {f.id: f for f in loaded.config.feeds}
    configured = {i for i, f in in_config.items() if f.enabled}
    states = {s.id: _state(s.id, in_config, flags.get(s.id)) for s in statuses}
    if as_json:
        print_json(
            [
                asdict(s)
                | {
                    "configured": s.id in configured,
                    "source": _source(s.id, in_config, flags.get(s.id)),
                    "paused": states[s.id] == "paused",
                    "state": states[s.id],
                }
                for s in statuses
            ]
        )
        return
    table = Table(title="Feeds", title_justify="left")
    columns = ("feed", "state", "items", "waiting for page", "last check", "last success", "next check", "errors")
    for col in (*columns, "last error"):
        table.add_column(col)
    for s in statuses:
        state = states[s.id]
        style = {"paused": "yellow", "removed": "dim", "not in config": "dim", "disabled": "dim"}.get(state)
        table.add_row(
            s.id,
            f"[{style}]{state}[/]" if style else state,
            str(s.items),
            str(s.pages_waiting),
            when(s.last_checked_at),
            when(s.last_success_at),
            when(s.next_check_at) if state in ("config", "cli") else "-",
            str(s.error_count),
            escape((s.last_error or "")[:80]),
        )
    out.print(table)


def _source(feed_id: str, in_config: Collection[str], flags: FeedFlags | None) -> str:
    """Where the feed is defined now: the config file wins over a stored definition."""
    return "config" if feed_id in in_config or flags is None else flags.source


def _state(feed_id: str, in_config: dict[str, FeedConfig], flags: FeedFlags | None) -> str:
    """config / cli (polled, and defined there), paused, disabled, removed, not in config."""
    if flags is not None and flags.paused and (feed_id in in_config or flags.source == CLI):
        return "paused"
    if feed_id in in_config:
        return "config" if in_config[feed_id].enabled else "disabled"
    source = flags.source if flags is not None else "config"
    return {CLI: "cli", REMOVED: "removed"}.get(source, "not in config")


@feeds.command("add")
@click.argument("url")
@click.option("--id", "feed_id", metavar="ID", help="The feed's id (default: from its title, else its host).")
@click.option("--interval", metavar="DURATION", help="How often to poll it: 30m, 1h... (default: [poll]).")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag for routes and rules (repeatable).")
@click.option("--full-text", is_flag=True, help="Read each item's linked page before matching.")
@click.pass_obj
def feeds_add(
    obj: Ctx, url: str, feed_id: str | None, interval: str | None, tags: tuple[str, ...], full_text: bool
) -> None:
    """Fetch URL once, check that it is a feed, and save it; it is polled from the next cycle.

    Refused (exit 2) when URL does not answer with an RSS or Atom feed, or when its id or URL is
    already watched. A config file id is refused too: the config file wins on a clash.

    \b
    Example:
      watcher feeds add https://www.ftc.gov/feeds/press-release.xml --id ftc-press --tag regulator
    """
    seconds = _interval(interval)
    url = _feed_config(feed_id or "placeholder", url).url
    loaded = obj.load()
    config = loaded.config
    store = Store.open(config.database.url)
    try:
        merged = merge_stored_feeds(config, store)
        _refuse_watched(merged, config, feed_id, url)
        parsed = asyncio.run(_probe(config, feed_id or "new-feed", url))
        taken = store.feed_ids() | {f.id for f in config.feeds}
        chosen = feed_id or derive_id(parsed.title or "", url, taken)
        feed = StoredFeed(chosen, url, parsed.title or "", seconds, _tags(tags), full_text)
        result = store.add_feeds(
            [feed], utcnow(), config_ids=[f.id for f in config.feeds], config_urls=[f.url for f in config.feeds]
        )
    finally:
        store.close()
    if not result.added:
        what, why = result.skipped[0]
        raise Refused(f"not added: {what}: {why}")
    count = len(parsed.entries)
    out.print(f"added feed {chosen} ({escape(parsed.title or url)}, {count} entries now); {RELOAD_HINT}")


def _interval(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        seconds = int(parse_duration(value).total_seconds())
    except ValueError as exc:
        raise Refused(f"--interval: {exc}") from None
    if seconds < 1:
        raise Refused(f'--interval: "{value}" is not a positive duration')
    return seconds


def _feed_config(feed_id: str, url: str) -> FeedConfig:
    """Validate an id and URL as a config ``[[feed]]`` block would be validated."""
    try:
        return FeedConfig(id=feed_id, url=url)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["loc"] and error["loc"][0] == "id":
            raise Refused(f'--id: "{feed_id}" is not a feed id ({ID_RULE})') from None
        raise Refused(f"URL: {_message(exc)}") from None


def _message(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")


def _tags(tags: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))


def _refuse_watched(merged: Config, config: Config, feed_id: str | None, url: str) -> None:
    """Refuse before fetching: an id or URL that is already watched."""
    if feed_id is not None and config.feed(feed_id) is not None:
        raise Refused(f'--id: {config.path} defines feed "{feed_id}" (the config file wins); choose another id')
    for f in merged.feeds:
        if feed_id is not None and f.id == feed_id:
            raise Refused(f'--id: feed "{feed_id}" exists already ({f.url})')
        if f.url == url:
            raise Refused(f"not added: {url} is already watched as feed {f.id}")


async def _probe(config: Config, feed_id: str, url: str) -> ParsedFeed:
    """Fetch and parse once, as a poll would; any failure refuses the add."""
    fetcher = make_fetcher(config)
    try:
        result = await fetcher.fetch(feed_id, url)
        return await asyncio.to_thread(
            parse_feed, result.body, feed_id=feed_id, url=result.final_url, headers=result.headers
        )
    except FeedError as exc:
        raise Refused(f"not added: {url}: {exc}") from None
    finally:
        await fetcher.aclose()


def derive_id(title: str, url: str, taken: Collection[str]) -> str:
    """A slug from the feed's title, else from its host and path, unique among ``taken``."""
    base = _slug(title)
    if not base:
        parts = urlsplit(url)
        host = (parts.hostname or "").removeprefix("www.")
        base = _slug(f"{host} {parts.path}") or "feed"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _slug(text: str) -> str:
    # Accents fold to their letters ("Autorité" -> "autorite"); other scripts leave nothing,
    # and the caller falls back to the URL.
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:_ID_BASE_LENGTH].rstrip("-")


@feeds.command("remove")
@click.argument("feed_id", metavar="ID")
@click.pass_obj
def feeds_remove(obj: Ctx, feed_id: str) -> None:
    """Stop watching a feed added with `feeds add` or `import`. Its stored items stay, so nothing
    it carried alerts twice if it comes back; a config feed is removed from the config file.

    \b
    Example:
      watcher feeds remove ftc-press
    """
    loaded = obj.load()
    if loaded.config.feed(feed_id) is not None:
        raise Refused(f'feed "{feed_id}" is defined in {loaded.config.path}: delete its [[feed]] block there')
    store = Store.open(loaded.config.database.url)
    try:
        removed = store.remove_cli_feed(feed_id)
    finally:
        store.close()
    if not removed:
        raise Refused(f'no feed "{feed_id}" was added with `watcher feeds add` or `import`')
    out.print(f"removed feed {feed_id}; its items stay stored; {RELOAD_HINT}")


@feeds.command("pause")
@click.argument("feed_id", metavar="ID")
@click.pass_obj
def feeds_pause(obj: Ctx, feed_id: str) -> None:
    """Stop polling a feed (from the config or the CLI) until it is resumed.

    \b
    Example:
      watcher feeds pause cma-cases
    """
    _set_paused(obj, feed_id, True)


@feeds.command("resume")
@click.argument("feed_id", metavar="ID")
@click.pass_obj
def feeds_resume(obj: Ctx, feed_id: str) -> None:
    """Poll a paused feed again, from the next cycle.

    \b
    Example:
      watcher feeds resume cma-cases
    """
    _set_paused(obj, feed_id, False)


def _set_paused(obj: Ctx, feed_id: str, paused: bool) -> None:
    loaded = obj.load()
    config = loaded.config
    now = utcnow()
    store = Store.open(config.database.url)
    try:
        watched = {f.id: f for f in merge_stored_feeds(config, store).feeds}
        feed = watched.get(feed_id)
        if feed is None:
            raise Refused(f'no feed "{feed_id}" (see `watcher feeds`)')
        # A config feed has no row until its first poll; pausing needs one to hold the flag.
        store.sync_feeds([FeedSpec(feed.id, feed.url, feed.title)], now)
        changed = store.set_paused(feed_id, paused, now)
    finally:
        store.close()
    word = "paused" if paused else "resumed"
    if not changed:
        out.print(f"feed {feed_id} was already {'paused' if paused else 'active'}")
        return
    out.print(f"{word} feed {feed_id}; {RELOAD_HINT}")


@feeds.command("import")
@click.argument("path", metavar="FILE.opml", type=click.Path(path_type=Path))
@click.pass_obj
def feeds_import(obj: Ctx, path: Path) -> None:
    """Add every feed (outline with an xmlUrl) of an OPML file; report those skipped.

    Feeds whose id or URL is already watched are skipped. Folder names and categories become
    tags. The feeds are not fetched now: a broken one shows its error in `watcher feeds`.

    \b
    Example:
      watcher feeds import subscriptions.opml
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path) from None
    outlines = read_opml(data, path)
    loaded = obj.load()
    config = loaded.config
    store = Store.open(config.database.url)
    try:
        watched_urls = {f.url for f in merge_stored_feeds(config, store).feeds}
        taken = store.feed_ids() | {f.id for f in config.feeds}
        batch, skipped = _plan_import(outlines, taken, watched_urls)
        result = store.add_feeds(
            batch, utcnow(), config_ids=[f.id for f in config.feeds], config_urls=[f.url for f in config.feeds]
        )
    finally:
        store.close()
    _report_import(len(outlines), result, [*skipped, *result.skipped])


def _plan_import(
    outlines: Sequence[Outline], taken: set[str], watched_urls: set[str]
) -> tuple[list[StoredFeed], list[tuple[str, str]]]:
    batch: list[StoredFeed] = []
    skipped: list[tuple[str, str]] = []
    seen_urls: set[str] = set()
    for o in outlines:
        if o.url in seen_urls:
            skipped.append((o.url, "listed twice in the file"))
            continue
        seen_urls.add(o.url)
        if o.url in watched_urls:
            skipped.append((o.url, "already watched"))
            continue
        # An id the file names (our own exports do) is kept, or skipped if taken; else derived.
        if o.id is not None and o.id in taken:
            skipped.append((o.id, "id exists already"))
            continue
        feed_id = o.id or derive_id(o.title, o.url, taken)
        try:
            FeedConfig(id=feed_id, url=o.url)
        except ValidationError as exc:
            bad_id = exc.errors()[0]["loc"][:1] == ("id",)
            skipped.append((o.url, f'"{feed_id}" is not a feed id ({ID_RULE})' if bad_id else _message(exc)))
            continue
        taken.add(feed_id)
        batch.append(StoredFeed(feed_id, o.url, o.title, o.interval_seconds, o.tags, o.full_text, o.paused))
    return batch, skipped


def _report_import(total: int, result: AddResult, skipped: Sequence[tuple[str, str]]) -> None:
    out.print(f"imported {len(result.added)} of {total} feeds; skipped {len(skipped)}")
    for what, why in skipped:
        out.print(f"  skipped {escape(what)}: {escape(why)}")
    if result.added:
        out.print(RELOAD_HINT)


@feeds.command("export")
@click.option("--opml", "as_opml", is_flag=True, help="OPML 2.0 instead of TOML [[feed]] blocks.")
@click.option(
    "--source",
    type=click.Choice(["all", "config", "cli"]),
    default="all",
    show_default=True,
    help="Which feeds: all watched, the config file's, or those added from the command line.",
)
@click.pass_obj
def feeds_export(obj: Ctx, as_opml: bool, source: str) -> None:
    """Print the watched feeds as TOML [[feed]] blocks for a config file, or as OPML for a feed
    reader or another watcher. Paused feeds are included (``enabled = false`` in TOML).

    \b
    Examples:
      watcher feeds export --source cli >> config.toml
      watcher feeds export --opml > feeds.opml
    """
    loaded = obj.load()
    config = loaded.config
    store = Store.open(config.database.url)
    try:
        merged = merge_stored_feeds(config, store)
    finally:
        store.close()
    in_config = {f.id for f in config.feeds}
    chosen = [f for f in merged.feeds if source == "all" or (f.id in in_config) == (source == "config")]
    if as_opml:
        pairs = [(f.id, _outline(f)) for f in chosen]
        sys.stdout.buffer.write(write_opml(pairs, title="watcher feeds", created_at=utcnow()))
        sys.stdout.flush()
        return
    click.echo(f"# {len(chosen)} feeds exported by `watcher feeds export`")
    if chosen:
        click.echo(tomli_w.dumps({"feed": [_toml_block(f) for f in chosen]}), nl=False)


def _outline(f: FeedConfig) -> Outline:
    seconds = int(f.interval.total_seconds()) if f.interval else None
    return Outline(f.url, f.title, tuple(f.tags), f.id, seconds, f.full_text, not f.enabled)


def _toml_block(f: FeedConfig) -> dict[str, Any]:
    """Only what differs from the defaults, as a person would write the block."""
    block: dict[str, Any] = {"id": f.id, "url": f.url}
    if f.title:
        block["title"] = f.title
    if f.interval:
        block["interval"] = format_duration(f.interval)
    if f.tags:
        block["tags"] = list(f.tags)
    if f.full_text:
        block["full_text"] = True
    if f.identity != "auto":
        block["identity"] = f.identity
    if not f.enabled:
        block["enabled"] = False
    return block
