"""config.toml -> a validated, frozen Config. Every problem is one ``path:line: message``.

Owns: the schema of the config file, ``${VAR}`` interpolation, ``*_file`` secrets, resolving
relative paths against the config file's folder. Must not: open network connections or the database.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from watcher.duration import Duration
from watcher.errors import ConfigError
from watcher.model import Channel, Route, Severity
from watcher.redact import Redactor
from watcher.stories import OFFICIAL_DOMAINS
from watcher.tomlmap import KeyLines, Loc, first_error, load_toml

DEFAULT_CONFIG = "config.toml"
DEFAULT_USER_AGENT = "watcher/0.1 (regulatory feed reader; +https://github.com/watcher-alerts/watcher)"
_SLUG = r"^[a-z0-9][a-z0-9._-]*$"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


Slug = Annotated[str, Field(pattern=_SLUG, min_length=1, max_length=64)]

_QUIET = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day|s|m|h|d)\s*$")
_RATE_UNITS = {"second": 1, "s": 1, "minute": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86400, "d": 86400}
# apprise schemes whose services take (and convert) Markdown, and those that are e-mail.
_MARKDOWN_SCHEMES = {
    "slack",
    "discord",
    "msteams",
    "mmost",
    "mmosts",
    "rocket",
    "rockets",
    "tgram",
    "matrix",
    "matrixs",
    "gchat",
    "zulip",
    "ntfy",
    "ntfys",
}
_EMAIL_SCHEMES = {"mailto", "mailtos", "ses", "sendgrid", "mailgun", "sparkpost", "o365", "resend"}


def parse_quiet_hours(value: str) -> tuple[str, str] | None:
    """``"22:00-07:00"`` -> ("22:00", "07:00"); None if it is not a range of two different times."""
    m = _QUIET.match(value)
    if not m:
        return None
    start, end = f"{int(m.group(1)):02d}:{m.group(2)}", f"{int(m.group(3)):02d}:{m.group(4)}"
    return (start, end) if start != end else None


def parse_rate_limit(value: str) -> tuple[int, float] | None:
    """``"20/minute"`` -> (20, 60.0)."""
    m = _RATE.match(value)
    if not m or int(m.group(1)) < 1:
        return None
    return int(m.group(1)), float(_RATE_UNITS[m.group(2)])


def default_format(urls: list[str]) -> str:
    """The message format a channel's services read best, from its first URL's scheme."""
    scheme = urlsplit(urls[0]).scheme.lower() if urls else ""
    if scheme in _MARKDOWN_SCHEMES:
        return "markdown"
    if scheme in _EMAIL_SCHEMES:
        return "html"
    return "text"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: str = "sqlite:///watcher.db"
    # Apply schema migrations when the daemon starts; off, `watcher db upgrade` does it and the
    # daemon refuses to start on an old schema.
    migrate_on_start: bool = True
    # Drop the text of items older than this (their keys and links stay, so they never alert
    # again); 0 keeps everything.
    retention: Duration = timedelta(0)


class HttpConfig(_Section):
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: Duration = timedelta(seconds=10)
    read_timeout: Duration = timedelta(seconds=20)
    deadline: Duration = timedelta(seconds=60)
    max_body_bytes: int = Field(default=10_000_000, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    max_connections: int = Field(default=20, gt=0)
    max_per_host: int = Field(default=2, gt=0)
    # Requests per second to one host, shared by every feed and page on it; 0: no limit.
    per_host_rate: float = Field(default=0.0, ge=0)
    # Refuse feeds, pages and redirects that resolve to loopback, private, link-local (cloud
    # metadata) or multicast addresses: on where the people who add feeds are not all trusted.
    block_private_addresses: bool = False
    # Networks that stay reachable with the guard on ("10.20.0.0/16", "192.168.1.5"): an intranet
    # feed server, a proxy. Everything else private stays refused.
    allowed_networks: list[str] = Field(default_factory=list)

    @field_validator("allowed_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for spec in value:
            try:
                ipaddress.ip_network(spec.strip(), strict=False)
            except ValueError:
                raise ValueError(f'"{spec}" is not a network; write it like 10.20.0.0/16 or fd00::/8') from None
        return value


class PollConfig(_Section):
    default_interval: Duration = timedelta(minutes=15)
    max_backoff: Duration = timedelta(hours=6)
    check_every: Duration = timedelta(seconds=30)
    parse_workers: int = Field(default=0, ge=0)
    backlog_max_age: Duration = timedelta(days=7)
    max_articles_per_poll: int = Field(default=20, ge=0)
    # A server's Cache-Control max-age, Expires, RSS ttl or Retry-After may lengthen a feed's
    # interval up to this, never shorten it.
    max_server_interval: Duration = timedelta(hours=24)
    # How long a replica's claim on work (a feed it polls, a page it fetches, a delivery or digest
    # it sends) lasts without renewal (it renews every third of it while the work is in flight):
    # after a crash, that work is taken up again within this. On SQLite, where one process runs,
    # a restarted daemon takes back its predecessor's claims at once.
    claim_lease: Duration = timedelta(seconds=60)


class DeliveryConfig(_Section):
    default_channels: list[Slug] = Field(default_factory=lambda: ["console"])
    check_every: Duration = timedelta(seconds=10)
    max_attempts: int = Field(default=8, ge=1)
    backoff_initial: Duration = timedelta(seconds=30)
    backoff_max: Duration = timedelta(hours=1)
    timeout: Duration = timedelta(seconds=30)
    digest_schedule: str = "0 8 * * mon-fri"

    @field_validator("digest_schedule")
    @classmethod
    def _check_digest_schedule(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f'"{value}" is not a crontab line ({exc})') from None
        return value


class StoriesConfig(_Section):
    window: Duration = timedelta(days=7)
    official_domains: list[str] = Field(default_factory=lambda: list(OFFICIAL_DOMAINS))


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


class FeedConfig(_Section):
    id: Slug
    url: str
    title: str = ""
    interval: Duration | None = None
    tags: list[str] = Field(default_factory=list)
    full_text: bool = False
    identity: Literal["auto", "guid", "link"] = "auto"
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme in ("http", "https") and parts.netloc:
            return value.strip()
        if parts.scheme == "file" and parts.path:
            return value.strip()
        raise ValueError(f'"{value}" is not an http(s):// or file:// URL')


class ChannelConfig(_Section):
    type: Literal["apprise", "console"] = "apprise"
    urls: list[str] = Field(default_factory=list)
    urls_file: Path | None = None
    format: Literal["auto", "markdown", "html", "text"] = "auto"
    template_dir: Path | None = None
    min_severity: Severity | None = None
    mode: Literal["immediate", "digest"] = "immediate"
    schedule: str = ""
    timezone: str = "UTC"
    digest_max_items: int = Field(default=25, ge=1, le=500)
    quiet_hours: str = ""
    quiet_bypass: Severity | None = Severity.CRITICAL
    rate_limit: str = ""
    fallback: Slug | None = None
    fallback_after: Duration = timedelta(hours=1)
    enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'"{value}" is not a time zone; write it like "Europe/London" or "UTC"') from None
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: str) -> str:
        if value and parse_quiet_hours(value) is None:
            raise ValueError(f'"{value}" is not a time range; write it like "22:00-07:00"')
        return value.strip()

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if value and parse_rate_limit(value) is None:
            raise ValueError(f'"{value}" is not a rate; write it like "20/minute", "1/second" or "100/hour"')
        return value.strip()

    @model_validator(mode="after")
    def _check_schedule(self) -> ChannelConfig:
        if self.mode == "digest" and not self.schedule:
            raise ValueError('a digest channel needs a "schedule", e.g. "0 8 * * mon-fri"')
        if self.schedule:
            try:
                CronTrigger.from_crontab(self.schedule, timezone=self.timezone)
            except ValueError as exc:
                raise ValueError(f'"schedule": "{self.schedule}" is not a crontab line ({exc})') from None
        return self


class RouteConfig(_Section):
    name: str = ""
    channels: list[Slug] = Field(min_length=1)
    severity: Severity | None = None
    rules: list[str] = Field(default_factory=list)
    rule_tags: list[str] = Field(default_factory=list)
    feed_tags: list[str] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HealthConfig(_Section):
    """Source health: a feed failing for a while, silent for much longer than its own cadence, or
    serving HTML instead of a feed raises one alert of its own on ``channel``, and one when it
    recovers. Off when ``channel`` is empty."""

    channel: Slug | None = None
    failing_after: Duration = timedelta(hours=6)
    # Silent: no new item for this many times the feed's usual gap between items (learned from the
    # publication dates of its last items), and never less than silent_min.
    silent_factor: float = Field(default=5.0, gt=1)
    silent_min: Duration = timedelta(days=2)
    check_every: Duration = timedelta(minutes=5)


class ServerConfig(_Section):
    """The health and metrics endpoints (/healthz, /readyz, /metrics). Off when ``listen`` is empty;
    a bare port listens on loopback only, since the metrics name every feed and rule."""

    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep:
            host, port = "127.0.0.1", value
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'"{value}" is not host:port (for example "127.0.0.1:9464")')
        return f"{host.strip('[]') or '127.0.0.1'}:{port}"

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


class Config(_Section):
    rules_dir: Path = Path("rules")
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    poll: PollConfig = PollConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    log: LogConfig = LogConfig()
    stories: StoriesConfig = StoriesConfig()
    server: ServerConfig = ServerConfig()
    health: HealthConfig = HealthConfig()
    feeds: list[FeedConfig] = Field(default_factory=list, alias="feed")
    channels: dict[Slug, ChannelConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list, alias="route")

    # Filled by load_config; not part of the file.
    path: Path = Field(default=Path(DEFAULT_CONFIG), exclude=True)
    resolved_channels: dict[str, Channel] = Field(default_factory=dict, exclude=True)
    resolved_routes: tuple[Route, ...] = Field(default=(), exclude=True)
    channel_min_severity: dict[str, Severity | None] = Field(default_factory=dict, exclude=True)
    redactor: Redactor = Field(default_factory=Redactor, exclude=True)

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, populate_by_name=True)

    def feed(self, feed_id: str) -> FeedConfig | None:
        return next((f for f in self.feeds if f.id == feed_id), None)

    def interval_of(self, feed: FeedConfig) -> timedelta:
        return feed.interval or self.poll.default_interval


_SECTIONS: dict[Loc, type[BaseModel]] = {
    (): Config,
    ("database",): DatabaseConfig,
    ("http",): HttpConfig,
    ("poll",): PollConfig,
    ("delivery",): DeliveryConfig,
    ("log",): LogConfig,
    ("stories",): StoriesConfig,
    ("server",): ServerConfig,
    ("health",): HealthConfig,
}


def _known_fields(data: dict[str, Any]) -> dict[Loc, list[str]]:
    """Valid names under each table, for "did you mean" hints on unknown keys."""

    def names(model: type[BaseModel]) -> list[str]:
        return [f.alias or n for n, f in model.model_fields.items() if not f.exclude]

    known: dict[Loc, list[str]] = {loc: names(model) for loc, model in _SECTIONS.items()}
    # The file may hold anything here (``route = 1``): its own error comes from validation.
    feeds, routes, channels = data.get("feed"), data.get("route"), data.get("channels")
    for i in range(len(feeds) if isinstance(feeds, list) else 0):
        known[("feed", i)] = names(FeedConfig)
    for i in range(len(routes) if isinstance(routes, list) else 0):
        known[("route", i)] = names(RouteConfig)
    for name in channels if isinstance(channels, dict) else {}:
        known[("channels", name)] = names(ChannelConfig)
    return known


def _describe(data: dict[str, Any]) -> Any:
    def describe(loc: Loc) -> tuple[str, Loc]:
        if len(loc) >= 2 and loc[0] == "feed" and isinstance(loc[1], int):
            feeds = data.get("feed") or []
            feed = feeds[loc[1]] if loc[1] < len(feeds) else {}
            fid = feed.get("id") if isinstance(feed, dict) else None
            return (f'feed "{fid}"' if fid else f"feed #{loc[1] + 1}"), loc[2:]
        if len(loc) >= 2 and loc[0] == "channels":
            return f'channel "{loc[1]}"', loc[2:]
        if len(loc) >= 2 and loc[0] == "route" and isinstance(loc[1], int):
            return f"route #{loc[1] + 1}", loc[2:]
        if len(loc) >= 2 and loc[0] in ("database", "http", "poll", "delivery", "log", "stories", "server", "health"):
            return f"[{loc[0]}]", loc[1:]
        return "", loc

    return describe


def _interpolate(value: Any, loc: Loc, lines: KeyLines, shown: str, env: dict[str, str], used: set[str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string, remembering what came from the env."""
    if isinstance(value, dict):
        if len(loc) == 2 and loc[0] == "channels" and value.get("enabled") is False:
            return value  # a disabled channel may name variables that are not set
        return {k: _interpolate(v, (*loc, k), lines, shown, env, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), lines, shown, env, used) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            used.add(env[name])
            return env[name]
        if default is not None:
            return default
        prefix, field_loc = _describe({})(loc)
        field = ".".join(str(p) for p in field_loc if isinstance(p, str))
        where = f'{prefix}: "{field}"' if prefix else f'"{field}"'
        raise ConfigError(f"{where}: environment variable {name} is not set", shown, lines.line_of(loc))

    return _ENV.sub(sub, value)


