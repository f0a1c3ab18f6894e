"""``watcher silence add | list | expire``: say "not now" without losing anything."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from watcher.app import utcnow
from watcher.cli.common import Ctx, out, print_json, when
from watcher.duration import parse_duration
from watcher.store.store import Store


@click.group()
def silence() -> None:
    """Silence a rule for a while: its matches are recorded as silenced, not sent.

    \b
    Examples:
      watcher silence add --rule cma-merger-phase-1 --match "Vodafone" --for 7d --comment "known case"
      watcher silence list
      watcher silence expire 3
    """


@silence.command("add")
@click.option("--rule", "rule_id", metavar="ID", help="The rule to silence (default: every rule).")
@click.option("--match", "match_text", metavar="TEXT", help="Only items whose text contains TEXT.")
@click.option("--for", "duration", required=True, metavar="DURATION", help="How long: 2h, 7d...")
@click.option("--comment", default="", help="Why, for whoever reads `watcher alerts --explain`.")
@click.pass_obj
def silence_add(obj: Ctx, rule_id: str | None, match_text: str | None, duration: str, comment: str) -> None:
    """Add a silence starting now.

    \b
    Example:
      watcher silence add --rule cma-invitation-to-comment --for 7d --comment "holiday"
    """
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    loaded = obj.load()
    if rule_id is not None and rule_id not in {r.id for r in loaded.rules}:
        raise click.BadParameter(f"unknown rule {rule_id!r}", param_hint="--rule")
    now = utcnow()
    store = Store.open(loaded.config.database.url)
    try:
        added = store.add_silence(rule_id, match_text, now, now + length, comment)
    finally:
        store.close()
    out.print(f"added {escape(added.describe())}")


@silence.command("list")
@click.option("--all", "include_expired", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def silence_list(obj: Ctx, include_expired: bool, as_json: bool) -> None:
    """List active silences (with --all, expired ones too).

    \b
    Example:
      watcher silence list --all
    """
    loaded = obj.load()
    now = utcnow()
    store = Store.open(loaded.config.database.url)
    try:
        rows = store.silences(now, include_expired=include_expired)
    finally:
        store.close()
    if as_json:
        print_json(
            [{**{k: getattr(r, k) for k in r.__slots__}, "active": r.starts_at <= now < r.ends_at} for r in rows]
        )
        return
    table = Table(title="Silences", title_justify="left")
    for col in ("id", "rule", "match", "from", "until", "state", "comment"):
        table.add_column(col)
    for r in rows:
        state = "active" if r.starts_at <= now < r.ends_at else "expired" if r.ends_at <= now else "pending"
        table.add_row(
            str(r.id),
            r.rule_id or "(all)",
            escape(r.match_text or ""),
            when(r.starts_at),
            when(r.ends_at),
            state,
            escape(r.comment),
        )
    out.print(table)


@silence.command("expire")
@click.argument("silence_id", type=int)
@click.pass_obj
def silence_expire(obj: Ctx, silence_id: int) -> None:
    """End a silence now.

    \b
    Example:
      watcher silence expire 3
    """
    loaded = obj.load()
    store = Store.open(loaded.config.database.url)
    try:
        ended = store.expire_silence(silence_id, utcnow())
    finally:
        store.close()
    if not ended:
        raise click.BadParameter(f"no active silence #{silence_id}", param_hint="SILENCE_ID")
    out.print(f"silence #{silence_id} expired")
