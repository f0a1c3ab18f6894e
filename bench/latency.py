"""Steady state and end-to-end latency: the real daemon (`watcher run`) against the loopback feed
farm, new items appearing one at a time, each alert mailed to a loopback SMTP sink.

    .venv/bin/python -m bench.latency --feeds 1000 --interval 60 --minutes 5
    .venv/bin/python -m bench.latency --feeds 10000 --interval 300 --minutes 60   # the soak

The daemon polls every feed on its interval. Once its first cycle has stored every feed's items
(stored silently: they are older than ``backlog_max_age``, as a first poll's history is), new
items are added to random feeds at a steady rate for the measured period; each one matches a
bench rule and is mailed at once, unless it joins a story already alerted on (the farm's random
text sometimes looks like an earlier item's: one message per story, by design; counted apart).
For every alerted item the latency is the time from its appearing on the farm to its message
reaching the sink, so it includes waiting for the feed's next poll: at an interval of 60 s the
median is about half the interval, and the p99 is what the target bounds (the interval plus 2 s).
The daemon's CPU (its own and its parse workers', from /proc) and RSS are sampled every few
seconds: the average share of one core, and RSS at the start and the end of the measured period
(flat memory is the end within 10% of the start).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.farm import PARTIES, Farm, FarmClient, SmtpSink

ROOT = Path(__file__).resolve().parents[1]
_LINK = re.compile(rb"/a/(\d+)/(\d+)")
# Every farm title names two of PARTIES, so this rule fires on each new item.
RULE = f"""\
[[rule]]
id = "bench-every-item"
title = "Every farm item"
severity = "low"
any = {json.dumps(PARTIES)}
"""


@dataclass
class Figures:
    feeds: int
    interval_s: float
    measured_s: float
    first_cycle_s: float
    new_items: int
    alerted: int  # the rest joined a story already alerted on: one message per story, by design
    delivered: int
    missing: int
    p50_s: float
    p99_s: float
    max_s: float
    cpu_share: float  # of one core, averaged over the measured period
    rss_start_mib: float
    rss_end_mib: float
    rss_max_mib: float
    requests_per_s: float


def _tree(pid: int) -> list[int]:
    """The daemon and its children (parse workers, the forkserver)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def _usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of the daemon's process tree."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = rss = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / tick
        rss += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0) / 1024
    return cpu, rss


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    except sqlite3.Error:
        return 0


def _keys(db: Path, sql: str) -> set[tuple[int, int]]:
    """The (feed, item) pairs of the links a query returns."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute(sql).fetchall()
    return {(int(m.group(1)), int(m.group(2))) for (link,) in rows if (m := _LINK.search(link.encode()))}


def _alerted(db: Path) -> set[tuple[int, int]]:
    """The items the daemon decided to alert on."""
    return _keys(db, "SELECT i.link FROM matches m JOIN items i ON i.id = m.item_id WHERE m.decision = 'alerted'")


def _settled(db: Path, sink: SmtpSink, appeared: dict[tuple[int, int], float]) -> bool:
    """Every new item stored, and every one alerted on delivered."""
    stored = _keys(db, "SELECT link FROM items")
    return appeared.keys() <= stored and _alerted(db) & appeared.keys() <= _arrivals(sink, appeared).keys()


def _config(tmp: Path, farm: FarmClient, interval: float, mailto: str) -> Path:
    (tmp / "rules").mkdir()
    (tmp / "rules" / "bench.toml").write_text(RULE)
    feeds = "".join(
        f'[[feed]]\nid = "f{i}"\nurl = "{farm.url(i)}"\ninterval = "{interval:g}s"\n' for i in range(farm.feeds)
    )
    path = tmp / "config.toml"
    path.write_text(
        f"""rules_dir = "rules"
