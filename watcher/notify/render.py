"""Alert or Digest -> Message, through the Jinja2 templates of the channel's format.

Pure: no clock, no DB, no logging. The only I/O is reading template files, every one of them,
when a Renderer is built; rendering then touches no file, so a broken template fails at start-up
(and in ``watcher check``), never at 3 a.m.

Everything from a feed is untrusted text. Every value a template prints is made safe for the
format by default, so a template author cannot forget to (docs/notifications.md has the details):

- text: control and bidi-override characters are dropped.
- markdown: values are flattened to one line and CommonMark-escaped (``markup._md_escape``); only the
  ``link`` and ``highlight`` filters emit markup, built from escaped parts.
- html: Jinja autoescaping; ``link`` only links http(s) URLs.
- Mentions: in text, ``@everyone``, ``@here``, ``@channel`` and ``@all`` get an invisible U+2060
  WORD JOINER after the ``@``, which no chat service reads as a mention; markdown does this to
  every ``@word``, because apprise's Discord plugin asks Discord to ping any ``@word`` of a
  markdown body. html is for e-mail, which has no mentions.
- Titles are plain text in every format (the e-mail subject, Slack's header): rendered without
  escaping, then flattened to one line, capped, broadcast mentions broken; in markdown and html
  also anything a service that folds the title into its body could read as a tag or link.

Template variables (one plain shape, never ORM rows; every string already one line and capped,
except ``item.text``):

``title.j2``, ``body.j2``:
  alert    severity ("HIGH"), kind ("first" | "follow_up" | "confirmed" | "update"),
           kind_label ("" | "FOLLOW-UP" | "CONFIRMED" | "UPDATE"), label ("HIGH FOLLOW-UP"),
           rule, item, feed (as below), reasons (list of str), entities (party names),
           topic (the entities joined by " / " when two or more, else item.title),
           sources (feed ids of the story, first first), also_reported_by (sources but this feed),
           snippet (matched words in **double asterisks**: print it with ``|highlight``),
           story_id (int or None), published (= item.published),
           rules (every rule that fired on this story for this channel, most severe first,
           each id, title, severity; one message names them all), tags (their tags' union)
  rule     id, title, severity (the most severe rule that fired)
  item     title ("(untitled)" if none), link (str or None, any scheme: print with ``|link``),
           text (plain, up to 400 characters), published ("2026-11-29 14:05 UTC" in the
           channel's timezone, or "")
  feed     id, title
  channel  name, format, timezone
``digest_title.j2``, ``digest_body.j2``:
  digest   id, channel, due and since ("2026-11-29 08:00", channel's timezone; since may be ""),
           due_date ("2026-11-29"), timezone, total, summary ("1 critical, 2 high" or ""),
           counts (list of (severity, n), highest first), attachment (CSV file name, or "")
  groups   alerts grouped by story, highest severity first, then newest first; each has
           story_id, severity, alerts (as ``alert`` above, oldest first)
  shown, more, total   alerts listed, alerts left out (listed in the CSV), all alerts
  channel  as above
Filters: ``label|link(url, style="")`` (a link only for http(s) URLs; ``style`` is for html),
``snippet|highlight`` (our ** markers as emphasis: <strong> in html, **bold** in markdown, kept
as they are in text, where they are the only way to show which words matched).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from watcher.errors import ConfigError
from watcher.model import Alert, Attachment, Channel, Digest, Message, Severity
from watcher.notify.markup import FILTERS, FINALIZE, SNIPPET_CHARS, cap_snippet, one_line, plain_title
from watcher.notify.merge import merge_alerts

BUILT_IN = Path(__file__).parent / "templates"
FORMATS = ("text", "markdown", "html")
TEMPLATE_NAMES = ("title.j2", "body.j2", "digest_title.j2", "digest_body.j2")
_VIEW_REPR = re.compile(r"'watcher\.notify\.render\.(\w+)View object'")
_KIND_LABELS = {"follow_up": "FOLLOW-UP", "confirmed": "CONFIRMED", "update": "UPDATE"}
# Exceptions a template can raise while rendering, besides Jinja's own: a filter given the wrong
# type, arithmetic on a string... all of them a template problem, reported as path:line.
_RENDER_ERRORS = (jinja2.TemplateError, TypeError, ValueError, LookupError, ArithmeticError, AttributeError)


# -- the values templates see ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RuleView:
    id: str
    title: str
    severity: str = ""


@dataclass(frozen=True, slots=True)
class ItemView:
    title: str
    link: str | None
    text: str
    published: str


@dataclass(frozen=True, slots=True)
class FeedView:
    id: str
    title: str


@dataclass(frozen=True, slots=True)
class AlertView:
    severity: str
    kind: str
    kind_label: str
    label: str
    rule: RuleView
    item: ItemView
    feed: FeedView
    reasons: tuple[str, ...]
    entities: tuple[str, ...]
    topic: str  # the parties ("Microsoft / Mistral AI") when two or more matched, else the headline
    sources: tuple[str, ...]
    also_reported_by: tuple[str, ...]
    snippet: str
    story_id: int | None
    published: str
    rules: tuple[RuleView, ...] = ()  # every rule that fired, most severe first (``rule`` is the first)
    tags: tuple[str, ...] = ()  # the union of their tags


@dataclass(frozen=True, slots=True)
class GroupView:
    story_id: int | None
    severity: str
    alerts: tuple[AlertView, ...]


@dataclass(frozen=True, slots=True)
class DigestView:
    id: int
    channel: str
    due: str
    due_date: str
    since: str
    timezone: str
    total: int
    summary: str
    counts: tuple[tuple[str, int], ...]
    attachment: str


@dataclass(frozen=True, slots=True)
class ChannelView:
    name: str
    format: str
    timezone: str


def _when(at: datetime | None, zone: tzinfo, *, with_zone: bool = True) -> str:
    if at is None:
        return ""
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M %Z" if with_zone else "%Y-%m-%d %H:%M")


def _alert_view(alert: Alert, zone: tzinfo) -> AlertView:
    severity = alert.severity.value.upper()
    kind_label = _KIND_LABELS.get(alert.kind, "")
    published = _when(alert.published_at, zone)
    sources = tuple(one_line(s, 60) for s in alert.sources[:12])
    entities = tuple(one_line(e, 60) for e in alert.entities[:6])
    title = one_line(alert.item_title) or "(untitled)"
    return AlertView(
        severity=severity,
        kind=alert.kind,
        kind_label=kind_label,
        label=f"{severity} {kind_label}".strip(),
        rule=RuleView(alert.rule_id, one_line(alert.rule_title, 120)),
        item=ItemView(
            title,
            one_line(alert.item_link or "", 2000) or None,  # no line break, even in a link
            cap_snippet(alert.item_text),
            published,
        ),
        feed=FeedView(alert.feed_id, one_line(alert.feed_title, 120) or alert.feed_id),
        reasons=tuple(one_line(r, 120) for r in alert.reasons[:8]),
        entities=entities,
        # One matched name is often half the story ("Mistral AI" of "Microsoft / Mistral AI"):
        # the headline says more then.
        topic=" / ".join(entities) if len(entities) >= 2 else title,
        sources=sources,
        also_reported_by=tuple(s for s in sources if s != alert.feed_id),
        snippet=one_line(alert.snippet, SNIPPET_CHARS),
        story_id=alert.story_id,
        published=published,
        rules=tuple(RuleView(h.rule_id, one_line(h.title, 120), h.severity.value.upper()) for h in alert.hits),
        tags=tuple(one_line(t, 40) for t in alert.tags[:12]),
    )


def _sort_time(alert: Alert) -> datetime:
    at = alert.published_at or alert.created_at
    if at is None:
        return datetime.min.replace(tzinfo=UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def group_alerts(alerts: Sequence[Alert]) -> list[list[Alert]]:
    """Alerts grouped by story (an alert without one is its own group), oldest first in a group;
    groups by highest severity, then newest first."""
    groups: dict[object, list[Alert]] = {}
    for index, alert in enumerate(alerts):
        groups.setdefault(alert.story_id if alert.story_id is not None else ("alone", index), []).append(alert)
    ordered = [sorted(g, key=_sort_time) for g in groups.values()]
    return sorted(ordered, key=lambda g: (max(a.severity.rank for a in g), _sort_time(g[-1])), reverse=True)


def _csv_cell(value: str) -> str:
    # A cell starting with = + - @ (or tab/CR) is a formula to Excel and LibreOffice: OWASP's
    # "CSV injection" advice is to make it text with a leading apostrophe.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv(alerts: Sequence[Alert], zone: tzinfo) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["severity", "rule", "headline", "link", "source", "published", "story"])
    for a in alerts:
        row = [
            a.severity.value,
            a.rule_id,
            one_line(a.item_title),
            one_line(a.item_link or "", 2000),
            one_line(a.feed_title, 120),
        ]
        row += [_when(a.published_at, zone), "" if a.story_id is None else str(a.story_id)]
        writer.writerow([_csv_cell(cell) for cell in row])
    # With a byte order mark, Excel opens UTF-8 CSV as UTF-8 instead of the local code page.
    return out.getvalue().encode("utf-8-sig")


# -- templates ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _TemplateSet:
    """The four compiled templates of one format and override folder, and which files it overrides."""

    templates: dict[str, jinja2.Template]
    files: frozenset[str]
    overrides: tuple[str, ...]


def _environment(fmt: str, loader: jinja2.BaseLoader, *, is_title: bool) -> jinja2.Environment:
    # Titles are plain text whatever the format: no escaping, text filters; plain_title() cleans them.
    kind = "text" if is_title else fmt
    finalize = FINALIZE[kind]
    env = jinja2.Environment(
        loader=loader,
        autoescape=kind == "html",
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # after loading, rendering must not look at the disk
        cache_size=-1,
    )
    env.filters.update(FILTERS[kind])
    return env


def _load(fmt: str, template_dir: str | None) -> _TemplateSet:
    if fmt not in FORMATS:
        raise ConfigError(f'unknown message format "{fmt}" (known: {", ".join(FORMATS)})')
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(BUILT_IN / fmt)]
    overrides: tuple[str, ...] = ()
    if template_dir is not None:
        folder = Path(template_dir)
        if not folder.is_dir():
            raise ConfigError("template_dir is not a folder", folder)
        loaders.insert(0, jinja2.FileSystemLoader(folder))
        overrides = tuple(sorted(p.name for p in folder.glob("*.j2")))
    loader = jinja2.ChoiceLoader(loaders)
    templates: dict[str, jinja2.Template] = {}
    files: set[str] = set()
    for is_title in (True, False):
        env = _environment(fmt, loader, is_title=is_title)
        for name in env.list_templates(extensions=["j2"]):
            try:
                template = env.get_template(name)  # compiles it, and any error names file and line
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(exc.message or str(exc), exc.filename or name, exc.lineno) from exc
            files.add(template.filename or name)
            if name in TEMPLATE_NAMES and name.endswith("title.j2") == is_title:
                templates[name] = template
    return _TemplateSet(templates, frozenset(files), overrides)


def _error_location(exc: BaseException, template: jinja2.Template, files: frozenset[str]) -> tuple[str, int | None]:
    """The template file and line a render error came from: Jinja rewrites the traceback so
    template frames carry the template's file name and line."""
    path, line = template.filename or template.name or "?", None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in files:
            path, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return path, line


