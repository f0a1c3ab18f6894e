"""A fetched web page -> its main text (the article, not menus and footers). Pure; no I/O.

trafilatura does the extraction; it is the best-kept extractor for news and government pages
and falls back to a readability-style pass on its own. We keep only title and plain text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trafilatura

from watcher.feeds.normalise import html_to_text

# trafilatura logs every page it finds too short or odd at WARNING; that is not news for us.
logging.getLogger("trafilatura").setLevel(logging.ERROR)
logging.getLogger("htmldate").setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class ArticleText:
    title: str
    text: str


def extract_article(html: bytes | str, url: str | None = None) -> ArticleText:
    """Extract the main text of a page. Falls back to all visible text when extraction finds none."""
    if isinstance(html, bytes):
        html = html.decode("utf-8", errors="replace")
    text = trafilatura.extract(html, url=url, include_comments=False, include_tables=True, favor_precision=True)
    metadata = trafilatura.extract_metadata(html, default_url=url)
    title = (metadata.title if metadata is not None and metadata.title else "") or ""
    if not text:
        text = html_to_text(html)
    return ArticleText(title=" ".join(title.split()), text=text.strip())
