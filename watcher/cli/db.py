"""``watcher db upgrade | status``: the schema, for operators who migrate before they deploy."""

from __future__ import annotations

import click

from watcher.cli.common import Ctx, out
from watcher.store.store import Store


@click.group()
def db() -> None:
    """The database schema (Alembic). The daemon migrates at start unless [database]
    migrate_on_start = false; then run `watcher db upgrade` before starting a new version.

    \b
    Examples:
      watcher db status
      watcher db upgrade
    """


@db.command("status")
@click.pass_obj
def db_status(obj: Ctx) -> None:
    """Show the schema revision of the database and the one this watcher needs; exit 1 if behind."""
    loaded = obj.load()
    store = Store.open(loaded.config.database.url, migrate_schema=False)
    try:
        current, needed = store.schema_status()
    finally:
        store.close()
    database = loaded.config.redactor(loaded.config.database.url)
    if current == needed:
        out.print(f"OK      {database}: schema at {needed}, up to date")
        return
    out.print(f"BEHIND  {database}: schema at {current or 'nothing (empty database)'}, needs {needed}")
    raise SystemExit(1)


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Ctx) -> None:
    """Apply every pending migration (safe to run while replicas are up: one migrates at a time)."""
    loaded = obj.load()
    store = Store.open(loaded.config.database.url, migrate_schema=False)
    try:
        before, needed = store.schema_status()
        store.migrate()
    finally:
        store.close()
    database = loaded.config.redactor(loaded.config.database.url)
    if before == needed:
        out.print(f"OK      {database}: schema already at {needed}")
    else:
        out.print(f"OK      {database}: schema upgraded from {before or 'nothing'} to {needed}")
