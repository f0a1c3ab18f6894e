"""Sample alerts and digests, and the template check `watcher check` runs.

Pure, like ``render``: the clock is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from watcher.model import Alert, Channel, Digest, Severity
from watcher.notify.render import Renderer


def sample_alert(channel: str, now: datetime) -> Alert:
    """A realistic alert for `watcher check` (render every template) and `watcher notify-test`.

    Its rule title and headline say "(watcher test)", so nobody mistakes it for a real CMA notice.
    """
    return Alert(
        delivery_id=0,
        channel=channel,
        rule_id="cma-invitation-to-comment",
        rule_title="CMA invitation to comment (watcher test)",
        severity=Severity.HIGH,
        reasons=(
            'title contains "invitation to comment"',
            'title contains "Microsoft" (from @big_tech)',
            'title contains "Mistral AI" (from @ai_labs)',
        ),
        feed_id="cma-cases",
        feed_title="CMA cases",
        item_title="Microsoft / Mistral AI partnership: invitation to comment (watcher test)",
        item_link="https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai",
        item_text=(
            "The CMA is considering whether Microsoft's partnership with Mistral AI has resulted in a "
            "relevant merger situation, and invites comment from interested parties."
        ),
        published_at=now - timedelta(minutes=20),
        kind="first",
        sources=("cma-cases", "reuters-business"),
        story_id=4217,
        snippet="The CMA is considering whether **Microsoft**'s partnership with Mistral AI has resulted in…",
        entities=("Microsoft", "Mistral AI"),
        created_at=now,
    )


def sample_digest(channel: str, now: datetime) -> Digest:
    """A digest of five sample alerts: two reports of one story, and four severities."""
    first = sample_alert(channel, now - timedelta(hours=3))
    follow_up = replace(
        first,
        delivery_id=1,
        kind="follow_up",
        feed_id="reuters-business",
        feed_title="Reuters business",
        item_title="UK watchdog invites views on Microsoft's Mistral AI stake",
        item_link="https://www.reuters.com/technology/uk-watchdog-invites-views-microsoft-mistral-2026-11-29/",
        published_at=now - timedelta(hours=2),
    )
    # fmt: off
    others = [  # severity, rule id, rule title, feed id, feed title, headline, link
        (Severity.MEDIUM, "ftc-6b-orders", "FTC 6(b) orders", "ftc-press", "FTC press releases",
         "FTC launches inquiry into AI investments and partnerships", "https://www.ftc.gov/news-events/ai-6b"),
        (Severity.LOW, "ec-antitrust-opening", "EU antitrust opening", "ec-competition", "European Commission",
         "Commission opens investigation into cloud licensing practices", "https://ec.europa.eu/ip_26_4242"),
        (Severity.INFO, "bkarta-digital", "Bundeskartellamt digital markets", "bundeskartellamt", "Bundeskartellamt",
         "Bundeskartellamt publishes its digital markets report", "https://www.bundeskartellamt.de/digital"),
    ]
    # fmt: on
    alerts = [first, follow_up]
    for n, (severity, rule_id, rule_title, feed_id, feed_title, title, link) in enumerate(others, start=2):
        alerts.append(
            replace(
                first, delivery_id=n, severity=severity, rule_id=rule_id,
                rule_title=f"{rule_title} (watcher test)", feed_id=feed_id, feed_title=feed_title,
                item_title=title, item_link=link, item_text="",
                published_at=now - timedelta(hours=2 * n + 1), sources=(feed_id,), story_id=None,
                snippet="", entities=(), reasons=(f'title contains "{title.split()[-1]}"',),
            )
        )  # fmt: skip
    return Digest(digest_id=1, channel=channel, due_at=now, since=now - timedelta(days=1), alerts=tuple(alerts))


def check_templates(channels: Mapping[str, Channel], now: datetime, renderer: Renderer | None = None) -> list[str]:
    """Render every template of every channel on the samples; one line per channel.

    Each alert kind is rendered, with and without link, date, entities and snippet, and the digest
    with and without "more", so a mistake in any branch shows now. Raises ConfigError
    (``path:line: message``) for a template that fails to compile or render.
    """
    renderer = renderer or Renderer(channels)
    lines = []
    for name, channel in channels.items():
        alert = sample_alert(name, now)
        bare = replace(alert, item_link=None, published_at=None, entities=(), snippet="", sources=(), reasons=())
        for variant in (
            alert,
            replace(bare, kind="follow_up"),
            replace(alert, kind="confirmed"),
            replace(bare, kind="update", item_link="ftp://example.org/x"),
        ):
            renderer.render(variant, channel)
        digest = sample_digest(name, now)
        renderer.render_digest(digest, channel)
        renderer.render_digest(replace(digest, since=None), replace(channel, digest_max_items=2))
        overrides = renderer.overrides(channel)
        where = f"overrides from {channel.template_dir}: {', '.join(overrides)}" if overrides else "built-in"
        lines.append(f"channel {name}: {channel.format} templates ({where})")
    return lines
