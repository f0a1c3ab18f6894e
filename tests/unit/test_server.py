"""The health server on its own: what each path answers, and readiness saying why not."""

from __future__ import annotations

import urllib.error
import urllib.request

from watcher.metrics import Metrics
from watcher.server import HealthServer


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def test_paths_and_readiness_reason() -> None:
    reason: list[str | None] = ["database unreachable: connection refused"]
    metrics = Metrics()
    metrics.polls.labels("cma-news", "updated").inc()
    server = HealthServer("127.0.0.1", 0, metrics, lambda: reason[0])
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert _get(f"{base}/healthz")[0] == 200
        assert _get(f"{base}/readyz")[::2] == (503, "not ready: database unreachable: connection refused\n")
        reason[0] = None
        assert _get(f"{base}/readyz")[::2] == (200, "ready\n")
        status, kind, text = _get(f"{base}/metrics")
        assert status == 200 and kind.startswith("text/plain; version=0.0.4")
        assert 'watcher_feed_polls_total{feed="cma-news",result="updated"} 1.0' in text
        assert _get(f"{base}/nope")[0] == 404
    finally:
        server.stop()


def test_a_failing_check_is_a_503_not_a_crash() -> None:
    def broken() -> str | None:
        raise RuntimeError("boom")

    server = HealthServer("127.0.0.1", 0, Metrics(), broken)
    server.start()
    try:
        status, _, text = _get(f"http://127.0.0.1:{server.port}/readyz")
        assert status == 503 and "readiness check failed: RuntimeError" in text
    finally:
        server.stop()
