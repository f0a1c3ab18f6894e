"""Feed text made inert for terminals and logs: control characters and bidi overrides shown as
escapes instead of acted on.

A feed title carrying ``ESC[2J`` would clear an operator's terminal, one carrying U+202E would
display reversed ("Trojan Source", CVE-2021-42574), and a newline would forge a log line. They
are rare in honest feeds and never needed to read one; shown as ``\\x1b``, ``\\u202e``, they tell
the reader someone tried. Messages to channels drop the same characters (``notify/markup``) and
escape the rest for their format.
"""

from __future__ import annotations

import re

# C0 controls (tab and newline kept where ``keep_newlines``), DEL, C1, bidi embeddings, overrides
# and isolates.
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_AND_NEWLINES = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with every control and bidi character replaced by its visible escape."""
    pattern = CONTROLS if keep_newlines else _CONTROLS_AND_NEWLINES
    return pattern.sub(_shown, text) if pattern.search(text) else text
