"""Keep secrets out of text: logs, stored errors and CLI output pass through a Redactor.

Secrets are the values of channel URLs and database passwords. We redact the whole URL and the
parts of it that identify the secret on their own (userinfo password, long path segments and
query values), because libraries often print a URL piecewise or masked differently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
# Shorter fragments are too likely to be ordinary words ("mail", "json") to mask safely.
_MIN_FRAGMENT = 6
_AUTH_SCHEMES = frozenset({"bearer", "basic", "digest", "token"})
# apprise URL options that say how to send, never who may or to whom: masking their values
# ("insecure", "markdown") would blank ordinary words all over the logs. Addresses (from, to, cc)
# stay masked: they are personal data.
_PLAIN_PARAMS = frozenset(
    {"mode", "format", "overflow", "cto", "rto", "verify", "method", "priority", "image", "footer"}
    | {"avatar", "emojis", "store", "tz", "lang"}
)


def secret_fragments(url: str) -> set[str]:
    """Return the URL and each fragment of it that is secret on its own."""
    out = {url}
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    if parts.password:
        out.add(parts.password)
        out.add(unquote(parts.password))
    # Beside a password the user is a login name ("watcher"), and masking it would mask that word
    # in every log line; alone it is often the token itself (``json://TOKEN@host``), and a login
    # that is an address is personal data.
    login = unquote(parts.username or "")
    if len(login) >= _MIN_FRAGMENT and (not parts.password or "@" in login):
        out.update({parts.username or "", login})
    for segment in parts.path.split("/"):
        if len(segment) >= _MIN_FRAGMENT:
            out.add(segment)
            out.add(unquote(segment))
    for key, value in parse_qsl(parts.query):
        if len(value) >= _MIN_FRAGMENT and key.lower() not in _PLAIN_PARAMS:
            out.add(value)
            # apprise sends ``?+Authorization=Bearer%20TOKEN`` as a header: the token alone leaks
            # too when a library prints the header's parts.
            out.update(w for w in value.split() if len(w) >= _MIN_FRAGMENT and w.lower() not in _AUTH_SCHEMES)
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        out.add(parts.netloc)
    return {s for s in out if s}


class Redactor:
    """Replace every known secret in a text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets.update(s for s in secrets if s)
        # Longest first, so a URL is masked whole before its fragments are.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def add_urls(self, urls: Iterable[str]) -> None:
        frags: set[str] = set()
        for url in urls:
            frags |= secret_fragments(url)
        self.add(frags)

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)
