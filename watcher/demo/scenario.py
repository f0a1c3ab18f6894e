"""The demo's script: a day and a half of sample feeds, the config and rules that read them.

Owns: the timeline (which feed and page changes at which simulated time), writing the config,
the bundled rule file, feeds and case pages into the demo folder. Must not: poll, match or
send (``runner`` drives the real pipeline) or print (the CLI does).

The sample feeds are package data, Jinja2 templates shaped like the real sources
(/work/shared/SOURCES.md): gov.uk's CMA case feed (a title and no summary, the update time moves
when the case page changes), the FTC's press releases (the whole release as HTML), TechCrunch
(an excerpt ending in "[…]") and The Verge (Atom, one-sentence summaries). Their dates are set
relative to the simulated clock, so a first poll finds them recent, as a newcomer's would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib.resources import files
from pathlib import Path

import jinja2

DATA = files("watcher.demo").joinpath("data")

# (feed id, title, template, tags, full_text): full_text because gov.uk case entries carry a title
# only, so each case's page is read (here from a file:// link) and matched instead.
FEEDS = (
    ("cma-cases", "CMA cases (demo)", "cma-cases.atom.j2", ("regulator", "uk"), True),
    ("ftc-press", "FTC press releases (demo)", "ftc-press.xml.j2", ("regulator", "us"), False),
    ("techcrunch-ai", "TechCrunch AI (demo)", "techcrunch-ai.xml.j2", ("news", "tech"), False),
    ("verge-policy", "The Verge, policy (demo)", "verge-policy.atom.j2", ("news", "tech"), False),
)
# Every item links to a page of its own in the demo folder, so reading linked pages (gov.uk
# case entries have nothing else; other items are read when they partly match a rule) never
# leaves the machine. Templates starting with "_" are layouts.
PAGES = tuple(
    sorted(p.name.removesuffix(".j2") for p in DATA.joinpath("pages").iterdir() if not p.name.startswith("_"))
)
CONSOLE = "console"
DIGEST = "morning-digest"


@dataclass(frozen=True, slots=True)
class Step:
    """One moment of the demo: the feeds and pages are as they stand then, and every feed is polled."""

    number: int
    at: str  # "d1 16:00": day 1 or 2 of the simulated timeline, UTC
    label: str


STEPS = (
    Step(1, "d1 16:00", "first poll of 4 feeds: the CMA, the FTC and two news sites"),
    Step(2, "d1 21:00", "The Verge reports the Kestrel AI stake too"),
    Step(3, "d2 07:45", "the CMA edits the Google / Halcyon AI case page"),
    Step(4, "d2 08:00", "the morning digest is due"),
)


class Timeline:
    """Simulated times: day 1 is the day before yesterday (UTC), so every time is in the past."""

    def __init__(self, today: datetime):
        self.day1 = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=2)

    def at(self, when: str, days: int = 0) -> datetime:
        day, _, clock = when.partition(" ")
        hours, _, minutes = clock.partition(":")
        offset = timedelta(days=int(day.removeprefix("d")) - 1 + days, hours=int(hours), minutes=int(minutes))
        return self.day1 + offset


class Scenario:
    """Writes the demo folder's files; ``advance`` brings feeds and pages to a step."""

    def __init__(self, root: Path, timeline: Timeline):
        self.root = root
        self.timeline = timeline
        self.feeds_dir = root / "feeds"
        self.pages_dir = root / "pages"
        env = jinja2.Environment(
            loader=jinja2.FunctionLoader(_package_template),
            autoescape=False,  # the templates are XML and HTML written by us, with no outside input
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        env.filters.update(iso=_iso, rfc822=_rfc822, day=lambda at: f"{at:%-d %B %Y}")
        self._env = env

    def write_setup(self) -> Path:
        """Write the rules and the config; return the config's path."""
        rules = self.root / "rules"
        rules.mkdir(parents=True, exist_ok=True)
        (rules / "demo.toml").write_bytes(DATA.joinpath("rules", "demo.toml").read_bytes())
        self.feeds_dir.mkdir(exist_ok=True)
        self.pages_dir.mkdir(exist_ok=True)
        config = self.root / "config.toml"
        config.write_text(self._config(), encoding="utf-8")
        return config

    def advance(self, step: Step) -> list[str]:
        """Rewrite the feeds and pages as they stand at ``step``; return the files that changed.

        An unchanged file is not rewritten, so its poll is a real 304 (file:// feeds have an
        ETag from the file's mtime and size).
        """
        changed = []
        outputs = [(self.feed_path(feed_id), template) for feed_id, _, template, _, _ in FEEDS]
        outputs += [(self.pages_dir / name, f"{name}.j2") for name in PAGES]
        for target, template in outputs:
            text = self._env.get_template(template).render(step=step.number, at=self.timeline.at, page=self._page)
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
                changed.append(target.name)
        return changed

    def feed_path(self, feed_id: str) -> Path:
        template = next(t for f, _, t, _, _ in FEEDS if f == feed_id)
        return (self.feeds_dir / feed_id).with_suffix(_suffix(template))

    def _page(self, name: str) -> str:
        # file://localhost/..., not file:///...: feedparser turns an empty host into
        # "file://tmp/..." when it resolves entry links, and the page could not be read.
        return "file://localhost" + (self.pages_dir / name).resolve().as_uri().removeprefix("file://")

    def _config(self) -> str:
        feeds = "".join(
            f'\n[[feed]]\nid = "{feed_id}"\nurl = "{self.feed_path(feed_id).resolve().as_uri()}"\n'
            f'title = "{title}"\ntags = {json.dumps(list(tags))}\n'
            f"full_text = {'true' if full_text else 'false'}\n"
            for feed_id, title, _, tags, full_text in FEEDS
        )
        return f"""\
# Written by `watcher demo`: every feed is a local file (file:// URLs), the database a SQLite
# file in this folder, and alerts go to the console and to a morning digest (also the console).
# Look around with, for example:
#   watcher -c config.toml alerts
#   watcher -c config.toml alerts --explain "Kestrel AI"
#   watcher -c config.toml feeds
# For real feeds, start from config.example.toml instead.

rules_dir = "rules"

[database]
url = "sqlite:///watcher-demo.db"

[delivery]
default_channels = ["{CONSOLE}", "{DIGEST}"]

[channels.{CONSOLE}]
type = "console"
format = "text"

[channels.{DIGEST}]
type = "console"
format = "text"
mode = "digest"
schedule = "0 8 * * *"
timezone = "UTC"
{feeds}"""


def _package_template(name: str) -> tuple[str, str, Callable[[], bool]]:
    folder = "pages" if name.endswith(".html.j2") else "feeds"
    source = DATA.joinpath(folder, name).read_text(encoding="utf-8")
    return source, f"watcher/demo/data/{folder}/{name}", lambda: True


def _suffix(template: str) -> str:
    return "." + template.removesuffix(".j2").rsplit(".", 1)[1]


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _rfc822(at: datetime) -> str:
    return format_datetime(at, usegmt=True)
