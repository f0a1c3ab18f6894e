"""Send one rendered Message to one Channel through apprise, and say how it went.

Owns the conversation with apprise: building it from a channel's URLs, bounding its time, handing
it the message's attachments, reading its per-URL result and turning what happened into a short,
redacted reason (and, for a 429 or 503, how long the peer asked us to wait).
Must not touch the database, retry, sleep or decide what happens next: the outbox does that
from the DeliveryResult. Never raises for a failed send, and never puts a URL in its output.

The HTTP responses behind apprise's result come from ``http_seam``, which says how and why.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TextIO

import apprise
from apprise import AppriseResultStatus, NotifyFormat

from watcher.errors import DeliveryError
from watcher.model import Attachment, Channel, DeliveryResult, Message
from watcher.notify.http_seam import Exchange, observe_notify
from watcher.redact import Redactor

DEFAULT_TIMEOUT_SECONDS = 30.0
_MAX_REASON_CHARS = 200
_MAX_LOG_LINES = 5

_FORMATS = {"text": NotifyFormat.TEXT, "markdown": NotifyFormat.MARKDOWN, "html": NotifyFormat.HTML}

# The redactor of the channel being sent, for apprise's own log records. apprise runs each URL in
# a worker thread with a copy of the caller's context, so its records still see it.
_active_redactor: contextvars.ContextVar[Redactor | None] = contextvars.ContextVar(
    "watcher_deliver_redactor", default=None
)


class _RedactRecords(logging.Filter):
    """Mask the active channel's secrets in every apprise record, before any handler sees it.

    apprise logs URLs (path tokens unmasked), request URLs and exception texts. A logger filter
    runs before all handlers: apprise's per-result capture, ours, and pytest's caplog, which
    attaches itself even to non-propagating loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redact = _active_redactor.get()
        if redact is not None:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


# apprise logs through the stdlib logger "apprise" (all plugins included). Its records reach the
# DeliveryResult through each result's capture; they do not also go to our root handlers, where
# they would repeat what the outbox reports, with less care.
_apprise_log = logging.getLogger(apprise.LOGGER_NAME)
_apprise_log.propagate = False
_apprise_log.addFilter(_RedactRecords())
# apprise's HTTP plugins go through requests -> urllib3, which logs request paths (our tokens) at
# DEBUG and retried URLs at WARNING. A logger filter does not cover child loggers: name each one.
for _name in ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_RedactRecords())

# apprise imports its plugins lazily, on the first URL it parses. The e-mail plugin imports the
# stdlib `imghdr` (a shim for PGPy), deprecated since Python 3.11, whose DeprecationWarning would
# otherwise fire mid-delivery (and fail tests, which treat warnings as errors). Load them once,
# here, with exactly that warning silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)
    apprise.NotificationManager().load_modules()  # type: ignore[no-untyped-call]  # untyped in 2.3

# Reasons, read from apprise's log lines (apprise 2.3 plugins; see plugins/email/smtp.py and
# plugins/custom_json.py). The e-mail plugin logs smtplib's exception at DEBUG as
# "Socket Exception: (550, b'text')", or a dict of them when every recipient was refused.
_SMTP_REPLY = re.compile(r"^Socket Exception: .*?\((\d{3}), b?['\"](.*?)['\"]")
_SMTP_REFUSED = re.compile(r"^SMTP recipient .* was refused: (\d{3}) (.*)")
_HTTP_STATUS = re.compile(r"\berror=(\d{3})\b|\bHTTP Error (\d{3})\b")
_SOCKET_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")]+")
_TIMED_OUT = re.compile(r"timed out", re.IGNORECASE)
# Retrying these can succeed; any other 4xx is a config problem (wrong token, gone endpoint).
_RETRYABLE_4XX = {408, 425, 429}
# A peer's Retry-After is honoured only on these (RFC 9110 10.2.3, RFC 6585 4).
_RETRY_AFTER_STATUSES = {429, 503}


# -- delivery ---------------------------------------------------------------------------------


