"""The ``watcher`` command. The only module that prints or exits.

Exit codes: 0 done; 1 a check, a delivery or an expectation failed; 2 bad input (config, rule
file, arguments). Errors are one line (``path:line: message`` or ``error: message``) on stderr;
``--debug`` adds the traceback.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from dataclasses import asdict
from datetime import timedelta
from typing import NoReturn, TextIO

import click
from rich.markup import escape
from rich.table import Table

from watcher import __version__
from watcher.app import Loaded, load, load_stored_feeds, make_executor, make_fetcher, retry_policy, utcnow
from watcher.cli.common import Ctx, out, print_json, when
from watcher.cli.db import db
from watcher.cli.demo import demo
from watcher.cli.feeds import feeds
from watcher.cli.rules import load_and_report, rules, save
from watcher.cli.silence import silence
from watcher.config import load_config
from watcher.duration import format_duration, parse_duration
from watcher.errors import ConfigError, WatcherError
from watcher.logs import configure_logging
from watcher.model import DeliveryStatus
from watcher.notify.deliver import deliver
from watcher.notify.outbox import DrainResult, Outbox
from watcher.notify.render import Renderer
from watcher.notify.route import destinations
from watcher.notify.samples import sample_alert
from watcher.notify.schedule import describe_pacing
from watcher.pipeline import Pipeline, PollOutcome
from watcher.store.silences import ItemTrail
from watcher.store.store import FeedSpec, Store

CONFIG_HELP = "Config file. Default: $WATCHER_CONFIG, else ./config.toml."


class _Watcher(click.Group):
    """The top-level group: ``-c/--config`` and ``--debug`` are accepted after the subcommand too
    (``watcher check --config X``), as people type them; they are moved in front before parsing.
    Nothing after a ``--`` is touched, and no subcommand has options of those names."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))


def hoist_global_options(args: list[str]) -> list[str]:
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--debug" or arg.startswith("--config="):
            front.append(arg)
        elif arg in ("--config", "-c") and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


@click.group(cls=_Watcher, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "-c", "config", metavar="PATH", help=CONFIG_HELP)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(__version__, prog_name="watcher")
@click.pass_context
def cli(ctx: click.Context, config: str | None, debug: bool) -> None:
    """Watch regulator and news feeds, match them against rules, and alert once per story.

    \b
    Examples:
      watcher -c config.example.toml check      validate config, rules and templates
      watcher -c config.example.toml poll --once poll every feed now, deliver, print a summary
      watcher -c config.example.toml run        run the daemon (Ctrl-C to stop)
    """
    configure_logging("debug" if debug else "info")
    ctx.obj = Ctx(config, debug)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print what would be sent instead of sending; record nothing.")
@click.pass_obj
def run(obj: Ctx, dry_run: bool) -> None:
    """Run the daemon: poll feeds on their intervals and deliver alerts until stopped.

    SIGTERM or Ctrl-C stops it cleanly; SIGHUP reloads config and rules (an invalid
    new config is logged and the running one kept).

    \b
    Example:
      watcher --config config.example.toml run
    """
    from watcher.daemon import Daemon

    loaded = obj.load()
    asyncio.run(Daemon(obj.config_path, loaded, dry_run=dry_run).run())