[database]
url = "sqlite:///{tmp}/w.db"
[http]
max_per_host = 32
max_connections = 64
[poll]
check_every = "1s"
backlog_max_age = "1s"
max_articles_per_poll = 0
[delivery]
default_channels = ["email"]
check_every = "1s"
[log]
level = "warning"
[channels.email]
type = "apprise"
urls = ["{mailto}"]
{feeds}"""
    )
    return path


def measure(feeds: int, interval: float, minutes: float, items: int = 50) -> Figures:
    rng = random.Random(7)
    with Farm(feeds, items) as farm, SmtpSink(keep=True) as sink, tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        mailto = f"mailto://127.0.0.1:{sink.port}?mode=insecure&from=bench@example.test&to=alerts@example.test"
        config = _config(tmp, farm, interval, mailto)
        start = time.monotonic()
        daemon = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "watcher"), "-c", str(config), "run"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "daemon.log", "w"),  # noqa: SIM115 (closed with the process)
        )
        try:
            while _stored(tmp / "w.db") < feeds * items:
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited: {(tmp / 'daemon.log').read_text()[-2000:]}")
                time.sleep(1)
            first_cycle = time.monotonic() - start
            # New items at a steady rate: about one per feed per ten intervals, at least one a second.
            period = minutes * 60
            gap = min(1.0, interval * 10 / feeds)
            appeared: dict[tuple[int, int], float] = {}
            extra = [0] * feeds
            cpu0, rss0 = _usage(daemon.pid)
            rss_max, requests0, t0 = rss0, farm.stats()["requests"], time.monotonic()
            next_sample = t0
            while (now := time.monotonic()) < t0 + period:
                i = rng.randrange(feeds)
                farm.bump(i)
                appeared[(i, items + extra[i])] = time.time()
                extra[i] += 1
                if now >= next_sample:
                    rss_max = max(rss_max, _usage(daemon.pid)[1])
                    next_sample = now + 5
                time.sleep(max(0.0, gap - (time.monotonic() - now)))
            cpu1, rss1 = _usage(daemon.pid)
            elapsed, requests = time.monotonic() - t0, farm.stats()["requests"] - requests0
            # The last items need up to an interval to be polled, and a moment to be mailed.
            deadline = time.monotonic() + interval + 30
            while time.monotonic() < deadline and not _settled(tmp / "w.db", sink, appeared):
                time.sleep(1)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        arrived = _arrivals(sink, appeared)
        alerted = _alerted(tmp / "w.db") & appeared.keys()
        latencies = sorted(arrived[k] - appeared[k] for k in arrived)
        return Figures(
            feeds=feeds,
            interval_s=interval,
            measured_s=round(elapsed, 1),
            first_cycle_s=round(first_cycle, 1),
            new_items=len(appeared),
            alerted=len(alerted),
            delivered=len(arrived),
            missing=len(alerted - arrived.keys()),
            p50_s=_quantile(latencies, 0.5),
            p99_s=_quantile(latencies, 0.99),
            max_s=_quantile(latencies, 1.0),
            cpu_share=round((cpu1 - cpu0) / elapsed, 3),
            rss_start_mib=round(rss0, 1),
            rss_end_mib=round(rss1, 1),
            rss_max_mib=round(max(rss_max, rss1), 1),
            requests_per_s=round(requests / elapsed, 1),
        )


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return round(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))], 2)


def _arrivals(sink: SmtpSink, appeared: dict[tuple[int, int], float]) -> dict[tuple[int, int], float]:
    """When each new item's message first reached the sink (its link names feed and item)."""
    out: dict[tuple[int, int], float] = {}
    for at, data in list(sink.received):
        for m in _LINK.finditer(data):
            key = (int(m.group(1)), int(m.group(2)))
            if key in appeared and key not in out:
                out[key] = at
    return out


def table(f: Figures) -> Table:
    t = Table(title=f"steady state: {f.feeds} feeds, {f.interval_s:g} s interval, {f.measured_s:g} s measured")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    rows = [
        ("first cycle (history stored)", f"{f.first_cycle_s:g} s", ""),
        ("new items / alerted / delivered", f"{f.new_items} / {f.alerted} / {f.delivered}", ""),
        ("alerted but never delivered", f"{f.missing}", "0"),
        ("latency p50", f"{f.p50_s:g} s", ""),
        ("latency p99", f"{f.p99_s:g} s", f"<= {f.interval_s + 2:g} s"),
        ("latency max", f"{f.max_s:g} s", ""),
        ("CPU, share of one core", f"{f.cpu_share:.1%}", "< 10%"),
        ("RSS start / end / max", f"{f.rss_start_mib:g} / {f.rss_end_mib:g} / {f.rss_max_mib:g} MiB", "< 250 MiB"),
        ("RSS drift over the period", f"{(f.rss_end_mib / f.rss_start_mib - 1):+.1%}", "within 10%"),
        ("farm requests per second", f"{f.requests_per_s:g}", ""),
    ]
    for row in rows:
        t.add_row(*row)
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=60, help="seconds between polls of a feed")
    parser.add_argument("--minutes", type=float, default=5, help="length of the measured period")
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = measure(args.feeds, args.interval, args.minutes, args.items)
    Console().print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