def deliver(
    channel: Channel,
    message: Message,
    *,
    console: TextIO | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> DeliveryResult:
    """Send ``message`` to every URL of ``channel``; ok only if all of them accepted it.

    ``timeout_seconds`` bounds the whole call, so a dead endpoint cannot stall the outbox.
    Raises nothing for a failed send: failures come back as ``ok=False`` with a redacted ``error``,
    and ``retry_after_seconds`` set when a peer answered 429 or 503 with a Retry-After.
    """
    if channel.kind == "console":
        return _to_console(channel, message, console if console is not None else sys.stdout)
    if channel.kind != "apprise":
        return _failed(channel, f"unknown channel kind {channel.kind!r}", recoverable=False)
    body_format = _FORMATS.get(message.body_format)
    if body_format is None:
        return _failed(channel, f"unknown body format {message.body_format!r}", recoverable=False)
    if not channel.urls:
        return _failed(channel, "no URLs configured", recoverable=False)

    redact = Redactor()
    redact.add_urls(channel.urls)
    token = _active_redactor.set(redact)
    try:
        return _send(channel, message, body_format, redact, timeout_seconds)
    finally:
        _active_redactor.reset(token)


def _send(
    channel: Channel, message: Message, body_format: NotifyFormat, redact: Redactor, timeout_seconds: float
) -> DeliveryResult:
    asset = apprise.AppriseAsset(service_timeout=timeout_seconds)
    sender = apprise.Apprise(asset=asset)
    observed: list[list[list[Exchange]]] = []
    # Validate every URL before sending to any, so a typo in URL #2 sends nothing at all.
    for index, url in enumerate(channel.urls, start=1):
        service = apprise.Apprise.instantiate(url, asset=asset)
        if service is None:
            return _failed(channel, f"URL #{index} is not a valid apprise URL", recoverable=False)
        observed.append(observe_notify(service))
        sender.add(service)

    with contextlib.ExitStack() as stack:
        attach = None
        if message.attachments:
            try:
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="watcher-attach-"))
                paths = _write_attachments(folder, message.attachments)
            except OSError as exc:
                return _failed(channel, f"could not prepare attachments: {exc.strerror or exc}", recoverable=True)
            attach = apprise.AppriseAttachment(paths, asset=asset)
        # LogCapture lowers apprise's logger to DEBUG for the call: SMTP reply codes and socket
        # errors are only logged at DEBUG. We read each URL's lines from its own result rather than
        # from this process-wide buffer, which would mix in other sends (and their secrets). The
        # level is process-wide too: two overlapping deliveries may lose DEBUG detail, never a result.
        #
        # Attachments go to every URL. With a non-empty body, apprise 2.3 hands `attach` to every
        # plugin and one without `attachment_support` simply ignores it and sends the text (base.py
        # _build_send_calls; plugins test `attach and self.attachment_support`); Slack webhooks log
        # "Slack Webhooks do not support attachments." and send the text. Only an empty body makes
        # apprise skip such a plugin ("does not support attachments; service skipped"), and an
        # empty body is refused by every plugin even without attachments.
        with apprise.LogCapture(level=logging.DEBUG):  # type: ignore[no-untyped-call]  # untyped in 2.3
            result = sender.notify(
                body=message.body,
                title=message.title,
                body_format=body_format,
                timeout=timeout_seconds,
                log_level=logging.DEBUG,
                attach=attach,
            )
    # The folder is gone now. A send apprise gave up waiting for may still be running in its
    # worker thread and find its file missing: it was already reported as failed, and is retried.
    with result:
        return _read_result(channel, result, redact, observed)


def _write_attachments(folder: str, attachments: Sequence[Attachment]) -> list[str]:
    """Write each attachment to ``folder/N/name`` (a folder each, so equal names cannot clash)."""
    paths = []
    for index, attachment in enumerate(attachments, start=1):
        subfolder = os.path.join(folder, str(index))
        os.mkdir(subfolder, 0o700)
        path = os.path.join(subfolder, _file_name(attachment.name, index))
        with open(path, "xb") as file:
            file.write(attachment.content)
        paths.append(path)
    return paths


def _file_name(name: str, index: int) -> str:
    """One safe path component that keeps ``name`` as the recipient sees it where possible."""
    # Names come from our renderers, but on disk a name is a path: keep one component, and its
    # end (the extension) if it is longer than file systems allow.
    base = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\0", "").strip()
    base = base.encode()[-200:].decode(errors="ignore")  # most file systems allow 255 bytes
    return base if base not in ("", ".", "..") else f"attachment-{index}"


class _Why(NamedTuple):
    reason: str
    recoverable: bool
    retry_after_seconds: float | None = None


def _read_result(
    channel: Channel, result: apprise.AppriseResult, redact: Redactor, observed: Sequence[Sequence[Sequence[Exchange]]]
) -> DeliveryResult:
    """Turn apprise's per-URL outcome into one DeliveryResult.

    apprise never raises for a failed send, and its overall status treats a URL marked
    ``optional`` as a success: judge each URL by its last attempt instead.
    """
    services = result.results
    if len(services) != len(channel.urls):
        # No URL was tried: apprise refused the call itself (e.g. an empty message).
        lines = [redact(e.message) for e in result.call_logs() if _is_problem(e.level)]
        reason = _shorten(lines[-1]) if lines else f"apprise sent nothing (status {result.status.name})"
        return _failed(channel, reason, recoverable=False, details=tuple(lines[-_MAX_LOG_LINES:]))

    details: list[str] = []
    failures: list[str] = []
    all_recoverable = True
    retry_after: list[float] = []
    for index, (service, attempts) in enumerate(zip(services, observed, strict=True), start=1):
        label = f"URL #{index} ({service.name})"
        if service.attempts and service.attempts[-1].status == AppriseResultStatus.SUCCESS:
            details.append(f"{label}: sent")
            continue
        entries = list(service.logs())
        # A snapshot: a worker apprise stopped waiting for may still append to its list.
        exchanges = tuple(attempts[-1]) if attempts else ()
        why = _explain(service, entries, exchanges)
        reason = _shorten(redact(why.reason))
        all_recoverable = all_recoverable and why.recoverable
        if why.retry_after_seconds is not None:
            retry_after.append(why.retry_after_seconds)
        failures.append(f"URL #{index}: {reason}" if len(services) > 1 else reason)
        details.append(f"{label}: failed: {reason}")
        problems = [redact(e.message) for e in entries if _is_problem(e.level)]
        details.extend(f"{label}: {_shorten(line)}" for line in problems[-_MAX_LOG_LINES:])

    if not failures:
        return DeliveryResult(channel=channel.name, ok=True, details=tuple(details))
    # A partial send is still a failure: the outbox re-sends the whole message, so the URLs that
    # did succeed receive it again. Delivery is at-least-once, never at-most-once.
    # Recoverable only if every failure is: a row with a permanent failure can never become "sent".
    # The longest wait any peer asked for: re-sending sooner would hit that peer's limit again.
    return _failed(
        channel,
        "; ".join(failures),
        recoverable=all_recoverable,
        details=tuple(details),
        retry_after_seconds=max(retry_after, default=None),
    )


