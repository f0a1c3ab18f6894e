"""Structured logs: events with fields, to stderr, as readable lines or JSON. Secrets are masked.

Every event passes through the redactor last, so a secret that slipped into an error message
(a library echoing a webhook URL) is masked before it reaches a terminal or a log shipper.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from watcher.inert import inert
from watcher.redact import Redactor

_current = Redactor()


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Masked, then made inert: a feed's title may carry terminal escapes or a forged newline.
    for key, value in list(event.items()):
        if isinstance(value, str) and key != "exception":
            event[key] = inert(_current(value), keep_newlines=False)
        elif isinstance(value, str):
            event[key] = _current(value)
    return event


def configure_logging(
    level: str = "info",
    fmt: str = "console",
    *,
    redactor: Redactor | None = None,
    stream: TextIO | None = None,
) -> None:
    """Set up structlog (and stdlib logging for libraries) once per process or reload."""
    global _current
    if redactor is not None:
        _current = redactor
    out: TextIO = stream or _Stderr()  # type: ignore[assignment]
    numeric = logging.getLevelName(level.upper())
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if fmt == "json" else structlog.processors.StackInfoRenderer(),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries (apprise, httpx, apscheduler) log through stdlib; keep them quiet unless debugging,
    # and never let them print request URLs at INFO.
    logging.basicConfig(level=logging.WARNING, stream=out, format="%(levelname)s %(name)s: %(message)s", force=True)
    for name in ("httpx", "httpcore", "apprise", "apscheduler", "alembic"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_StdlibRedactFilter())


class _Stderr:
    """Whatever sys.stderr is at the moment of writing (test runners and daemons swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class _StdlibRedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _current(record.getMessage())
        record.args = None
        return True
