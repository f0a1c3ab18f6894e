"""The rule author's commands: ``watcher rules check | test | backtest | schema`` and ``watcher save``."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from rich.markup import escape
from rich.table import Table

from watcher.cli.common import Ctx, out, print_json, when
from watcher.config import load_config
from watcher.duration import parse_duration
from watcher.errors import ConfigError, FetchError, RuleError
from watcher.examples import run_examples
from watcher.feeds.fetch import Fetcher, FetchPolicy
from watcher.inputs import META_SUFFIX, Input, input_files, read_inputs
from watcher.match import RuleSet
from watcher.model import Item, Match, Rule
from watcher.rules import display_path, json_schema, load_rules, rule_files
from watcher.store.decide import fingerprint
from watcher.store.store import Store

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _rules_paths(obj: Ctx, paths: tuple[Path, ...]) -> list[Path]:
    """Explicit paths, else the config's rules_dir, else ./rules (no config needed to write rules)."""
    if paths:
        return list(paths)
    if obj.config_path.is_file():
        return [load_config(obj.config_path).rules_dir]
    return [Path("rules")]


def load_and_report(paths: list[Path], *, quiet: bool = False) -> list[Rule]:
    """Load rule files, printing OK per file; on the first error print FAILED and re-raise."""
    try:
        rules = load_rules(paths)
    except RuleError as exc:
        if exc.path is not None:
            out.print(f"[red]FAILED[/]  {exc.path}")
        raise
    if not quiet:
        counts = Counter(r.source.rpartition(":")[0] for r in rules)
        for path in rule_files(paths):
            shown = next((f for f in counts if Path(f).resolve() == path.resolve()), display_path(path))
            out.print(f"OK      {shown} ({counts.get(shown, 0)} rules)")
    return rules


def _highlight(snippet: str) -> str:
    """Rich markup for a reason snippet: the **hit** in bold, everything else escaped."""
    parts = re.split(r"\*\*(.+?)\*\*", snippet)
    return "".join(f"[bold magenta]{escape(p)}[/]" if i % 2 else escape(p) for i, p in enumerate(parts))


@click.group()
def rules() -> None:
    """Write and test rules: check files and examples, run rules on saved articles, replay history.

    \b
    Examples:
      watcher rules check rules/
      watcher rules test saved/ --expect cma-invitation-to-comment
      watcher rules backtest --since 30d --rules rules-new/ --against rules/
    """


