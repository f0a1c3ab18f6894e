"""The exception tree. Every error a user can act on is one of these.

Foreign exceptions are converted where they happen (``raise ParseError(...) from exc``);
above that boundary code catches these families, never bare ``Exception``.
Messages never contain secrets: they name a channel, not its URL.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

# Line breaks, other C0/C1 controls and bidi overrides: the set ``watcher.inert`` shows as escapes.
# Repeated here because this module imports nothing from watcher.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def one_line(message: str) -> str:
    """``message`` with line breaks and controls shown as escapes.

    Error messages quote what the file says (a key, a value, a list name), and a key may hold a
    newline: ``path:line: message`` must stay one line, for editors and log shippers alike.
    """

    def shown(m: re.Match[str]) -> str:
        code = ord(m.group(0))
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNPRINTABLE.sub(shown, message) if _UNPRINTABLE.search(message) else message


class WatcherError(Exception):
    """Root of every error watcher raises on purpose."""


class ConfigError(WatcherError):
    """A config file problem, printed as ``path:line: message``."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        message = one_line(message)
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class RuleError(ConfigError):
    """A rule file problem; the message already names the rule when there is one.

    ``column`` is set for query errors, printed as ``path:line:column:``; ``context`` holds the
    query with a caret under the column, for the lines after the error line.
    """

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        line: int | None = None,
        rule_id: str | None = None,
        *,
        column: int | None = None,
        context: str = "",
    ):
        super().__init__(message, path, line)
        self.rule_id = rule_id
        self.column = column
        self.context = context

    def __str__(self) -> str:
        if self.column is not None and self.path is not None and self.line is not None:
            return f"{self.path}:{self.line}:{self.column}: {self.message}"
        return super().__str__()


class FeedError(WatcherError):
    """A feed could not be fetched or understood. Stored in ``feeds.last_error``."""

    def __init__(self, feed_id: str, url: str, message: str):
        super().__init__(message)
        self.feed_id = feed_id
        self.url = url
        self.message = message

    def __str__(self) -> str:
        return self.message


class FetchFailure(enum.StrEnum):
    """The closed set every HTTP failure maps to (see ``feeds.fetch.classify``)."""

    TIMEOUT = "timeout"
    NETWORK = "network"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    INVALID_URL = "invalid_url"


class FetchError(FeedError):
    """Fetching failed. ``retry_after_seconds`` is set when the server said when to come back."""

    def __init__(
        self,
        feed_id: str,
        url: str,
        message: str,
        failure: FetchFailure,
        *,
        status: int | None = None,
        retry_after_seconds: float | None = None,
    ):
        super().__init__(feed_id, url, message)
        self.failure = failure
        self.status = status
        self.retry_after_seconds = retry_after_seconds


class ParseError(FeedError):
    """The body is not a feed we can read."""


class StoreError(WatcherError):
    """The database refused or could not be reached."""


class DeliveryError(WatcherError):
    """A notification could not be delivered to ``target`` (a channel name, never a URL)."""

    def __init__(self, target: str, message: str, *, recoverable: bool = True):
        super().__init__(message)
        self.target = target
        self.message = message
        self.recoverable = recoverable

    def __str__(self) -> str:
        return f"channel {self.target!r}: {self.message}"
