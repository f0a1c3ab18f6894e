"""The health and metrics endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

Owns: answering probes and scrapes. A small WSGI app on the standard library's server, in a
thread of its own, so a probe is answered even while the event loop is busy with a long poll
(a liveness probe that times out during a first poll would get a healthy daemon restarted).
``/healthz`` says the process is alive; ``/readyz`` asks the daemon (database reachable,
scheduler running, rules loaded) and answers 503 with the reason otherwise; ``/metrics`` is the
Prometheus text format.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog

from watcher.metrics import CONTENT_TYPE, Metrics

log = structlog.get_logger("watcher.server")

Ready = Callable[[], str | None]  # None when ready, else why not


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the log


class _Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scrape never holds up a probe, nor the process's exit


class HealthServer:
    def __init__(self, host: str, port: int, metrics: Metrics, ready: Ready) -> None:
        self.metrics, self.ready, self.host = metrics, ready, host
        self._server = make_server(host, port, self._app, server_class=_Threaded, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("server.listening", address=f"{self.host}:{self.port}", paths="/healthz /readyz /metrics")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            status, body, kind = "200 OK", b"ok\n", "text/plain"
        elif path == "/readyz":
            try:
                reason = self.ready()
            except Exception as exc:  # a probe must answer, whatever went wrong in the check
                reason = f"readiness check failed: {type(exc).__name__}"
            status = "200 OK" if reason is None else "503 Service Unavailable"
            body, kind = (b"ready\n" if reason is None else f"not ready: {reason}\n".encode()), "text/plain"
        elif path == "/metrics":
            status, body, kind = "200 OK", self.metrics.render(), CONTENT_TYPE
        else:
            status, body, kind = "404 Not Found", b"not found: /healthz, /readyz, /metrics\n", "text/plain"
        start(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]
