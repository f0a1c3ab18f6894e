"""The relevance corpus: load and validate ``corpus/*.jsonl``, split it, and turn records into Items.

The split is not chosen by anyone: an item is held out when a hash of its id says so
(``is_held_out``), so adding items never moves old ones and nobody picks where a hard case lands.
Rule changes are tuned on the tuning part only; see CORPUS.md for how that is kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from watcher.model import Item

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"

KINDS = ("regulator", "press", "trade", "blog")
AUTHORITIES = (
    "cma", "ftc", "doj", "ec", "bundeskartellamt", "autorite", "agcm", "acm", "cnmc", "jftc", "kftc",
    "accc", "cci", "cade", "samr", "competition-bureau", "other",
)  # fmt: skip
RELEVANT_ACTIONS = (
    "invitation-to-comment", "phase-1", "phase-2", "article-22", "statement-of-objections",
    "investigation", "request-for-information", "market-study", "6b-study", "second-request",
    "complaint", "trial", "prohibition", "remedies", "clearance", "appeal", "settlement", "fine",
    "designation", "consultation-response", "partnership", "investment", "acquisition", "acqui-hire",
)  # fmt: skip
NEGATIVE_KINDS = (
    "other-cma", "non-tech-competition", "consumer-protection", "privacy", "ai-product", "ai-funding",
    "non-tech-merger", "tech-business", "ai-policy", "job-ad", "other",
)  # fmt: skip
REQUIRED = ("id", "title", "link", "date", "lang", "kind", "text", "relevant", "action")
# Share of the corpus held out; the rest is for tuning.
HELD_OUT_PER_MILLE = 400
# The feeds whose entries carry a title only: their text is the linked page, matched as `article`.
TITLE_ONLY_FEEDS = ("cma-cases", "cma-mergers")


class CorpusError(ValueError):
    """A record that breaks CORPUS.md: ``path:line: message``."""


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    title: str
    link: str
    date: datetime
    lang: str
    kind: str
    text: str
    relevant: bool
    authority: str | None
    action: str
    feed: str | None = None
    note: str = ""

    @property
    def split(self) -> str:
        return "heldout" if is_held_out(self.id) else "tuning"

    def item(self) -> Item:
        """The record as the pipeline would see it after normalisation (and the page fetch)."""
        feed = self.feed or f"{self.kind}-sample"
        on_page = self.feed in TITLE_ONLY_FEEDS
        return Item(
            feed_id=feed,
            item_key=self.id,
            title=self.title,
            link=self.link,
            summary="" if on_page else self.text,
            content="",
            published_at=self.date,
            article=self.text if on_page else "",
        )

    @property
    def feed_tags(self) -> tuple[str, ...]:
        return {"regulator": ("regulator",), "press": ("news",), "trade": ("news", "trade"), "blog": ("blog",)}[
            self.kind
        ]


def is_held_out(record_id: str) -> bool:
    digest = hashlib.sha256(record_id.encode()).hexdigest()
    return int(digest[:8], 16) % 1000 < HELD_OUT_PER_MILLE


def load_corpus(directory: Path = CORPUS_DIR) -> list[Record]:
    """Every record of every ``*.jsonl`` file, validated; raises CorpusError on the first problem."""
    records: list[Record] = []
    seen: dict[str, str] = {}
    pages: dict[str, str] = {}
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{where}: not JSON: {exc}") from exc
            record = _record(raw, where)
            if record.id in seen:
                raise CorpusError(f"{where}: id {record.id!r} already used at {seen[record.id]}")
            seen[record.id] = where
            page = record.link.rstrip("/")
            if page in pages:  # one record per page: a page in both parts would leak held-out text
                raise CorpusError(f"{where}: {record.id}: link already used at {pages[page]}")
            pages[page] = where
            records.append(record)
    return records


def _record(raw: object, where: str) -> Record:
    if not isinstance(raw, dict):
        raise CorpusError(f"{where}: a record is a JSON object")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise CorpusError(f"{where}: missing {', '.join(missing)}")
    rid = str(raw["id"])

    def bad(message: str) -> CorpusError:
        return CorpusError(f"{where}: {rid}: {message}")

    if raw["kind"] not in KINDS:
        raise bad(f"kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
    authority = raw.get("authority")
    if authority is not None and authority not in AUTHORITIES:
        raise bad(f"authority {authority!r} is not a known slug")
    if not isinstance(raw["relevant"], bool):
        raise bad("relevant is true or false")
    if raw["relevant"] and raw["action"] not in RELEVANT_ACTIONS:
        raise bad(f"action {raw['action']!r} is not a relevant action")
    if not raw["relevant"] and (raw["action"] not in NEGATIVE_KINDS or authority is not None):
        raise bad("a negative has a negative kind as action and no authority")
    if not urlsplit(str(raw["link"])).netloc:
        raise bad("link is not an absolute URL")
    try:
        date = datetime.strptime(str(raw["date"]), "%Y-%m-%d").replace(hour=12, tzinfo=UTC)
    except ValueError as exc:
        raise bad(f"date {raw['date']!r} is not YYYY-MM-DD") from exc
    return Record(
        id=rid,
        title=str(raw["title"]),
        link=str(raw["link"]),
        date=date,
        lang=str(raw["lang"]),
        kind=str(raw["kind"]),
        text=str(raw["text"]),
        relevant=raw["relevant"],
        authority=authority,
        action=str(raw["action"]),
        feed=raw.get("feed") or None,
        note=str(raw.get("note", "")),
    )


def held_out_digest(records: list[Record]) -> str:
    """A checksum of the held-out part: an edit to a held-out record shows in review as a change to
    ``heldout.sha256``, so the part rule changes are measured on cannot drift quietly."""
    rows = sorted(
        (r.id, r.title, r.text, r.lang, r.kind, r.feed or "", r.relevant, r.authority or "", r.action)
        for r in records
        if r.split == "heldout"
    )
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