class Renderer:
    """Render alerts and digests with each channel's templates (built-in, or its template_dir's)."""

    def __init__(self, channels: Mapping[str, Channel]) -> None:
        """Load and compile every template the channels use; one set per (format, template_dir).

        Raises ConfigError naming the template file and line of a syntax error.
        """
        self._sets: dict[tuple[str, str | None], _TemplateSet] = {}
        self._zones: dict[str, tzinfo] = {}
        for channel in channels.values():
            key = (channel.format, channel.template_dir)
            if key not in self._sets:
                self._sets[key] = _load(*key)
            if channel.timezone not in self._zones:
                try:
                    self._zones[channel.timezone] = ZoneInfo(channel.timezone)
                except (ZoneInfoNotFoundError, ValueError) as exc:
                    raise ConfigError(f'channel {channel.name}: unknown timezone "{channel.timezone}"') from exc

    def overrides(self, channel: Channel) -> tuple[str, ...]:
        """The template files the channel's template_dir provides."""
        return self._set(channel).overrides

    def render(self, alert: Alert, channel: Channel) -> Message:
        """Render one alert for ``channel``. Raises ConfigError (path:line) if a template fails."""
        view = _alert_view(alert, self._zone(channel))
        context = {"alert": view, "rule": view.rule, "item": view.item, "feed": view.feed}
        return self._message(channel, "title.j2", "body.j2", context)

    def render_digest(self, digest: Digest, channel: Channel) -> Message:
        """Render one digest: groups by story, at most ``channel.digest_max_items`` alerts listed,
        and when more, the full list attached as CSV. Raises ConfigError (path:line)."""
        zone = self._zone(channel)
        alerts = merge_alerts(digest.alerts, by="item")  # one entry per item, naming every rule that fired
        groups = group_alerts(alerts)
        listed: list[GroupView] = []
        left = channel.digest_max_items
        for group in groups:
            if group[:left]:
                listed.append(
                    GroupView(group[0].story_id, _top(group), tuple(_alert_view(a, zone) for a in group[:left]))
                )
            left = max(0, left - len(group))
        total = len(alerts)
        shown = sum(len(g.alerts) for g in listed)
        due_date = _when(digest.due_at, zone, with_zone=False)[:10]
        attachments: tuple[Attachment, ...] = ()
        if shown < total:
            every = [a for g in groups for a in g]
            attachments = (Attachment(f"watcher-digest-{due_date}.csv", _csv(every, zone)),)
        counts = tuple((s.value, n) for s in reversed(Severity) if (n := sum(a.severity == s for a in alerts)))
        summary = ", ".join(f"{n} {s}" for s, n in counts if Severity(s).rank >= Severity.HIGH.rank)
        view = DigestView(
            id=digest.digest_id,
            channel=digest.channel,
            due=_when(digest.due_at, zone, with_zone=False),
            due_date=due_date,
            since=_when(digest.since, zone, with_zone=False),
            timezone=channel.timezone,
            total=total,
            summary=summary,
            counts=counts,
            attachment=attachments[0].name if attachments else "",
        )
        context = {"digest": view, "groups": tuple(listed), "shown": shown, "more": total - shown, "total": total}
        return replace(self._message(channel, "digest_title.j2", "digest_body.j2", context), attachments=attachments)

    def _set(self, channel: Channel) -> _TemplateSet:
        found = self._sets.get((channel.format, channel.template_dir))
        if found is None:
            raise ConfigError(f"channel {channel.name}: its templates were not loaded (unknown to this Renderer)")
        return found

    def _zone(self, channel: Channel) -> tzinfo:
        return self._zones.get(channel.timezone) or ZoneInfo(channel.timezone)

    def _message(self, channel: Channel, title: str, body: str, context: dict[str, Any]) -> Message:
        templates = self._set(channel)
        context["channel"] = ChannelView(channel.name, channel.format, channel.timezone)
        rendered = []
        for name in (title, body):
            template = templates.templates[name]
            try:
                rendered.append(template.render(context))
            except _RENDER_ERRORS as exc:
                path, line = _error_location(exc, template, templates.files)
                message = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
                # "'watcher.notify.render.AlertView object' has no attribute 'x'" -> "alert has no..."
                message = _VIEW_REPR.sub(lambda m: m[1].lower(), message)
                raise ConfigError(message, path, line) from exc
        return Message(
            title=plain_title(rendered[0], channel.format), body=rendered[1].strip() + "\n", body_format=channel.format
        )


def _top(alerts: Sequence[Alert]) -> str:
    return max(alerts, key=lambda a: a.severity.rank).severity.value.upper()
