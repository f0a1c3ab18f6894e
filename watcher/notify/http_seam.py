"""The HTTP seam. apprise's HTTP plugins call ``requests.request(...)`` and keep only a log line
("error=429"); the response and its Retry-After header never reach the caller (apprise 2.3:
plugins/custom_json.py ``send``, plugins/slack.py ``_send``). So this module wraps
``requests.adapters.HTTPAdapter.send`` once, at import, and records the status, Retry-After and,
for a request that got no answer, the kind of failure, into the exchange list of the apprise URL
being sent, if there is one. The list lives in a contextvar that our wrapper of that URL's
``notify`` sets: apprise calls each plugin's ``notify`` in a worker thread running a copy of the
caller's context, so each URL's requests land in its own list, and any other use of requests in
the process (no list set) passes straight through. Nothing recorded holds a URL, a header other
than Retry-After/Date, or a body.

Nobody else honours Retry-After. apprise 2.3 neither retries nor sleeps on a 429: Slack's
``_send`` logs "error=429" and returns False, and its only sleep is ``throttle()``, a fixed 1.2 s
gap between two requests of one plugin instance (url.py), blind to the peer's answer; apprise's
generic retry (``?retry=N&wait=S``, none by default) waits a fixed S (dispatch.py RetryRunner).
requests' default adapter makes no retries. So the wait goes back to the outbox, which schedules.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import requests.adapters

from watcher.httpdate import parse_retry_after

# Capped: a peer asking for more than a day is more likely misconfigured than right, and the
# outbox's own backoff still applies on top.
_MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP request an apprise plugin made: its status, or why it got none. Never its URL."""

    status: int | None  # None: no response at all
    retry_after_seconds: float | None = None
    failure: str | None = None  # with no response: "connect", "connect-timeout", "read-timeout", "tls", "other"
    detail: str | None = None  # the OS error under a failure, e.g. "[Errno 111] Connection refused"

    @property
    def is_failure(self) -> bool:
        return self.status is None or self.status >= 400


# The exchange list of the apprise URL (and attempt) being sent; None outside a delivery.
_active_exchanges: contextvars.ContextVar[list[Exchange] | None] = contextvars.ContextVar(
    "watcher_deliver_exchanges", default=None
)


_Send = Callable[..., requests.Response]


def _observe_send(send: _Send) -> _Send:
    """Wrap ``HTTPAdapter.send``: record each exchange into the active list, change nothing else."""

    def observed_send(
        self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        exchanges = _active_exchanges.get()
        if exchanges is None:
            return send(self, request, *args, **kwargs)
        try:
            response = send(self, request, *args, **kwargs)
        except requests.RequestException as exc:
            exchanges.append(Exchange(None, failure=_failure_kind(exc), detail=_os_error(exc)))
            raise
        headers = response.headers
        wait = retry_after(headers.get("Retry-After"), headers.get("Date"))
        exchanges.append(Exchange(response.status_code, wait))
        return response

    observed_send.watcher_observed = True  # type: ignore[attr-defined]
    return observed_send


# Once per process, even if this module is imported twice (importlib.reload in a REPL).
if not getattr(requests.adapters.HTTPAdapter.send, "watcher_observed", False):
    requests.adapters.HTTPAdapter.send = _observe_send(requests.adapters.HTTPAdapter.send)  # type: ignore[method-assign]


def _failure_kind(exc: BaseException) -> str:
    # ConnectTimeout is both a ConnectionError and a Timeout; SSLError is a ConnectionError.
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect-timeout"
    if isinstance(exc, requests.exceptions.Timeout):
        return "read-timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connect"
    return "other"


def _os_error(exc: BaseException) -> str | None:
    """The OS error at the root of a requests exception, as "[Errno N] text", or None.

    Only errno and strerror are kept: the exception texts around them (urllib3's MaxRetryError,
    NewConnectionError) carry the host and the request path, which may hold a token.
    """
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None and current.strerror:
            return f"[Errno {current.errno}] {current.strerror}"
        # requests wraps urllib3's MaxRetryError in args[0]; that keeps its cause in .reason.
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args[:1]]
    return None


def retry_after(value: str | None, date: str | None) -> float | None:
    """A response's Retry-After in seconds, clamped to 24 h: a peer asking for more than a day is
    more likely misconfigured than right, and the outbox's own backoff still applies on top."""
    seconds = parse_retry_after(value, datetime.now(UTC), date=date)
    return None if seconds is None else min(seconds, _MAX_RETRY_AFTER_SECONDS)


def observe_notify(service: Any) -> list[list[Exchange]]:
    """Make ``service`` record its HTTP exchanges; return its list of attempts (one list each).

    apprise calls ``notify`` once per attempt (more with ``?retry=N``), in the worker thread and
    context copy it runs that URL in, so the contextvar set here is seen by that URL's requests
    alone. The service is ours: built by ``deliver`` for this one send, then dropped.
    """
    attempts: list[list[Exchange]] = []
    notify = service.notify

    def observed_notify(*args: Any, **kwargs: Any) -> Any:
        exchanges: list[Exchange] = []
        attempts.append(exchanges)
        token = _active_exchanges.set(exchanges)
        try:
            return notify(*args, **kwargs)
        finally:
            _active_exchanges.reset(token)

    service.notify = observed_notify
    return attempts
