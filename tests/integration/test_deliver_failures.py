"""deliver() when peers fail, rate-limit or take attachments: real loopback receivers, real apprise.

Webhooks are apprise's ``json://`` and ``gotify://`` plugins aimed at ``feed_server``; Slack is
apprise's own plugin aimed there through its endpoint class attribute (as in test_escaping.py);
e-mail goes to ``smtp_sink``. Nothing of apprise or requests is mocked.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import stat
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from apprise.plugins.slack import NotifySlack

from tests.fixtures.feed_server import FeedServer, RecordedRequest, Response
from tests.fixtures.smtp_sink import SmtpSink
from watcher.model import Attachment, Channel, Message
from watcher.notify.deliver import deliver
from watcher.notify.http_seam import retry_after

pytestmark = pytest.mark.timeout(30)

FAST = "cto=1&rto=2"  # apprise's socket timeouts (connect, read) for each HTTP URL
MESSAGE = Message(title="CMA opens invitation to comment", body="Deadline: 14 March.\nSee the notice.")
CSV = Attachment("watcher-digest-2026-11-30.csv", b"rule,item\ncma-itc,CMA opens invitation\n")
SLACK_TOKENS = "T0000/B0000/s3cr3tT0k3n0000000000000"


def _channel(*urls: str, name: str = "legal-test") -> Channel:
    return Channel(name=name, kind="apprise", urls=urls)


def _json_url(server: FeedServer, path: str = "/hook", userinfo: str = "") -> str:
    return f"json://{userinfo}127.0.0.1:{server.port}{path}?{FAST}"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def slack_url(feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real apprise Slack webhook URL whose endpoint is ``feed_server``'s /services/..."""
    monkeypatch.setattr(NotifySlack, "webhook_url", feed_server.url("/services").rstrip("/"))
    return f"slack://{SLACK_TOKENS}?{FAST}"


# -- Retry-After ------------------------------------------------------------------------------


