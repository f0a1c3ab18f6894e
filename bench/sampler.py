"""A sampling profiler across threads that attributes time to the pipeline's stages.

cProfile sees one thread, and the pipeline's stages run in worker threads; so, like py-spy but
with no tool to install, a thread wakes every few milliseconds, reads every other thread's stack
(``sys._current_frames``) and charges the CPU time that thread used since the last look (its own
CPU clock, so a thread waiting on a lock, a queue or a socket is charged nothing) to the stage
of its innermost watcher frame: the stage is the module that asked for the work, whichever
library did it (SQLite under ``store/cluster.py`` is the story stage). The shares are of the CPU
time seen, across all threads.
"""

from __future__ import annotations

import sys
import threading
import time
from types import FrameType

# Innermost watcher module -> stage. Order matters: the first prefix that matches wins.
STAGES = (
    ("watcher/store/cluster", "stories"),
    ("watcher/stories", "stories"),
    ("watcher/store/", "store"),
    ("watcher/match", "match"),
    ("watcher/query", "match"),
    ("watcher/fold", "match"),
    ("watcher/feeds/fetch", "fetch"),
    ("watcher/feeds/article", "pages"),
    ("watcher/feeds/parse", "parse"),
    ("watcher/feeds/normalise", "normalise"),
    ("watcher/notify/", "delivery"),
    ("watcher/", "pipeline"),
)


class StageSampler:
    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: dict[str, float] = {}  # stage -> CPU seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stage-sampler", daemon=True)

    def __enter__(self) -> StageSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def shares(self) -> dict[str, float]:
        total = sum(self.samples.values()) or 1
        return {stage: n / total for stage, n in sorted(self.samples.items(), key=lambda kv: -kv[1])}

    def _run(self) -> None:
        me = threading.get_ident()
        used: dict[int, float] = {}
        while not self._stop.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                try:
                    now = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except OSError:  # the thread ended since the frames were read
                    continue
                before = used.get(ident)
                used[ident] = now
                if before is not None and now > before:
                    stage = _stage(frame)
                    self.samples[stage] = self.samples.get(stage, 0.0) + now - before


def _stage(frame: FrameType) -> str:
    f: FrameType | None = frame
    while f is not None:
        path = f.f_code.co_filename.replace("\\", "/")
        if "/watcher/" in path:
            module = path[path.rindex("/watcher/") + 1 :]
            for prefix, stage in STAGES:
                if module.startswith(prefix):
                    return stage
        f = f.f_back
    return "other"
