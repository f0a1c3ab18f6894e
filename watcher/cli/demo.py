"""``watcher demo``: a first look without internet or config; the sample feeds through the real pipeline."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import click
from rich.markup import escape

from watcher.app import utcnow
from watcher.cli.common import Ctx, out
from watcher.demo.runner import Demo, DemoReport, StepReport
from watcher.demo.scenario import CONSOLE, DIGEST, STEPS
from watcher.logs import configure_logging

# Left in a demo folder so a second run may clear it; a folder without it is never emptied.
MARKER = ".watcher-demo"
OURS = ("config.toml", "preview.html", "watcher-demo.db", "feeds", "pages", "rules")


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="PATH",
    help="Put the demo here (a new or empty folder, or an earlier demo's) instead of a temporary folder.",
)
@click.pass_obj
def demo(obj: Ctx, directory: Path | None) -> None:
    """Replay bundled sample feeds through the whole pipeline, offline, in a few seconds.

    Four fictional feeds shaped like the real sources (gov.uk CMA cases, FTC press releases,
    TechCrunch, The Verge) are polled over a simulated day and a half: alerts print here, a
    second report of a story does not alert again, an edited case page alerts at its new stage,
    and a morning digest collects it all. Every message is also written to preview.html. The
    config, rules, feeds and database stay in the folder, for `watcher -c FOLDER/config.toml ...`.
    No config is read and nothing outside the folder is touched.

    \b
    Examples:
      watcher demo
      watcher demo --dir ./watcher-demo
    """
    configure_logging("debug" if obj.debug else "warning")
    root = _prepare(directory)
    out.print(f"[bold]watcher demo[/]: sample feeds replayed offline in {escape(str(root))}")
    out.print("Simulated clock; every company, case and story below is fictional.\n")
    report = asyncio.run(_run(root))
    _summary(report, kept=directory is not None)


async def _run(root: Path) -> DemoReport:
    async with Demo(root, utcnow()) as demo:
        for step in STEPS:
            out.print(f"[bold cyan]── {demo.at(step):%a %d %b %H:%M} UTC · {escape(step.label)}[/]")
            report = await demo.step(step)
            out.print(f"[dim]{escape(_step_line(report))}[/]\n")
        return await demo.finish()


def _prepare(directory: Path | None) -> Path:
    """The demo folder: a fresh temporary one, or ``--dir`` if it is new, empty or an earlier demo."""
    if directory is None:
        root = Path(tempfile.mkdtemp(prefix="watcher-demo-"))
    else:
        root = directory.resolve()
        if root.exists() and any(root.iterdir()):
            if not (root / MARKER).exists():
                raise click.BadParameter(
                    f"{directory} is not empty and holds no earlier demo; give a new or empty folder",
                    param_hint="--dir",
                )
            for name in OURS:  # an earlier demo: start again from scratch, removing only our files
                path = root / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"{directory}: {exc.strerror or exc}", param_hint="--dir") from None
    (root / MARKER).write_text("Written by `watcher demo`; `watcher demo --dir` may clear this folder.\n")
    return root


def _step_line(report: StepReport) -> str:
    polled = [o for o in report.outcomes if o.status != "pages"]
    fresh = sum(o.new_items for o in polled)
    same = sum(o.status == "not_modified" for o in polled)
    failed = [o.feed_id for o in polled if o.status == "failed"]
    parts = [f"polled {len(polled)} feeds: {fresh} new item{'' if fresh == 1 else 's'}"]
    if same:
        parts.append(f"{same} unchanged (304)")
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    alerts = sum(not s.is_digest for s in report.sent)
    digests = [s for s in report.sent if s.is_digest]
    if alerts:
        parts.append(f"sent {alerts} alert{'' if alerts == 1 else 's'} to {CONSOLE}; {DIGEST} keeps them for 08:00")
    for digest in digests:
        parts.append(f"sent 1 digest of {len(digest.alerts)} alerts to {digest.channel}")
    if not alerts and not digests:
        parts.append("nothing new to send")
    return " · ".join(parts)


def _summary(report: DemoReport, *, kept: bool) -> None:
    alerts, digests = report.alerts, report.digests
    out.print("[bold]What just happened[/]")
    out.print(
        f"  • {report.feeds} feeds were read from files (file:// URLs) {len(report.steps)} times, and "
        f"{report.items} items stored; each item's linked page was read from disk too."
    )
    out.print(
        f"  • {len(alerts)} alerts went to the {CONSOLE}, for {len(report.stories)} stories: "
        "each rule alerts once per story."
    )
    second = report.second_report
    if second is not None and second.story_sources:
        decision = second.matches[0].decision if second.matches else "not matched"
        out.print(
            f"  • One story, one alert: the Kestrel AI stake was reported by {', '.join(second.story_sources)}; "
            f"the later report joined story {second.story_id} ({decision})."
        )
    case = report.case
    if case is not None and case.revision > 1:
        staged = [m.reason for m in case.matches if m.revision == case.revision and m.decision == "alerted"]
        out.print(
            f'  • "{escape(case.title)}" was edited (revision {case.revision}) and alerted once more: '
            f"{escape(staged[0] if staged and staged[0] else 'an update')}."
        )
    if report.look_alike is not None and not report.look_alike.matches:
        out.print(
            f'  • Not alerted: "{escape(report.look_alike.title)}": a look-alike (the rule vetoes '
            "Country Music Association)."
        )
    history = report.history
    if history is not None and history.on_first_poll and not history.matches:
        out.print(
            f'  • Not alerted: "{escape(history.title)}": old news on the feed\'s first poll, stored as history '
            "(poll.backlog_max_age)."
        )
    for digest in digests:
        items = len({(a.feed_id, a.item_title) for a in digest.alerts})
        out.print(
            f"  • {digest.channel}: 1 digest at {digest.at:%H:%M} with the {len(digest.alerts)} alerts "
            f"({items} items), grouped by story."
        )
    out.print(f"\nEvery message as HTML: [bold]{escape(str(report.preview_path))}[/]")
    config = escape(str(report.config_path))
    out.print("\n[bold]Next steps[/]")
    out.print(f'  watcher -c {config} alerts --explain "Kestrel AI"   why each report did or did not alert')
    out.print(f"  watcher rules check {escape(str(report.root / 'rules'))}   the demo rules and their examples")
    out.print("  cp config.example.toml config.toml   then pick your feeds and channels, and run: make run")
    if not kept:
        out.print(f"[dim]The demo folder is temporary ({escape(str(report.root))}); --dir PATH puts it elsewhere.[/]")
