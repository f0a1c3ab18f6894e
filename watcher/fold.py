"""Fold text for matching: one canonical form shared by items and rule phrases.

NFKC, case-folded, accents removed ("Autorité" = "autorite"), and every run of characters that
is not a letter or digit becomes one space, so typographic quotes and dashes, hyphens and
punctuation all compare equal to a space ("invitation-to-comment" = "invitation to comment").
Words are then whole when a phrase is matched between spaces. Pure; no I/O.
"""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Return ``text`` folded to lower-case ASCII-ish words separated by single spaces."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", text).strip()
