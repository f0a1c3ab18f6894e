"""Source health on both databases: a failing feed, one serving HTML and one gone silent past its
own cadence are each reported once on the health channel, and once more when they recover; a
report that cannot be sent is tried again at the next check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.config import load_config
from watcher.health import SourceFacts, judge, silent_after
from watcher.model import DeliveryResult, Item, Message
from watcher.notify.source_alerts import report_sources
from watcher.store.store import FeedSpec, Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HTML = "not a feed: no RSS or Atom root element"


class Channel:
    """Where reports go: records them, and can be told to refuse."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.down = False

    def __call__(self, name: str, message: Message) -> DeliveryResult:
        if self.down:
            return DeliveryResult(name, False, "HTTP 503")
        self.messages.append(message)
        return DeliveryResult(name, True)

    def titles(self) -> list[str]:
        out = [m.title for m in self.messages]
        self.messages.clear()
        return sorted(out)


def test_problems_are_reported_once_and_so_are_recoveries(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "config.toml"
    feeds = "".join(
        f'[[feed]]\nid = "{f}"\nurl = "https://example.org/{f}"\n' for f in ("down", "page", "quiet", "fine")
    )
    path.write_text(
        'rules_dir = "rules"\n[health]\nchannel = "ops"\nfailing_after = "6h"\n'
        '[channels.ops]\nurls = ["json://127.0.0.1:9/hook"]\n' + feeds
    )
    (tmp_path / "rules").mkdir()
    config = load_config(path, env={})
    store.sync_feeds([FeedSpec(f.id, f.url) for f in config.feeds], T0 - timedelta(days=20))
    # quiet and fine publish daily; quiet stops ten days before the check, fine keeps going.
    for feed, last in (("quiet", T0 - timedelta(days=10)), ("fine", T0)):
        items = [
            Item(
                feed,
                f"{feed}-{n}",
                f"Notice {n}",
                f"https://example.org/{feed}/{n}",
                "text",
                "",
                last - timedelta(days=n),
            )
            for n in range(10)
        ]
        store.save_poll(feed, T0, items, [], etag=None, last_modified=None, next_check_at=T0)
    store.save_poll("down", T0 - timedelta(days=1), [], [], etag=None, last_modified=None, next_check_at=T0)
    store.record_failure("down", T0 - timedelta(hours=8), "HTTP 500 Internal Server Error", T0)
    store.save_poll("page", T0 - timedelta(days=1), [], [], etag=None, last_modified=None, next_check_at=T0)
    for minutes in (60, 30):
        store.record_failure("page", T0 - timedelta(minutes=minutes), HTML, T0)
    channel = Channel()

    def check(at: datetime) -> int:
        return asyncio.run(report_sources(store, config, channel, at))

    channel.down = True
    assert check(T0) == 0  # the health channel is down: nothing is recorded as told
    channel.down = False
    assert check(T0) == 3
    assert channel.titles() == [
        "[WATCHER] feed down is failing",
        "[WATCHER] feed page serves HTML, not a feed",
        "[WATCHER] feed quiet has gone silent",
    ]
    assert check(T0 + timedelta(minutes=5)) == 0  # once per problem
    store.record_not_modified("down", T0 + timedelta(minutes=6), T0 + timedelta(hours=1))
    assert check(T0 + timedelta(minutes=10)) == 1
    assert channel.titles() == ["[WATCHER] feed down has recovered"]


def test_judging() -> None:
    daily = tuple(T0 - timedelta(days=n) for n in range(8))
    facts = SourceFacts("f", 0, None, T0, T0 - timedelta(days=30), daily)
    kwargs = {"failing_after": timedelta(hours=6), "silent_factor": 5.0, "silent_min": timedelta(days=2)}
    assert silent_after(daily, 5.0, timedelta(days=2)) == timedelta(days=5)
    assert silent_after(daily[:4], 5.0, timedelta(days=2)) is None  # too little history to learn from
    assert judge(facts, T0 + timedelta(days=4), **kwargs) is None
    silent = judge(facts, T0 + timedelta(days=5), **kwargs)
    assert silent is not None and silent.kind == "silent" and "usually one every 24.0 hours" in silent.detail
    failing = SourceFacts("f", 3, "HTTP 500", T0, T0 - timedelta(days=30), daily)
    assert judge(failing, T0 + timedelta(hours=5), **kwargs) is None  # not yet long enough
    assert judge(failing, T0 + timedelta(hours=6), **kwargs).kind == "failing"  # type: ignore[union-attr]
    once_html = SourceFacts("f", 1, HTML, T0, T0, daily)
    assert judge(once_html, T0, **kwargs) is None  # one HTML answer may be a blip