@rules.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@click.pass_obj
def rules_check(obj: Ctx, paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate rule files and run every rule's examples through the real matcher.

    PATHS are rule files or folders (default: the config's rules_dir, else ./rules).
    Exits 0 when everything passes, 1 when an example fails, 2 when a file is invalid.

    \b
    Example:
      watcher rules check rules/
    """
    loaded = load_and_report(_rules_paths(obj, paths), quiet=as_json)
    results = run_examples(loaded)
    failures = [r for r in results if not r.ok]
    if as_json:
        print_json(
            {
                "rules": len(loaded),
                "examples": len(results),
                "failed": [
                    {"rule": r.rule.id, "title": r.example.title, "expected_match": r.example.expect_match}
                    for r in failures
                ],
            }
        )
    else:
        for r in failures:
            want = "should match but did not" if r.example.expect_match else "should not match but did"
            where = r.rule.source.rpartition(":")[0]
            line = f":{r.example.line}" if r.example.line else ""
            out.print(f'[red]FAIL[/]    {where}{line}: rule "{r.rule.id}": example {want}: {escape(r.example.title)!r}')
        matched = sum(1 for r in results if r.example.expect_match)
        out.print(
            f"{len(loaded)} rules, {len(results)} examples ({matched} must match, {len(results) - matched} must not): "
            + (f"[red]{len(failures)} failed[/]" if failures else "all passed")
        )
    if failures:
        sys.exit(1)


def _match_json(m: Match) -> dict[str, Any]:
    return {"rule": m.rule_id, "severity": m.severity.value, "reasons": [asdict(r) for r in m.reasons]}


@rules.command("test")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rule folder or file (default: config).")
@click.option("--expect", "expect", multiple=True, metavar="RULE", help="Every input must fire RULE (repeatable).")
@click.option("--expect-none", is_flag=True, help="No input may fire any rule.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def rules_test(
    obj: Ctx,
    inputs: tuple[Path, ...],
    rules_dir: Path | None,
    expect: tuple[str, ...],
    expect_none: bool,
    as_json: bool,
) -> None:
    """Run rules over saved articles and feeds, and show which fired and why.

    INPUT is a file or folder of .txt/.md (first line is the title), .html (main text
    extracted), .eml, .json/.jsonl (title, text, link, published) or saved feeds
    (.xml/.rss/.atom: every entry). Exits 1 when an expectation fails, 2 on bad input.

    \b
    Examples:
      watcher rules test saved/
      watcher rules test saved/itc.html --expect cma-invitation-to-comment
      watcher rules test saved/noise/ --expect-none --json
    """
    loaded = load_rules(_rules_paths(obj, (rules_dir,) if rules_dir else ()))
    known = {r.id for r in loaded}
    unknown = [e for e in expect if e not in known]
    if unknown:
        raise click.BadParameter(f"unknown rule {unknown[0]!r}", param_hint="--expect")
    ruleset = RuleSet(loaded)
    by_id = {r.id: r for r in loaded}
    results: list[tuple[Input, list[Match]]] = []
    files = input_files(list(inputs))
    if not files:
        raise ConfigError("no supported files found in " + ", ".join(map(str, inputs)))
    for path in files:
        for entry in read_inputs(path):
            results.append((entry, ruleset.match(entry.item)))

    problems: list[str] = []
    for path in files:
        fired = {m.rule_id for entry, matches in results if entry.path == path for m in matches}
        problems += [f"{path}: expected {rule_id} to fire, it did not" for rule_id in expect if rule_id not in fired]
        if expect_none and fired:
            problems.append(f"{path}: expected no rule to fire, got {', '.join(sorted(fired))}")

    if as_json:
        print_json(
            {
                "inputs": [
                    {
                        "input": e.name,
                        "title": e.item.title,
                        "link": e.item.link,
                        "matches": [_match_json(m) for m in ms],
                    }
                    for e, ms in results
                ],
                "expectations_failed": problems,
            }
        )
    else:
        for entry, matches in results:
            marker = "[green]●[/]" if matches else "[dim]○[/]"
            out.print(f"{marker} {escape(entry.name)}  [bold]{escape(entry.item.title or '(untitled)')}[/]")
            for m in matches:
                style = SEVERITY_STYLE[m.severity.value]
                out.print(f"    [{style}]{m.severity.value.upper():8}[/] {m.rule_id}  {escape(by_id[m.rule_id].title)}")
                for reason in m.reasons:
                    out.print(f"        {escape(str(reason))}: {_highlight(reason.snippet)}")
        table = Table(title="Summary", title_justify="left")
        table.add_column("rule")
        table.add_column("severity")
        table.add_column("inputs fired", justify="right")
        counts = Counter(m.rule_id for _, ms in results for m in ms)
        for rule_id, count in sorted(counts.items()):
            table.add_row(rule_id, by_id[rule_id].severity.value, str(count))
        out.print(table)
        hits = sum(1 for _, ms in results if ms)
        out.print(f"{len(results)} inputs from {len(files)} files, {hits} fired at least one rule")
        for problem in problems:
            out.print(f"[red]FAIL[/]    {escape(problem)}")
    if problems:
        sys.exit(1)


def _alerts(ruleset: RuleSet, items: list[tuple[Item, tuple[str, ...]]]) -> dict[tuple[str, str], tuple[Item, Match]]:
    """What the daemon would have recorded: one alert per (rule, story fingerprint)."""
    alerts: dict[tuple[str, str], tuple[Item, Match]] = {}
    for item, tags in items:
        for m in ruleset.match(item, feed_tags=tags):
            alerts.setdefault((m.rule_id, fingerprint(item)), (item, m))
    return alerts


@rules.command("backtest")
@click.option("--since", default="30d", show_default=True, help="How far back: 7d, 30d, 12h...")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rules to try (default: config).")
@click.option("--against", type=click.Path(path_type=Path), help="Compare with these rules: added and lost alerts.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def rules_backtest(obj: Ctx, since: str, rules_dir: Path | None, against: Path | None, as_json: bool) -> None:
    """Replay rules over the items already stored, without notifying or writing anything.

    With --against, show the difference between two versions of the rules: alerts the new
    rules add and alerts they lose, so a change can be reviewed before it goes live.

    \b
    Examples:
      watcher rules backtest --since 30d
      watcher rules backtest --since 30d --rules rules-new/ --against rules/
    """
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    loaded = obj.load()
    config = loaded.config
    new_rules = load_rules([rules_dir]) if rules_dir else loaded.rules
    tags = {f.id: tuple(f.tags) for f in config.feeds}
    store = Store.open(config.database.url)
    try:
        items = store.items_since(datetime.now(UTC) - window)
    finally:
        store.close()
    pairs = [(i, tags.get(i.feed_id, ())) for i in items]
    new = _alerts(RuleSet(new_rules), pairs)
    old = _alerts(RuleSet(load_rules([against])), pairs) if against else None
    added = sorted(set(new) - set(old)) if old is not None else sorted(new)
    lost = sorted(set(old) - set(new)) if old is not None else []

    def row(key: tuple[str, str], source: dict[tuple[str, str], tuple[Item, Match]]) -> dict[str, Any]:
        item, m = source[key]
        return {
            "rule": m.rule_id,
            "severity": m.severity.value,
            "feed": item.feed_id,
            "title": item.title,
            "link": item.link,
            "published_at": item.published_at,
            "reasons": [str(r) for r in m.reasons],
        }

    if as_json:
        data: dict[str, Any] = {"items": len(items), "since": since}
        if old is None:
            data["alerts"] = [row(k, new) for k in added]
        else:
            data["added"] = [row(k, new) for k in added]
            data["lost"] = [row(k, old) for k in lost]
            data["unchanged"] = len(set(new) & set(old))
        print_json(data)
        return
    title = "Would have alerted" if old is None else "Added by the new rules"
    _alert_table(title, [row(k, new) for k in added])
    if old is not None:
        _alert_table("Lost with the new rules", [row(k, old) for k in lost])
        out.print(
            f"{len(items)} items since {since}: {len(added)} added, {len(lost)} lost, "
            f"{len(set(new) & set(old))} unchanged"
        )
    else:
        out.print(f"{len(items)} items since {since}: {len(added)} alerts")


def _alert_table(title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"{title} ({len(rows)})", title_justify="left")
    for col in ("rule", "sev", "feed", "published", "title"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["rule"], r["severity"], r["feed"], when(r["published_at"]), escape(r["title"][:90]))
    out.print(table)


@rules.command("schema")
def rules_schema() -> None:
    """Print the JSON Schema of rule files (for editors; published as docs/rules.schema.json).

    \b
    Example:
      watcher rules schema > docs/rules.schema.json
    """
    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


_EXTENSIONS = {
    "atom": ".atom",
    "rss": ".rss",
    "xml": ".xml",
    "html": ".html",
    "json": ".json",
    "plain": ".txt",
}


def _save_name(url: str, content_type: str) -> str:
    parts = urlsplit(url)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", (parts.netloc + parts.path).strip("/")).strip("-")[:120] or "saved"
    kind = next((ext for key, ext in _EXTENSIONS.items() if key in content_type), ".html")
    return stem if stem.endswith(kind) else stem + kind


@click.command()
@click.argument("url")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to save into.",
)
@click.pass_obj
def save(obj: Ctx, url: str, output: Path) -> None:
    """Fetch an article or feed and save it, with its metadata, for `watcher rules test`.

    Writes the body as served (NAME.html, .xml, .rss...) and NAME.meta.json beside it with
    the URL, final URL after redirects, status, headers and fetch time.

    \b
    Example:
      watcher save https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership -o saved/
    """
    policy = FetchPolicy()
    if obj.config_path.is_file():
        from watcher.app import fetch_policy

        policy = fetch_policy(load_config(obj.config_path))

    async def fetch() -> Any:
        async with Fetcher(policy) as fetcher:
            return await fetcher.fetch("save", url)

    try:
        result = asyncio.run(fetch())
    except FetchError as exc:
        click.echo(f"error: {url}: {exc}", err=True)
        sys.exit(1)
    output.mkdir(parents=True, exist_ok=True)
    path = output / _save_name(result.final_url, result.headers.get("content-type", ""))
    path.write_bytes(result.body)
    meta = {
        "url": url,
        "final_url": result.final_url,
        "status": result.status,
        "headers": dict(result.headers),
        "fetched_at": datetime.now(UTC).isoformat(),
    }
    path.with_name(path.name + META_SUFFIX).write_text(json.dumps(meta, indent=2))
    out.print(f"saved {len(result.body):,} bytes to {path}")