def test_429_with_retry_after_seconds(feed_server: FeedServer) -> None:
    feed_server.route("/hook", method="POST", status=429, headers={"Retry-After": "120"})

    result = deliver(_channel(_json_url(feed_server)), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.retry_after_seconds == 120
    assert result.error == "channel 'legal-test': HTTP 429 from JSON (retry after 120s)"
    assert len(feed_server.requests_for("/hook", "POST")) == 1  # apprise did not retry by itself


def test_429_with_retry_after_http_date(feed_server: FeedServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    feed_server.route("/hook", method="POST", status=429, headers={"Retry-After": when})

    result = deliver(_channel(_json_url(feed_server)), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    # Measured from the response's Date header; both dates have whole seconds.
    assert result.retry_after_seconds is not None
    assert 88 <= result.retry_after_seconds <= 91


def test_503_with_retry_after(feed_server: FeedServer) -> None:
    feed_server.route("/hook", method="POST", status=503, headers={"Retry-After": "30"})

    result = deliver(_channel(_json_url(feed_server)), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.retry_after_seconds == 30
    assert result.error == "channel 'legal-test': HTTP 503 from JSON (retry after 30s)"


@pytest.mark.parametrize(
    ("value", "expected", "suffix"),
    [("999999999999", 86400.0, " (retry after 86400s)"), ("soon", None, ""), ("0", 0.0, " (retry after 0s)")],
)
def test_retry_after_is_clamped_or_ignored(
    feed_server: FeedServer, value: str, expected: float | None, suffix: str
) -> None:
    feed_server.route("/hook", method="POST", status=429, headers={"Retry-After": value})

    result = deliver(_channel(_json_url(feed_server)), MESSAGE, timeout_seconds=10)

    assert result.recoverable
    assert result.retry_after_seconds == expected
    assert result.error == f"channel 'legal-test': HTTP 429 from JSON{suffix}"


def test_retry_after_http_date_is_measured_from_the_response_date() -> None:
    date = "Sun, 06 Nov 1994 08:49:37 GMT"  # the peer's clock, far from ours
    assert retry_after("Sun, 06 Nov 1994 08:51:37 GMT", date) == 120
    assert retry_after("Sun, 06 Nov 1994 08:40:00 GMT", date) == 0  # in the past
    assert retry_after("Sunday, 06-Nov-94 08:51:37 GMT", date) == 120  # RFC 850 form
    assert retry_after(" 15 ", None) == 15
    assert retry_after("-5", None) is None
    assert retry_after("", None) is None


def test_500_is_recoverable_and_ignores_retry_after(feed_server: FeedServer) -> None:
    feed_server.route("/hook", method="POST", status=500, headers={"Retry-After": "60"})

    result = deliver(_channel(_json_url(feed_server)), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.retry_after_seconds is None
    assert result.error == "channel 'legal-test': HTTP 500 from JSON"


def test_404_is_permanent(feed_server: FeedServer) -> None:
    # An unregistered path: feed_server answers 404.
    result = deliver(_channel(_json_url(feed_server, "/gone")), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert not result.recoverable
    assert result.retry_after_seconds is None
    assert result.error == "channel 'legal-test': HTTP 404 from JSON"


def test_success_after_failures_has_no_retry_after(feed_server: FeedServer) -> None:
    channel = _channel(_json_url(feed_server))
    feed_server.route("/hook", method="POST", status=429, headers={"Retry-After": "5"})
    assert deliver(channel, MESSAGE, timeout_seconds=10).retry_after_seconds == 5
    feed_server.route("/hook", method="POST", status=503)
    assert deliver(channel, MESSAGE, timeout_seconds=10).retry_after_seconds is None

    feed_server.route("/hook", method="POST", status=200, headers={"Retry-After": "5"})
    result = deliver(channel, MESSAGE, timeout_seconds=10)

    assert result.ok, result
    assert result.error is None
    assert result.retry_after_seconds is None
    assert len(feed_server.requests_for("/hook", "POST")) == 3


def test_each_url_keeps_its_own_status_and_the_longest_wait_wins(feed_server: FeedServer) -> None:
    feed_server.route("/a", method="POST", status=429, headers={"Retry-After": "30"})
    feed_server.route("/b", method="POST", status=503, headers={"Retry-After": "120"})
    feed_server.route("/c", method="POST", status=200)
    channel = _channel(_json_url(feed_server, "/a"), _json_url(feed_server, "/b"), _json_url(feed_server, "/c"))

    result = deliver(channel, MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.retry_after_seconds == 120
    assert result.error == (
        "channel 'legal-test': URL #1: HTTP 429 from JSON (retry after 30s); "
        "URL #2: HTTP 503 from JSON (retry after 120s)"
    )
    assert "URL #3 (JSON): sent" in result.details


def test_apprise_retries_are_judged_by_their_last_attempt(feed_server: FeedServer) -> None:
    answers = [Response(429, {"Retry-After": "120"}), Response(500)]
    feed_server.handler("/hook", lambda _request: answers.pop(0), method="POST")
    url = f"json://127.0.0.1:{feed_server.port}/hook?{FAST}&retry=1&wait=0"

    result = deliver(_channel(url), MESSAGE, timeout_seconds=10)

    assert len(feed_server.requests_for("/hook", "POST")) == 2
    assert result.error == "channel 'legal-test': HTTP 500 from JSON"
    assert result.retry_after_seconds is None


def test_slack_429_reports_retry_after_and_apprise_does_not_retry(feed_server: FeedServer, slack_url: str) -> None:
    path = f"/services/{SLACK_TOKENS}"
    feed_server.route(path, method="POST", status=429, headers={"Retry-After": "120"}, body="rate_limited")

    started = time.monotonic()
    result = deliver(_channel(slack_url, name="team-slack"), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.retry_after_seconds == 120
    assert result.error == "channel 'team-slack': HTTP 429 from Slack (retry after 120s)"
    # The Slack plugin neither retries nor sleeps on a 429: one request, answered at once.
    assert len(feed_server.requests_for(path, "POST")) == 1
    assert time.monotonic() - started < 2


# -- no answer --------------------------------------------------------------------------------


def test_connection_refused_is_recoverable_with_a_clear_reason() -> None:
    token = "tok_REFUSED_0123456789"
    url = f"json://127.0.0.1:{_unused_port()}/{token}?{FAST}"

    result = deliver(_channel(url), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.retry_after_seconds is None
    assert result.error == "channel 'legal-test': could not reach JSON: [Errno 111] Connection refused"
    assert all(token not in text for text in (result.error, *result.details))


def test_receiver_slower_than_the_delivery_budget(feed_server: FeedServer) -> None:
    feed_server.route("/hook", method="POST", delay=10)
    url = f"json://127.0.0.1:{feed_server.port}/hook?cto=1&rto=10"

    started = time.monotonic()
    result = deliver(_channel(url), MESSAGE, timeout_seconds=1.0)

    assert time.monotonic() - started < 2.5
    assert not result.ok
    assert result.recoverable
    assert result.retry_after_seconds is None
    assert result.error is not None
    assert result.error.startswith("channel 'legal-test': JSON did not finish within ")


def test_receiver_slower_than_the_read_timeout(feed_server: FeedServer) -> None:
    feed_server.route("/hook", method="POST", delay=10)
    url = f"json://127.0.0.1:{feed_server.port}/hook?cto=1&rto=0.3"

    result = deliver(_channel(url), MESSAGE, timeout_seconds=5)

    assert not result.ok
    assert result.recoverable
    assert result.error == "channel 'legal-test': JSON timed out waiting for a reply"


# -- secrets ----------------------------------------------------------------------------------


def test_no_secret_in_errors_details_or_logs(
    feed_server: FeedServer, slack_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    password, token = "s3cretPassw0rd", "tok_ABCDEF123456"
    feed_server.route(f"/{token}", method="POST", status=429, headers={"Retry-After": "120"})
    feed_server.route(f"/services/{SLACK_TOKENS}", method="POST", status=503, headers={"Retry-After": "60"})
    json_url = _json_url(feed_server, f"/{token}", userinfo=f"user:{password}@")
    refused_url = f"json://user:{password}@127.0.0.1:{_unused_port()}/{token}?{FAST}"
    caplog.set_level(logging.DEBUG)  # root: includes urllib3, which logs request paths at DEBUG
    caplog.set_level(logging.DEBUG, logger="apprise")  # apprise does not propagate: caplog hooks it

    result = deliver(_channel(json_url, slack_url, refused_url), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.retry_after_seconds == 120
    assert result.error == (
        "channel 'legal-test': URL #1: HTTP 429 from JSON (retry after 120s); "
        "URL #2: HTTP 503 from Slack (retry after 60s); "
        "URL #3: could not reach JSON: [Errno 111] Connection refused"
    )
    [request] = feed_server.requests_for(f"/{token}", "POST")  # it really went out, with credentials
    assert request.headers["authorization"].startswith("Basic ")
    records = [r.getMessage() for r in caplog.records]
    assert any("Failed to send JSON" in r for r in records)  # the records were really captured
    assert any(r.startswith("http://127.0.0.1") for r in records)  # ...including urllib3's
    for text in (result.error, *result.details, *records):
        for secret in (password, token, "s3cr3tT0k3n0000000000000", json_url, slack_url, refused_url):
            assert secret not in text


# -- attachments ------------------------------------------------------------------------------


def test_email_carries_the_attachment(smtp_sink: SmtpSink) -> None:
    message = Message(title=MESSAGE.title, body=MESSAGE.body, attachments=(CSV,))

    result = deliver(_channel(smtp_sink.mailto_url()), message, timeout_seconds=10)

    assert result.ok, result
    [mail] = smtp_sink.wait_for(1)
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Deadline: 14 March." in text.get_content()
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == CSV.name
    assert part.get_payload(decode=True) == CSV.content


def test_webhooks_get_the_message_whether_or_not_they_take_attachments(feed_server: FeedServer, slack_url: str) -> None:
    feed_server.route("/hook", method="POST")
    feed_server.route("/message", method="POST", body='{"id": 1}', headers={"Content-Type": "application/json"})
    feed_server.route(f"/services/{SLACK_TOKENS}", method="POST", body="ok")
    gotify_url = f"gotify://127.0.0.1:{feed_server.port}/AbCdEfGhIjKlMnOp?{FAST}"  # no attachment support
    other = Attachment("notes/../summary.txt", b"second file")
    message = Message(title=MESSAGE.title, body=MESSAGE.body, attachments=(CSV, other))

    result = deliver(_channel(_json_url(feed_server), gotify_url, slack_url), message, timeout_seconds=10)

    assert result.ok, result
    [hook] = feed_server.requests_for("/hook", "POST")
    payload = json.loads(hook.body)
    assert payload["message"] == MESSAGE.body
    sent = {a["filename"]: base64.b64decode(a["base64"]) for a in payload["attachments"]}
    assert sent == {CSV.name: CSV.content, "summary.txt": b"second file"}
    [gotify] = feed_server.requests_for("/message", "POST")
    assert json.loads(gotify.body)["message"] == MESSAGE.body
    [slack] = feed_server.requests_for(f"/services/{SLACK_TOKENS}", "POST")
    assert "Deadline: 14 March." in slack.body.decode()  # Slack webhooks cannot attach; text still goes


def test_attachment_files_are_private_and_removed_after_the_send(
    feed_server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[int] = []

    def inspect(_request: RecordedRequest) -> Response:
        # Runs while deliver() waits for the answer: the files exist now.
        [folder] = list(tmp_path.iterdir())
        seen.append(stat.S_IMODE(os.stat(folder).st_mode))
        return Response(200)

    feed_server.handler("/hook", inspect, method="POST")
    message = Message(title="t", body="b", attachments=(CSV,))

    assert deliver(_channel(_json_url(feed_server)), message, timeout_seconds=10).ok
    assert seen == [0o700]
    assert list(tmp_path.iterdir()) == []


def test_console_lists_attachments() -> None:
    stream = io.StringIO()
    message = Message(title="Digest", body="2 alerts", attachments=(CSV, Attachment("empty.txt", b"")))

    result = deliver(Channel(name="stdout", kind="console"), message, console=stream)

    assert result.ok
    assert stream.getvalue() == (
        f"Digest\n2 alerts\n(attached: {CSV.name}, {len(CSV.content)} bytes)\n(attached: empty.txt, 0 bytes)\n"
    )
