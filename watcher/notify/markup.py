"""Make feed text safe for each message format: the escaping and the filters templates use.

Pure: no I/O. Everything from a feed is untrusted, so every value a template prints goes through
the format's ``FINALIZE`` function, and only the ``FILTERS`` below emit markup, built from escaped
parts (see ``render`` for the rules per format, and docs/notifications.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from markupsafe import Markup, escape

from watcher.inert import CONTROLS

SNIPPET_CHARS = 400
TITLE_CHARS = 250

# C0/C1 controls (tab and newline kept) and the bidi overrides and isolates, which can make a
# headline display reversed text ("Trojan Source", CVE-2021-42574): the same set the terminal and
# the logs show as escapes.
_CONTROL = CONTROLS
_SPACE = re.compile(r"\s+")
_JOINER = "\u2060"
_BROADCAST = re.compile(r"@(?=(?:everyone|here|channel|all)\b)", re.IGNORECASE)
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")
# A "<" that could open an HTML tag, an autolink or a Slack <!channel>/<@U1>/<url|label>; "](" opens
# a link destination. Used on titles only: bodies are escaped properly for their format.
_TITLE_MARKUP = re.compile(r"<(?=[A-Za-z!/?@#])|\](?=\()")
# CommonMark (and Slack mrkdwn) punctuation with meaning anywhere in a line. "_" only at a word
# edge: intraword underscores never emphasise (CommonMark 6.2), so snake_case stays readable.
# "!#()[]" cost nothing to escape: apprise's Slack converter emits them bare.
_MD_INLINE = re.compile(r"[\\`*\[\]<>~|!#()]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# Punctuation with meaning only at the start of a line: bullets, setext underlines, "1." lists.
_MD_LINE_START = re.compile(r"^(\s*)(?:([-+=])|(\d{1,9})\.)")
_MARKED = re.compile(r"\*\*(.+?)\*\*")
_URL_UNSAFE = re.compile(r"[\s<>\\`|\x00-\x1f\x7f]")


def _clean(text: str) -> str:
    return _CONTROL.sub("", text)


def one_line(text: str, limit: int = 300) -> str:
    text = _clean(_SPACE.sub(" ", text)).strip()  # CR, tab, newline: spaces; then drop the rest
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cap_snippet(text: str) -> str:
    text = _clean(text).strip()
    text = re.sub(r"\n\s*\n+", "\n", text)
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"


def plain_title(text: str, fmt: str) -> str:
    text = _BROADCAST.sub("@" + _JOINER, one_line(text, TITLE_CHARS))
    # A text title reaches markup services through apprise's own text escaping; a markdown or
    # html one is taken as written by services that fold the title into the body.
    return text if fmt == "text" else _TITLE_MARKUP.sub(lambda m: m.group() + _JOINER, text)


def _md_escape(value: object, *, at_line_start: bool = True) -> str:
    """CommonMark-escape one value so it reads as literal text wherever a template puts it.

    Values are flattened to one line, so block syntax (headings, quotes, lists, tables) can only
    start at the value's first character; ``.``, ``-``, ``+`` and ``=`` are escaped only there,
    which keeps headlines free of backslashes that Slack would show.
    """
    text = _MD_INLINE.sub(lambda m: "\\" + m.group(), _clean(_SPACE.sub(" ", str(value))))
    if at_line_start:
        text = _MD_LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[2] else f"{m[1]}{m[3]}\\.", text)
    return _MENTION.sub("@" + _JOINER, text)


def _web_url(url: object) -> str | None:
    """The URL if it is an absolute http(s) URL with a host: the only kind we ever link."""
    if not isinstance(url, str) or _CONTROL.search(url) or any(c.isspace() for c in url.strip()):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    return url.strip() if parts.scheme.lower() in {"http", "https"} and parts.hostname else None


class _Trusted(str):
    """Markdown a filter built from escaped parts; the markdown finalize prints it as it is."""


def _split_marked(snippet: object) -> Iterator[tuple[str, bool]]:
    """The snippet's pieces, each with whether our matcher marked it. A feed's own ``**x**``
    reads as marked too: the worst it can do is make its own (escaped) words bold."""
    text, pos = "" if snippet is None else str(snippet), 0
    for m in _MARKED.finditer(text):
        yield text[pos : m.start()], False
        yield m.group(1).strip(), True
        pos = m.end()
    yield text[pos:], False


def _finalize_text(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str):
        return _BROADCAST.sub("@" + _JOINER, _clean(value))
    return value


def _finalize_html(value: object) -> object:
    # Markup (our filters, or |safe) must reach the autoescaper as Markup, or it is escaped again.
    if value is None:
        return ""
    if hasattr(value, "__html__") or not isinstance(value, str):
        return value
    # html is meant for e-mail, but a channel may send it to a chat service (apprise converts it
    # for Slack or Teams), where "@channel" pings everyone: the joiner is invisible in a mail.
    return _BROADCAST.sub("@" + _JOINER, _clean(value))


def _finalize_markdown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, _Trusted) or hasattr(value, "__html__"):  # our filters, or an explicit |safe
        return str(value)
    return _md_escape(value)


def _link_text(label: object, url: object, style: str = "") -> str:
    # Plain-text URLs go in angle brackets (RFC 3986, appendix C).
    return f"{label} <{url}>" if url and url != label else str(label)


def _link_markdown(label: object, url: object, style: str = "") -> _Trusted:
    web = _web_url(url)
    if web is None:
        shown = f" ({_md_escape(url, at_line_start=False)})" if url and url != label else ""
        return _Trusted(_md_escape(label) + shown)
    # An angle-bracket destination may hold anything but <, > and line breaks; percent-encode
    # those, the backslash and backtick (CommonMark escapes) and | (Slack's <url|label> separator).
    dest = _URL_UNSAFE.sub(lambda m: quote(m.group(), safe=""), web)
    return _Trusted(f"[{_md_escape(label)}](<{dest}>)")


def _html_text(value: object) -> Markup:
    """Escaped text for html, with controls dropped and broadcast mentions broken (see
    ``_finalize_html``): the filters build markup from these, bypassing the finalizer."""
    if hasattr(value, "__html__"):
        return Markup(value)
    return escape(_BROADCAST.sub("@" + _JOINER, _clean("" if value is None else str(value))))


def _link_html(label: object, url: object, style: str = "") -> Markup:
    web = _web_url(url)
    if web is None:
        return _html_text(label) + (Markup(" (%s)") % _html_text(url) if url and url != label else "")
    attrs = Markup(' style="%s"') % style if style else Markup("")
    return Markup('<a href="%s"%s>%s</a>') % (web, attrs, _html_text(label))


def _highlight_text(snippet: object) -> str:
    return "" if snippet is None else str(snippet)


def _highlight_markdown(snippet: object) -> _Trusted:
    parts = []
    for index, (piece, marked) in enumerate(_split_marked(snippet)):
        text = _md_escape(piece, at_line_start=index == 0)
        parts.append(f"**{text}**" if marked and text else text)
    return _Trusted("".join(parts))


def _highlight_html(snippet: object) -> Markup:
    parts = _split_marked(snippet)
    return Markup("").join(Markup("<strong>%s</strong>") % _html_text(p) if m else _html_text(p) for p, m in parts)


FILTERS: dict[str, dict[str, Any]] = {
    "text": {"link": _link_text, "highlight": _highlight_text},
    "markdown": {"link": _link_markdown, "highlight": _highlight_markdown},
    "html": {"link": _link_html, "highlight": _highlight_html},
}


FINALIZE = {"text": _finalize_text, "markdown": _finalize_markdown, "html": _finalize_html}
