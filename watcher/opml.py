"""OPML 2.0 subscription lists <-> feed outlines, for `watcher feeds import` and `export --opml`.

Owns reading and writing the file format only: which outlines are feeds, their titles, URLs and
categories, and watcher's own attributes (id, interval, full text, paused) in a namespace other
readers ignore, so an export imports back unchanged. Must not: validate URLs, choose ids or
touch the database (the CLI and the store do that).

Spec: http://opml.org/spec2.opml. Parsing uses defusedxml when it is installed, else the
standard library, which neither fetches external entities nor expands entity bombs (expat 2.4+).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import cast
from xml.etree import ElementTree as ET

from watcher.errors import ConfigError

NS = "https://github.com/watcher-alerts/watcher/opml"
_ID, _INTERVAL, _FULL_TEXT, _PAUSED = (f"{{{NS}}}{name}" for name in ("id", "interval", "fullText", "paused"))
ET.register_namespace("watcher", NS)


@dataclass(frozen=True, slots=True)
class Outline:
    """One feed of a subscription list. ``id`` and the settings are set only by watcher's exports."""

    url: str
    title: str = ""
    tags: tuple[str, ...] = ()
    id: str | None = None
    interval_seconds: int | None = None
    full_text: bool = False
    paused: bool = False


def _xml_parser() -> Callable[[bytes], ET.Element]:
    try:
        module = importlib.import_module("defusedxml.ElementTree")
    except ImportError:
        return ET.fromstring
    return cast(Callable[[bytes], ET.Element], module.fromstring)


def read_opml(data: bytes, path: Path | str) -> list[Outline]:
    """Every outline with an ``xmlUrl``, in document order; the titles of enclosing folders
    become tags (feed readers file feeds in folders, we route on tags).

    Raises ConfigError naming the file (and the line, for malformed XML).
    """
    try:
        root = _xml_parser()(data)
    except ET.ParseError as exc:
        line, _column = exc.position
        message = str(exc).split(":", 1)[0]  # expat appends "line 3, column 4", which we print first
        raise ConfigError(f"not OPML: malformed XML: {message}", path, line) from None
    except ValueError as exc:  # defusedxml's refusals (DTDs, entities) subclass ValueError
        raise ConfigError(f"not OPML: refused XML: {exc}", path) from None
    if root.tag != "opml":
        raise ConfigError(f"not OPML: the root element is <{root.tag}>, not <opml>", path)
    body = root.find("body")
    if body is None:
        raise ConfigError("not OPML: no <body> element", path)
    return list(_outlines(body, ()))


def _outlines(parent: ET.Element, folders: tuple[str, ...]) -> Iterator[Outline]:
    for node in parent.findall("outline"):
        url = (node.get("xmlUrl") or "").strip()
        title = node.get("title")
        if title is None and node.get(_ID) is None:
            title = node.get("text")  # ``text`` is required, so our exports fill it with the id
        title = (title or "").strip()
        if url:
            yield Outline(
                url=url,
                title=title,
                tags=_unique((*folders, *_categories(node.get("category") or ""))),
                id=(node.get(_ID) or "").strip() or None,
                interval_seconds=_seconds(node.get(_INTERVAL)),
                full_text=node.get(_FULL_TEXT) == "true",
                paused=node.get(_PAUSED) == "true",
            )
        # A folder is an outline without xmlUrl; feeds may also nest under a feed (rare, allowed).
        yield from _outlines(node, (*folders, title) if title and not url else folders)


def _categories(value: str) -> list[str]:
    """OPML 2.0 ``category``: comma-separated, slash-delimited ("/regulator,/uk/cma")."""
    return [c.strip().strip("/") for c in value.split(",") if c.strip().strip("/")]


def _seconds(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def write_opml(outlines: Sequence[tuple[str, Outline]], *, title: str, created_at: datetime) -> bytes:
    """An OPML 2.0 document of ``(id, outline)`` pairs, flat (tags go in ``category``)."""
    root = ET.Element("opml", {"version": "2.0"})
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(created_at)  # RFC 822, as the spec says
    body = ET.SubElement(root, "body")
    for feed_id, o in outlines:
        attrs = {"type": "rss", "text": o.title or feed_id, "xmlUrl": o.url}
        if o.title:
            attrs["title"] = o.title
        if o.tags:
            attrs["category"] = ",".join(o.tags)
        attrs[_ID] = feed_id
        if o.interval_seconds:
            attrs[_INTERVAL] = str(o.interval_seconds)
        if o.full_text:
            attrs[_FULL_TEXT] = "true"
        if o.paused:
            attrs[_PAUSED] = "true"
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