@cli.command()
@click.option("--once", is_flag=True, default=True, help="One cycle, then exit (the default; kept for scripts).")
@click.option("--feed", "feeds", multiple=True, metavar="ID", help="Poll only this feed (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print what would be sent instead of sending; record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@click.pass_obj
def poll(obj: Ctx, once: bool, feeds: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Poll every enabled feed now, once, deliver the alerts, and print a summary.

    Conditional GET still applies: a feed that has not changed answers 304 and costs nothing.

    \b
    Examples:
      watcher poll --once
      watcher poll --once --feed cma-cases --dry-run
    """
    loaded = load_stored_feeds(obj.load())
    config = loaded.config
    unknown = [f for f in feeds if config.feed(f) is None]
    if unknown:
        raise click.BadParameter(f"unknown feed {unknown[0]!r}", param_hint="--feed")
    # With --json, stdout carries the summary only: console alerts go to stderr instead.
    console = sys.stderr if as_json else None
    outcomes, drained = asyncio.run(_poll_once(loaded, list(feeds) or None, dry_run, console))
    if as_json:
        print_json({"feeds": [asdict(o) for o in outcomes], "deliveries": asdict(drained)})
    else:
        table = Table(title="Poll summary", title_justify="left")
        # "waiting": items of the feed whose page is still to be read before they are matched.
        numbers = ("items", "new", "matches", "alerts", "waiting")
        for col in ("feed", "status", *numbers, "error"):
            table.add_column(col, justify="right" if col in numbers else "left")
        for o in outcomes:
            style = {"failed": "red", "not_modified": "dim"}.get(o.status, "")
            table.add_row(
                o.feed_id,
                f"[{style}]{o.status}[/]" if style else o.status,
                str(o.items),
                str(o.new_items),
                str(o.matches),
                str(o.deliveries),
                str(o.pages_waiting),
                escape(o.error or ""),
            )
        out.print(table)
        held = f", {drained.held} held (quiet hours, rate limit or a paused channel)" if drained.held else ""
        out.print(f"deliveries: {drained.sent} sent, {drained.retried} to retry, {drained.failed} failed{held}")
    if drained.failed or drained.retried:
        sys.exit(1)


async def _poll_once(
    loaded: Loaded, only: list[str] | None, dry_run: bool, console: TextIO | None = None
) -> tuple[list[PollOutcome], DrainResult]:
    config = loaded.config
    store = await asyncio.to_thread(Store.open, config.database.url, dry_run=dry_run)
    fetcher = make_fetcher(config)
    executor = make_executor(config)
    try:
        now = utcnow()
        await asyncio.to_thread(
            store.sync_feeds, [FeedSpec(f.id, f.url, f.title) for f in config.feeds if f.enabled], now
        )
        pipeline = Pipeline(config, loaded.rules, store, fetcher, clock=utcnow, executor=executor)
        outcomes = await pipeline.poll_due(force=True, only=only)
        outbox = Outbox(
            store,
            config.resolved_channels,
            console=console,
            policy=retry_policy(config),
            clock=utcnow,
            redactor=config.redactor,
            dry_run=dry_run,
            timeout_seconds=config.delivery.timeout.total_seconds(),
            renderer=loaded.renderer,
        )
        drained = await outbox.drain()
        return outcomes, drained
    finally:
        await fetcher.aclose()
        if executor is not None:
            executor.shutdown(wait=True)
        await asyncio.to_thread(store.close)


@cli.command()
@click.pass_obj
def check(obj: Ctx) -> None:
    """Validate the config, every rule file and every template; print OK or FAILED per file.

    Exits 2 at the first invalid file, with one line naming its file and line.

    \b
    Example:
      watcher --config config.example.toml check
    """
    config = load_config(obj.config_path)
    out.print(f"OK      {obj.config_path} ({len(config.feeds)} feeds, {len(config.resolved_channels)} channels)")
    load_and_report([config.rules_dir])
    try:
        # Cross-file checks (unique ids, known channels and feeds), then every template rendered.
        loaded = load(obj.config_path)
    except ConfigError as exc:
        out.print(f"[red]FAILED[/]  {escape(str(exc.path or obj.config_path))}")
        raise
    out.print(f"OK      {len(loaded.rules)} rules in all")
    for line in loaded.templates:
        out.print(f"OK      {escape(line)}")


@cli.group(invoke_without_command=True)
@click.option("--failed", is_flag=True, help="Only deliveries that gave up (dead letters).")
@click.option(
    "--digest", "digest_id", type=int, metavar="ID", help="Only the alerts of one digest (its message names it)."
)
@click.option("--explain", metavar="ITEM", help="The decision trail of an item: its id, key, link or title words.")
@click.option("--limit", default=50, show_default=True, help="How many to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def alerts(
    ctx: click.Context, failed: bool, digest_id: int | None, explain: str | None, limit: int, as_json: bool
) -> None:
    """Recent alerts and their delivery state, newest first; or why an item did or did not alert.

    \b
    Examples:
      watcher alerts
      watcher alerts --failed
      watcher alerts --digest 12
      watcher alerts --explain https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai
      watcher alerts retry 12 13
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Ctx = ctx.obj
    loaded = obj.load()
    store = Store.open(loaded.config.database.url)
    try:
        if explain is not None:
            _explain(store.explain(explain), explain, as_json, loaded.config.poll.backlog_max_age)
            return
        rows = store.alert_statuses(
            limit=limit if digest_id is None else 10_000,
            status=DeliveryStatus.FAILED if failed else None,
            digest_id=digest_id,
        )
    finally:
        store.close()
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    table = Table(title="Alerts", title_justify="left")
    for col in ("id", "rule", "sev", "item", "channel", "status", "tries", "created", "last error"):
        table.add_column(col)
    digests = {name for name, c in loaded.config.resolved_channels.items() if c.mode == "digest"}
    for r in rows:
        color = {"sent": "green", "failed": "red", "pending": "yellow"}.get(r.status, "")
        status = r.status
        if r.digest_id is not None:
            status += f" (digest #{r.digest_id})"
        elif r.status == "pending" and r.channel in digests:
            status += " (next digest)"
        table.add_row(
            str(r.delivery_id),
            r.rule_id,
            r.severity,
            escape(r.item_title[:60]),
            r.channel,
            f"[{color}]{status}[/]",
            str(r.attempts),
            when(r.created_at),
            escape((r.last_error or "")[:60]),
        )
    out.print(table)


def _unmatched(t: ItemTrail, backlog: timedelta) -> str:
    """Why an item has no match: most often it never reached the rules at all."""
    if t.page and t.page.startswith("waiting"):
        return "not matched yet: it waits for its page"
    history = t.on_first_poll and (
        t.published_at is None or (t.first_seen_at is not None and t.published_at < t.first_seen_at - backlog)
    )
    if history:
        dated = "undated" if t.published_at is None else f"published {when(t.published_at)}"
        return (
            f"never reached the rules: stored as history by the feed's first poll ({dated}; a first poll "
            f"alerts only on items published within poll.backlog_max_age, {format_duration(backlog)})"
        )
    return "no rule matched it"


def _explain(trails: list[ItemTrail], needle: str, as_json: bool, backlog: timedelta) -> None:
    if as_json:
        print_json([asdict(t) for t in trails])
        return
    if not trails:
        raise click.BadParameter(f"no stored item matches {needle!r}", param_hint="--explain")
    for t in trails:
        out.print(f"[bold]{escape(t.title)}[/]  ({t.feed_id}, item {t.item_id}, revision {t.revision})")
        out.print(f"  key {escape(t.item_key)}  link {escape(t.link or '-')}")
        out.print(f"  first seen {when(t.first_seen_at)}, last changed {when(t.changed_at)}")
        if t.story_id is not None:
            out.print(f"  story {t.story_id}, reported by {len(t.story_sources)}: {', '.join(t.story_sources)}")
        if t.page:
            out.print(f"  page: {escape(t.page)}")
        if not t.matches:
            out.print(f"  {_unmatched(t, backlog)}")
        for m in t.matches:
            color = "green" if m.decision == "alerted" else "yellow"
            why = f": {escape(m.reason)}" if m.reason else ""
            out.print(f"  rev {m.revision} {m.rule_id} [{color}]{m.decision}[/]{why} ({when(m.matched_at)})")
            for reason in m.reasons:
                out.print(f"      {escape(reason)}")
            for delivery in m.deliveries:
                out.print(f"      -> {escape(delivery)}")


@alerts.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed delivery.")
@click.pass_obj
def alerts_retry(obj: Ctx, ids: tuple[int, ...], retry_all: bool) -> None:
    """Put failed deliveries back in the queue; the daemon (or the next poll) sends them.

    \b
    Example:
      watcher alerts retry 12 13
    """
    if not ids and not retry_all:
        raise click.UsageError("give delivery ids, or --all")
    loaded = obj.load()
    store = Store.open(loaded.config.database.url)
    try:
        count = store.retry_failed(None if retry_all else list(ids), utcnow())
    finally:
        store.close()
    out.print(f"{count} deliveries queued again")


@cli.command()
@click.option("--older-than", "older_than", required=True, metavar="DURATION", help="Age of items to purge: 180d...")
@click.pass_obj
def purge(obj: Ctx, older_than: str) -> None:
    """Drop the text of old items to save space; their keys stay, so they never alert again.

    \b
    Example:
      watcher purge --older-than 180d
    """
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    loaded = obj.load()
    store = Store.open(loaded.config.database.url)
    try:
        count = store.purge_text(utcnow() - age)
    finally:
        store.close()
    out.print(f"purged the text of {count} items; their keys are kept")


@cli.group()
def routes() -> None:
    """See where alerts go: rule channels, the [[route]] list, the default channel.

    \b
    Example:
      watcher routes test --rule cma-invitation-to-comment --feed cma-news
    """


@routes.command("test")
@click.option("--rule", "rule_id", required=True, metavar="ID", help="The rule whose matches to route.")
@click.option("--feed", "feed_id", metavar="ID", help="The feed the match comes from (its tags count).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def routes_test(obj: Ctx, rule_id: str, feed_id: str | None, as_json: bool) -> None:
    """Show the channels a match of RULE would be sent to, and why.

    \b
    Example:
      watcher routes test --rule ftc-6b-orders --feed ftc-press
    """
    loaded = obj.load()
    config = loaded.config
    rule = next((r for r in loaded.rules if r.id == rule_id), None)
    if rule is None:
        raise click.BadParameter(f"unknown rule {rule_id!r}", param_hint="--rule")
    feed = config.feed(feed_id) if feed_id else None
    if feed_id and feed is None:
        raise click.BadParameter(f"unknown feed {feed_id!r}", param_hint="--feed")
    tags = tuple(feed.tags) if feed else ()
    found = destinations(
        rule, tags, config.resolved_routes, config.delivery.default_channels, config.channel_min_severity
    )
    now = utcnow()
    channels = config.resolved_channels
    pacing = {d.channel: describe_pacing(channels[d.channel], now) for d in found if d.channel in channels}
    if as_json:
        print_json([{"channel": d.channel, "why": d.why, "sends": pacing.get(d.channel, "")} for d in found])
        return
    out.print(f"rule {rule.id} (severity {rule.severity.value}){f', feed {feed_id}' if feed_id else ''}:")
    for d in found:
        out.print(f"  -> {d.channel}  ({escape(d.why)}) · {pacing.get(d.channel, '')}")
    if not found:
        out.print("  -> nowhere: every channel it would reach wants a higher severity")


@cli.command("notify-test")
@click.argument("channel")
@click.pass_obj
def notify_test(obj: Ctx, channel: str) -> None:
    """Send a sample alert to CHANNEL and report success or the exact failure.

    \b
    Example:
      watcher notify-test legal-slack
    """
    loaded = obj.load()
    channels = loaded.config.resolved_channels
    if channel not in channels:
        raise click.BadParameter(f"unknown channel {channel!r} (known: {', '.join(sorted(channels))})")
    target = channels[channel]
    result = deliver(target, Renderer({channel: target}).render(sample_alert(channel, utcnow()), target))
    if result.ok:
        out.print(f"OK      sent a test alert to {channel}")
        return
    click.echo(f"error: {loaded.config.redactor(str(result.error))}", err=True)
    sys.exit(1)


cli.add_command(rules)
cli.add_command(feeds)
cli.add_command(db)
cli.add_command(silence)
cli.add_command(save)
cli.add_command(demo)


def _fail(message: str, code: int, debug: bool) -> NoReturn:
    if debug:
        traceback.print_exc()
    click.echo(message, err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI with our error handling."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="watcher", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 1, False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        context = getattr(exc, "context", "")
        _fail(f"{exc}\n{context}" if context else str(exc), 2, debug)
    except WatcherError as exc:
        _fail(f"error: {exc}", 1, debug)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
