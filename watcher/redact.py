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
    if parts.username and len(parts.username) >= _MIN_FRAGMENT:
        out.add(parts.username)
    for segment in parts.path.split("/"):
        if len(segment) >= _MIN_FRAGMENT:
            out.add(segment)
    for _, value in parse_qsl(parts.query):
        if len(value) >= _MIN_FRAGMENT:
            out.add(value)
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
