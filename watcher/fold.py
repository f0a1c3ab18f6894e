"""Fold text for matching: one canonical form shared by items and rule phrases.

NFKC, case-folded, accents removed ("Autorité" = "autorite"), and every run of characters that
is not a letter or digit becomes one space, so typographic quotes and dashes, hyphens and
punctuation all compare equal to a space ("invitation-to-comment" = "invitation to comment").
Words are then whole when a phrase is matched between spaces. Chinese and Japanese characters
and Hangul syllables count as one word each. Pure; no I/O.
"""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+")
# Scripts written without spaces between words (Han, Hiragana, Katakana) and Hangul, whose
# particles attach to nouns (공정위는 = "the KFTC" + topic marker): each character is a word,
# so a phrase matches inside a run of them ("公正取引委員会" in "公正取引委員会は…").
_UNSPACED = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")


def fold(text: str) -> str:
    """Return ``text`` folded to lower-case ASCII-ish words separated by single spaces."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
        text = _UNSPACED.sub(r" \1 ", unicodedata.normalize("NFC", text))
    return _NON_WORD.sub(" ", text).strip()
