"""Which items tell the same story. Pure: features and similarity; the store keeps the index.

Ten outlets carry the CMA's notice in ten wordings. What they share is the proper nouns and the
rare words (Microsoft, Mistral, "invitation to comment"), the link when they quote it, and the
regulator's own title when they quote it. So an item's features are its distinctive words: the
folded, lightly stemmed words of its title and lead, minus everyday and newsroom vocabulary.
Two items are one story when enough of the shorter one's distinctive words appear in the other,
within a time window; the window keeps "the CMA opens an inquiry into X / Y" and "the CMA clears
X / Y" months later apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from watcher.fold import fold
from watcher.model import Item, Reason

LEAD_CHARS = 400
MIN_SHARED = 3
MIN_OVERLAP = 0.3

# Everyday English and newsroom words: shared by unrelated stories, so never evidence.
_COMMON = frozenset(
    """
    a about above after again against all also an and any are as at be been before being below between
    both but by can could did do does doing down during each few for from further had has have having he
    her here hers him his how i if in into is it its itself just me more most my no nor not now of off
    on once only or other our out over own same she should so some such than that the their them then
    there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours new says said say week today year years day month
    months time news report reports reported update updates latest live first last next back make makes
    made take takes took get gets got one two three four five per cent percent million billion bn m us
    uk eu after amid over under could would may might must told tells according statement announced
    announces announce press release releases company companies firm firms group deal deals plan plans
    move moves mr ms mrs chief executive ceo officials official people way ways set sets big major key
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_WORD = re.compile(r"[a-z0-9]+")
_PUBLISHER = re.compile(r"\s+[-–|]\s+[^-–|]{2,40}$")


def _stem(word: str) -> str:
    """Plural and possessive folding only: enough for headlines, and never merges two names."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def headline(title: str) -> str:
    """The title without a trailing " - Publisher" (Google News and aggregators add one)."""
    return _PUBLISHER.sub("", title)


def features(title: str, lead: str = "") -> frozenset[str]:
    """The distinctive words of an item's title and lead."""
    text = fold(f"{headline(title)} {lead[:LEAD_CHARS]}")
    return frozenset(_stem(w) for w in _WORD.findall(text) if w not in _COMMON and len(w) > 1)


def item_features(item: Item) -> tuple[frozenset[str], frozenset[str]]:
    """(distinctive words, party names) of an item."""
    lead = item.summary or item.content
    return features(item.title, lead), parties(item.title, lead)


# Capitalised words that are not parties to a story: regulators, places, days, generic labels.
_NOT_PARTIES = frozenset(
    """
    the a an this that these it its in on at for of and but as by with from after under new cma ftc doj
    eu uk us usa un ec dg comp competition markets authority commission federal trade justice department
    european union britain british england english german germany france french japan japanese korea
    korean china chinese india indian australia australian america american washington london brussels
    paris berlin wednesday monday tuesday thursday friday saturday sunday january february march april
    may june july august september october november december ai ceo cfo chief inc ltd plc llc corp co
    group holdings section article phase act regulator watchdog court judge state states national office
    minister government mr ms dr
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][A-Za-z0-9&'’-]*")


def parties(title: str, lead: str = "") -> frozenset[str]:
    """Names of the parties: capitalised words not at a sentence start, minus regulators, places
    and dates. Headlines in Title Case capitalise everything, so their words count only when the
    lead names them too."""
    lead = lead[:LEAD_CHARS]
    in_lead = {fold(m.group(0)) for m in _CAPITALISED.finditer(lead)}
    words = title.split()
    title_case = sum(w[:1].isupper() for w in words) > 0.6 * max(len(words), 1)
    from_title = {fold(m.group(0)) for m in _CAPITALISED.finditer(" " + headline(title))}
    found = in_lead | {w for w in from_title if not title_case or w in in_lead}
    return frozenset(_stem(w) for name in found for w in name.split() if w not in _NOT_PARTIES and len(w) > 1)


_MARKED = re.compile(r"\*\*(.+?)\*\*")


def alert_snippet(reasons: Sequence[Reason]) -> str:
    """The snippet a message shows: from the body when the body matched, since the headline is
    shown anyway; else the headline's."""
    ranked = sorted((r for r in reasons if r.snippet), key=lambda r: r.field == "title")
    return ranked[0].snippet if ranked else ""


def entities(reasons: Sequence[Reason], limit: int = 6) -> tuple[str, ...]:
    """Names among the matched words, as the item wrote them: capitalised hits that are not
    regulators, places or generic words ("Microsoft", "Mistral AI", not "CMA" or "merger")."""
    found: dict[str, str] = {}
    for r in reasons:
        for m in _MARKED.finditer(r.snippet):
            text = " ".join(m.group(1).split()).strip(" .,;:")
            words = [fold(w) for w in text.split()]
            if not text[:1].isupper() or all(w in _NOT_PARTIES for w in words) or len(text) > 60:
                continue
            found.setdefault(fold(text), text)
    return tuple(list(found.values())[:limit])


def conflicting(
    parties_a: frozenset[str], text_a: frozenset[str], parties_b: frozenset[str], text_b: frozenset[str]
) -> bool:
    """Different parties, different story: "CMA invites comment on Microsoft / Mistral" and, the
    same day, "on Amazon / Anthropic" share every other word. A side whose named parties are
    mostly absent from the other item altogether is about someone else."""
    if not parties_a or not parties_b:
        return False
    absent_a = {p for p in parties_a if p not in text_b and p not in parties_b}
    absent_b = {p for p in parties_b if p not in text_a and p not in parties_a}
    smaller = min(len(parties_a), len(parties_b))
    if max(len(absent_a), len(absent_b)) > 0.5 * smaller:
        return True  # one side is mostly about others
    # Each side names someone the other never mentions (Amazon / Anthropic vs Google / Anthropic).
    return len(absent_a) >= 0.5 * len(parties_a) and len(absent_b) >= 0.5 * len(parties_b)


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Share of the smaller set found in the larger: a short headline inside a long lead counts."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def same_story(
    words_a: frozenset[str], parties_a: frozenset[str], words_b: frozenset[str], parties_b: frozenset[str]
) -> bool:
    """Enough shared distinctive words, and no conflict between the parties named."""
    if len(words_a & words_b) < MIN_SHARED or overlap(words_a, words_b) < MIN_OVERLAP:
        return False
    return not conflicting(parties_a, words_a, parties_b, words_b)


@dataclass(frozen=True, slots=True)
class StoryView:
    """A story as the decisions need it."""

    id: int
    is_new: bool
    sources: tuple[str, ...]  # feed ids, first first
    is_official: bool  # some item came from a regulator's own domain
    became_official: bool  # this item is the first official one of a story that had press only


def is_official(link: str | None, domains: Iterable[str]) -> bool:
    """True when the link is on a regulator's own domain (or a subdomain of one)."""
    host = (urlsplit(link).hostname or "").lower() if link else ""
    return any(host == d or host.endswith("." + d) for d in domains)


OFFICIAL_DOMAINS = (
    "gov.uk", "ftc.gov", "justice.gov", "ec.europa.eu", "competition-policy.ec.europa.eu",
    "bundeskartellamt.de", "autoritedelaconcurrence.fr", "jftc.go.jp", "ftc.go.kr", "korea.kr",
    "accc.gov.au", "cci.gov.in",
)  # fmt: skip