def _explain(
    service: apprise.NotifyResult, entries: list[apprise.NotifyLogEntry], exchanges: Sequence[Exchange]
) -> _Why:
    """Pick a short reason, whether retrying may help, and any Retry-After, for one failed URL.

    What the HTTP seam saw wins over apprise's log lines, whose wording differs by plugin; the
    lines remain the source for SMTP and for plugins that do not use requests.
    """
    name = service.name
    if service.attempts and service.attempts[-1].status == AppriseResultStatus.TIMEOUT:
        return _Why(f"{name} did not finish within {service.elapsed:.1f}s", True)
    # The last failed exchange of the last attempt, not simply the last exchange: a plugin that
    # goes on after a failure (Slack bot mode posts to each channel in turn) may end on a success.
    failed = next((x for x in reversed(exchanges) if x.is_failure), None)
    if failed is not None:
        if failed.status is not None:
            code = failed.status
            reason = f"HTTP {code} from {name}"
            wait = failed.retry_after_seconds if code in _RETRY_AFTER_STATUSES else None
            if wait is not None:
                reason += f" (retry after {math.ceil(wait)}s)"
            return _Why(reason, code >= 500 or code in _RETRYABLE_4XX, wait)
        if failed.failure == "connect-timeout":
            return _Why(f"could not reach {name}: connection timed out", True)
        if failed.failure == "read-timeout":
            return _Why(f"{name} timed out waiting for a reply", True)
        if failed.failure == "tls":
            return _Why(f"TLS with {name} failed: {failed.detail or 'handshake or certificate error'}", True)
        if failed.failure == "connect":
            return _Why(f"could not reach {name}: {failed.detail or 'connection failed'}", True)
    lines = [e.message for e in entries]
    for line in reversed(lines):
        if match := _SMTP_REPLY.search(line) or _SMTP_REFUSED.search(line):
            return _Why(f"SMTP server refused the message: {match.group(1)} {match.group(2)}", True)
    for line in reversed(lines):
        if match := _HTTP_STATUS.search(line):
            code = int(match.group(1) or match.group(2))
            return _Why(f"HTTP {code} from {name}", code >= 500 or code in _RETRYABLE_4XX)
    for line in reversed(lines):
        if match := _SOCKET_ERROR.search(line):
            return _Why(f"could not reach {name}: {match.group(0).strip()}", True)
        if _TIMED_OUT.search(line):
            return _Why(f"{name} timed out (connect or read)", True)
    problems = [e.message for e in entries if _is_problem(e.level)]
    return _Why(problems[-1] if problems else f"{name} reported a failure", True)


def _is_problem(level: str) -> bool:
    return level in {"WARNING", "ERROR", "CRITICAL", "DEPRECATION WARNING"}


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


def _to_console(channel: Channel, message: Message, stream: TextIO) -> DeliveryResult:
    attached = "".join(f"(attached: {a.name}, {len(a.content)} bytes)\n" for a in message.attachments)
    try:
        stream.write(f"{message.title}\n{message.body}\n{attached}")
        stream.flush()
    except (OSError, ValueError) as exc:  # ValueError: write to a closed stream
        return _failed(channel, f"console write failed: {exc}", recoverable=True)
    return DeliveryResult(channel=channel.name, ok=True)


def _failed(
    channel: Channel,
    reason: str,
    *,
    recoverable: bool,
    details: Iterable[str] = (),
    retry_after_seconds: float | None = None,
) -> DeliveryResult:
    error = DeliveryError(channel.name, reason, recoverable=recoverable)
    return DeliveryResult(
        channel=channel.name,
        ok=False,
        error=str(error),
        recoverable=recoverable,
        retry_after_seconds=retry_after_seconds,
        details=tuple(details),
    )
