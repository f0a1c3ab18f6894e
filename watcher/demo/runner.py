"""Run the demo: the scenario's steps through the real pipeline, store and outbox.

Owns: the simulated clock, one poll-and-drain per step (as ``watcher poll --once`` does), and
what the summary reports. Must not: print (the CLI does) or reach the network: every feed and
page is a file:// URL in the demo folder, and the only channels are console ones.

The clock is simulated (the injected ``clock`` seam of Pipeline and Outbox) so that a day and a
half happens in seconds: the morning digest is really due at 08:00, a first poll really finds
recent items, and nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TextIO

from watcher.app import Loaded, load, make_fetcher, retry_policy
from watcher.demo.preview import PreviewRenderer, Recorder, Sent, write_preview
from watcher.demo.scenario import STEPS, Scenario, Step, Timeline
from watcher.feeds.fetch import Fetcher
from watcher.notify.outbox import DrainResult, Outbox
from watcher.pipeline import Pipeline, PollOutcome
from watcher.store.silences import ItemTrail
from watcher.store.store import FeedSpec, Store

# The items the summary explains: an edited case page, a second report of a story, a
# look-alike, and history.
CASE = "https://www.gov.uk/cma-cases/google-slash-halcyon-ai-partnership-merger-inquiry"
SECOND_REPORT = "https://www.theverge.com/demo/microsoft-kestrel-ai-stake-regulators"
LOOK_ALIKE = "https://www.theverge.com/demo/country-music-association-ai-songwriting"
HISTORY = "https://www.gov.uk/cma-cases/amazon-slash-lumina-robotics-merger-inquiry"


@dataclass(frozen=True, slots=True)
class StepReport:
    step: Step
    at: datetime
    changed: tuple[str, ...]  # feed and page files rewritten for this step
    outcomes: tuple[PollOutcome, ...]
    drained: DrainResult
    sent: tuple[Sent, ...]  # the messages sent at this step


@dataclass(frozen=True, slots=True)
class DemoReport:
    root: Path
    config_path: Path
    preview_path: Path
    steps: tuple[StepReport, ...]
    sent: tuple[Sent, ...]
    items: int  # items stored, every feed
    feeds: int
    case: ItemTrail | None
    second_report: ItemTrail | None
    look_alike: ItemTrail | None
    history: ItemTrail | None

    @property
    def alerts(self) -> list[Sent]:
        return [s for s in self.sent if not s.is_digest]

    @property
    def digests(self) -> list[Sent]:
        return [s for s in self.sent if s.is_digest]

    @property
    def stories(self) -> set[int]:
        """The stories alerts were sent for."""
        return {a.story_id for s in self.alerts for a in s.alerts if a.story_id is not None}


class Demo:
    """The demo in ``root``: ``async with Demo(root, now) as demo``, then ``step`` per Step."""

    def __init__(self, root: Path, today: datetime, *, console: TextIO | None = None):
        self.root = root
        self.timeline = Timeline(today)
        self.scenario = Scenario(root, self.timeline)
        self.config_path = self.scenario.write_setup()
        self.loaded: Loaded = load(self.config_path)
        self.now = self.timeline.at(STEPS[0].at)
        self.console = console
        self._steps: list[StepReport] = []
        self._store: Store | None = None
        self._fetcher: Fetcher | None = None

    def clock(self) -> datetime:
        return self.now

    async def __aenter__(self) -> Demo:
        config = self.loaded.config
        self._store = await asyncio.to_thread(Store.open, config.database.url)
        self._fetcher = make_fetcher(config)
        specs = [FeedSpec(f.id, f.url, f.title) for f in config.feeds if f.enabled]
        await asyncio.to_thread(self._store.sync_feeds, specs, self.now)
        self._renderer = PreviewRenderer(config.resolved_channels)
        self._recorder = Recorder(self._renderer, self.clock, self.console)
        self._pipeline = Pipeline(config, self.loaded.rules, self._store, self._fetcher, clock=self.clock)
        self._outbox = Outbox(
            self._store,
            config.resolved_channels,
            policy=retry_policy(config),
            clock=self.clock,
            redactor=config.redactor,
            deliver=self._recorder,
            renderer=self._renderer,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    def at(self, step: Step) -> datetime:
        return self.timeline.at(step.at)

    async def step(self, step: Step) -> StepReport:
        """Bring the files to ``step``, poll every feed once and send what is due, at its time."""
        self.now = self.at(step)
        changed = await asyncio.to_thread(self.scenario.advance, step)
        before = len(self._recorder.sent)
        outcomes = await self._pipeline.poll_due(force=True)
        drained = await self._outbox.drain()
        sent = tuple(self._recorder.sent[before:])
        report = StepReport(step, self.now, tuple(changed), tuple(outcomes), drained, sent)
        self._steps.append(report)
        return report

    async def finish(self) -> DemoReport:
        """Write the preview and gather what the summary explains."""
        assert self._store is not None, "use Demo inside async with"
        store = self._store
        preview = write_preview(self.root / "preview.html", self._recorder.sent, "watcher demo: the messages it sent")

        def trail(needle: str) -> ItemTrail | None:
            found = store.explain(needle)
            return found[0] if found else None

        items = await asyncio.to_thread(store.count_items)
        return DemoReport(
            root=self.root,
            config_path=self.config_path,
            preview_path=preview,
            steps=tuple(self._steps),
            sent=tuple(self._recorder.sent),
            items=items,
            feeds=len(self.loaded.config.feeds),
            case=await asyncio.to_thread(trail, CASE),
            second_report=await asyncio.to_thread(trail, SECOND_REPORT),
            look_alike=await asyncio.to_thread(trail, LOOK_ALIKE),
            history=await asyncio.to_thread(trail, HISTORY),
        )


async def run_demo(root: Path, today: datetime, console: TextIO | None = None) -> DemoReport:
    """Every step, then the report: for callers that print nothing between steps."""
    async with Demo(root, today, console=console) as demo:
        for step in STEPS:
            await demo.step(step)
        return await demo.finish()