def _resolve_path(base: Path, value: Path) -> Path:
    return value if value.is_absolute() else (base / value)


def _resolve_database_url(base: Path, url: str) -> str:
    """Relative SQLite paths are relative to the config file, not to wherever the daemon started."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url[len(prefix) :] not in ("", ":memory:"):
        return prefix + str((base / url[len(prefix) :]).resolve())
    return url


def load_config(path: Path | str, *, env: dict[str, str] | None = None, display: str | None = None) -> Config:
    """Read and validate a config file. Raises ConfigError (``path:line: message``)."""
    path = Path(path)
    shown = display or str(path)
    env = dict(os.environ) if env is None else env
    raw, lines = load_toml(path, display=shown)
    used_secrets: set[str] = set()
    data = _interpolate(raw, (), lines, shown, env, used_secrets)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        message, line = first_error(exc, lines, shown, known_fields=_known_fields(raw), describe=_describe(raw))
        # The message quotes the bad value, which may have come from a ${VAR} secret.
        masked = Redactor(used_secrets)
        masked.add_urls(used_secrets)
        raise ConfigError(masked(message), shown, line) from None

    base = path.resolve().parent
    redactor = Redactor(used_secrets)
    seen: set[str] = set()
    for i, feed in enumerate(config.feeds):
        if feed.id in seen:
            raise ConfigError(f'feed "{feed.id}": duplicate feed id', shown, lines.line_of(("feed", i, "id")))
        seen.add(feed.id)

    channels: dict[str, Channel] = {"console": Channel(name="console", kind="console")}
    for name, spec in config.channels.items():
        loc: Loc = ("channels", name)
        if not spec.enabled:
            channels.pop(name, None)
            continue
        if spec.type == "console":
            if spec.urls or spec.urls_file:
                raise ConfigError(f'channel "{name}": a console channel takes no urls', shown, lines.line_of(loc))
            options = _delivery_options(spec, base, [], config.delivery.digest_schedule)
            channels[name] = Channel(name=name, kind="console", **options)
            continue
        if spec.urls and spec.urls_file:
            raise ConfigError(
                f'channel "{name}": set "urls" or "urls_file", not both',
                shown,
                lines.line_of((*loc, "urls_file")),
            )
        urls = list(spec.urls)
        if spec.urls_file:
            secret_path = _resolve_path(base, spec.urls_file)
            try:
                text = secret_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f'channel "{name}": cannot read "urls_file" {secret_path}: {exc.strerror}',
                    shown,
                    lines.line_of((*loc, "urls_file")),
                ) from None
            urls = [u.strip() for u in text.splitlines() if u.strip() and not u.lstrip().startswith("#")]
        if not urls:
            raise ConfigError(f'channel "{name}": set "urls" or "urls_file"', shown, lines.line_of(loc))
        for number, url in enumerate(urls, start=1):
            try:
                urlsplit(url)
            except ValueError:  # e.g. an unclosed IPv6 bracket; the URL may hold a secret: not shown
                where = "urls_file" if spec.urls_file else "urls"
                raise ConfigError(
                    f'channel "{name}": URL {number} of "{where}" is malformed (check its [brackets] and port)',
                    shown,
                    lines.line_of((*loc, where)),
                ) from None
        redactor.add_urls(urls)
        channels[name] = Channel(
            name=name,
            kind="apprise",
            urls=tuple(urls),
            fallback=spec.fallback,
            fallback_after_seconds=spec.fallback_after.total_seconds(),
            **_delivery_options(spec, base, urls, config.delivery.digest_schedule),
        )

    for name, spec in config.channels.items():
        if spec.fallback is not None and (spec.fallback == name or spec.fallback not in channels):
            problem = "is the channel itself" if spec.fallback == name else "is not a channel"
            raise ConfigError(
                f'channel "{name}": "fallback": "{spec.fallback}" {problem} (known: {", ".join(sorted(channels))})',
                shown,
                lines.line_of(("channels", name, "fallback")),
            )

    if config.health.channel is not None and config.health.channel not in channels:
        raise ConfigError(
            f'[health] "channel": unknown channel "{config.health.channel}" (known: {", ".join(sorted(channels))})',
            shown,
            lines.line_of(("health", "channel")),
        )

    for i, name in enumerate(config.delivery.default_channels):
        if name not in channels:
            raise ConfigError(
                f'[delivery] "default_channels": unknown channel "{name}" (known: {", ".join(sorted(channels))})',
                shown,
                lines.line_of(("delivery", "default_channels", i)),
            )

    routes = []
    for i, route in enumerate(config.routes):
        for j, name in enumerate(route.channels):
            if name not in channels:
                raise ConfigError(
                    f'route #{i + 1}: "channels": unknown channel "{name}" (known: {", ".join(sorted(channels))})',
                    shown,
                    lines.line_of(("route", i, "channels", j)),
                )
        routes.append(
            Route(
                channels=tuple(route.channels),
                min_severity=route.severity,
                rules=tuple(route.rules),
                rule_tags=tuple(route.rule_tags),
                feed_tags=tuple(route.feed_tags),
                continue_=route.continue_,
                name=route.name,
            )
        )
    floors = {name: spec.min_severity for name, spec in config.channels.items() if spec.enabled}

    db_url = _resolve_database_url(base, config.database.url)
    redactor.add(_url_password(db_url))
    return config.model_copy(
        update={
            "path": path,
            "rules_dir": _resolve_path(base, config.rules_dir),
            "database": config.database.model_copy(update={"url": db_url}),
            "resolved_channels": channels,
            "resolved_routes": tuple(routes),
            "channel_min_severity": floors,
            "redactor": redactor,
        }
    )


def _delivery_options(spec: ChannelConfig, base: Path, urls: list[str], digest_schedule: str) -> dict[str, Any]:
    """The Channel fields that shape and pace messages, from a validated channel section.

    An immediate channel still has a digest schedule, for what rules send as digests
    (follow_up = "digest", throttle surplus = "digest"): its own, else [delivery] digest_schedule.
    """
    return {
        "format": default_format(urls) if spec.format == "auto" else spec.format,
        "template_dir": str(_resolve_path(base, spec.template_dir)) if spec.template_dir else None,
        "mode": spec.mode,
        "digest_schedule": spec.schedule or digest_schedule,
        "timezone": spec.timezone,
        "digest_max_items": spec.digest_max_items,
        "quiet_hours": parse_quiet_hours(spec.quiet_hours) if spec.quiet_hours else None,
        "quiet_bypass": spec.quiet_bypass,
        "rate_limit": parse_rate_limit(spec.rate_limit) if spec.rate_limit else None,
    }


def _url_password(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []


def config_path_from(value: str | None) -> Path:
    """``--config``, else ``$WATCHER_CONFIG``, else ./config.toml."""
    return Path(value or os.environ.get("WATCHER_CONFIG") or DEFAULT_CONFIG)
