"""Saved articles and feeds on disk -> Items, for `watcher rules test`. No network.

Rule authors keep examples as they found them: a page saved from the browser, a newsletter
(.eml), a pasted text, a JSON export, a saved feed. Each becomes one or more Items that the
daemon's own matcher sees exactly as it would see them from a feed.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from watcher.errors import ConfigError, ParseError
from watcher.feeds.article import extract_article
from watcher.feeds.normalise import canonical_link, html_to_text, normalise_feed
from watcher.feeds.parse import parse_feed
from watcher.model import Item

TEXT = {".txt", ".md", ".markdown"}
HTML = {".html", ".htm"}
EMAIL = {".eml"}
JSON = {".json", ".jsonl"}
FEEDS = {".xml", ".rss", ".atom"}
SUPPORTED = TEXT | HTML | EMAIL | JSON | FEEDS
META_SUFFIX = ".meta.json"  # written by `watcher save` beside the saved body


@dataclass(frozen=True, slots=True)
class Input:
    """One item read from a file; ``name`` says where (``path`` or ``path#3`` for the 3rd entry)."""

    name: str
    path: Path
    item: Item


def input_files(paths: list[Path]) -> list[Path]:
    """Expand folders (recursively) to supported files, sorted. Raises ConfigError for bad paths."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) and not p.name.endswith(META_SUFFIX))
            )
        elif path.is_file():
            if not _kind(path):
                raise ConfigError(f"unsupported file type (use {', '.join(sorted(SUPPORTED))})", path)
            out.append(path)
        else:
            raise ConfigError("no such file or folder", path)
    return out


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return suffix if suffix in SUPPORTED else None


def read_inputs(path: Path) -> Iterator[Input]:
    """Read one file. Raises ConfigError (bad input) naming the file."""
    suffix = path.suffix.lower()
    meta = _sidecar(path)
    try:
        if suffix in TEXT:
            yield _one(path, _from_text(path.read_text(encoding="utf-8"), meta))
        elif suffix in HTML:
            article = extract_article(path.read_bytes(), meta.get("final_url"))
            yield _one(path, {"title": article.title, "text": article.text, "link": meta.get("final_url")})
        elif suffix in EMAIL:
            yield _one(path, _from_email(path.read_bytes()))
        elif suffix == ".jsonl":
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    yield _one(path, _object(json.loads(line), path, n), f"{path}#{n}", n)
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            records = data if isinstance(data, list) else [data]
            for n, record in enumerate(records, start=1):
                name = f"{path}#{n}" if isinstance(data, list) else str(path)
                yield _one(path, _object(record, path, n), name, n)
        elif suffix in FEEDS:
            url = meta.get("final_url") or path.resolve().as_uri()
            parsed = parse_feed(path.read_bytes(), feed_id=path.stem, url=url, headers=meta.get("headers") or {})
            items, _ = normalise_feed(parsed, path.stem)
            for n, item in enumerate(items, start=1):
                yield Input(f"{path}#{n}", path, item)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ParseError) as exc:
        raise ConfigError(f"cannot read: {exc}", path) from None


def _sidecar(path: Path) -> dict[str, Any]:
    meta = path.with_name(path.name + META_SUFFIX)
    if meta.is_file():
        try:
            loaded = json.loads(meta.read_text(encoding="utf-8"))
            return loaded if isinstance(loaded, dict) else {}
        except (OSError, json.JSONDecodeError):
            return {}
    return {}


def _from_text(text: str, meta: dict[str, Any]) -> dict[str, Any]:
    lines = text.strip().splitlines()
    title = lines[0].lstrip("# ").strip() if lines else ""
    return {"title": title, "text": "\n".join(lines[1:]).strip(), "link": meta.get("final_url")}


def _from_email(raw: bytes) -> dict[str, Any]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = body.get_content()
        text = html_to_text(content) if body.get_content_type() == "text/html" else str(content)
    return {"title": str(message.get("subject", "")), "text": text.strip(), "published": message.get("date")}


def _object(record: Any, path: Path, n: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ConfigError(f"record {n}: expected an object with title and text", path)
    return {
        "title": str(record.get("title", "")),
        "text": str(record.get("text") or record.get("summary") or ""),
        "content": str(record.get("content") or ""),
        "link": record.get("link") or record.get("url"),
        "published": record.get("published"),
    }


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _one(path: Path, fields: dict[str, Any], name: str | None = None, n: int = 1) -> Input:
    key = hashlib.sha256(f"{path}#{n}".encode()).hexdigest()[:16]
    item = Item(
        feed_id="saved",
        item_key=key,
        title=html_to_text(fields.get("title") or "").replace("\n", " "),
        link=canonical_link(fields.get("link")),
        summary=fields.get("text") or "",
        content=fields.get("content") or "",
        published_at=_date(fields.get("published")),
    )
    return Input(name or str(path), path, item)
