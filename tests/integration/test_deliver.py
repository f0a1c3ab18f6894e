"""deliver() against real peers: the SMTP sink and a loopback HTTP receiver. No mocks of apprise."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fixtures.smtp_sink import SmtpSink
from watcher.model import Channel, Message
from watcher.notify.deliver import deliver

# Every test must finish quickly even when apprise has to give up on a peer.
pytestmark = pytest.mark.timeout(30)

# Short apprise socket timeouts (connect, read) for every HTTP URL in this module.
FAST = "cto=1&rto=2"
MESSAGE = Message(title="CMA opens invitation to comment", body="Deadline: 14 March.\nSee the notice.")


@dataclass
class _Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


@dataclass
class _Receiver:
    """A minimal webhook peer: records POSTs; answers ``status`` (per path if set) after ``delay``."""

    port: int = 0
    status: int = 200
    status_by_path: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    requests: list[_Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook", userinfo: str = "") -> str:
        return f"json://{userinfo}127.0.0.1:{self.port}{path}?{FAST}"


def _handler_for(receiver: _Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(_Received(self.path, dict(self.headers.items()), body))
            if receiver.delay:
                time.sleep(receiver.delay)
            path = self.path.split("?", 1)[0]
            self.send_response(receiver.status_by_path.get(path, receiver.status))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean; requests are recorded above

    return Handler


@pytest.fixture
def _receiver() -> Iterator[_Receiver]:
    receiver = _Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _channel(*urls: str, name: str = "legal-test") -> Channel:
    return Channel(name=name, kind="apprise", urls=urls)


# -- email ------------------------------------------------------------------------------------


def test_email_reaches_the_sink(smtp_sink: SmtpSink) -> None:
    result = deliver(_channel(smtp_sink.mailto_url()), MESSAGE, timeout_seconds=10)

    assert result.ok, result
    assert result.error is None
    [mail] = smtp_sink.wait_for(1)
    assert mail["Subject"] == MESSAGE.title
    assert mail["To"] == "alerts@example.test"
    assert "watcher@example.test" in mail["From"]
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Deadline: 14 March." in text.get_content()


def test_email_html_body_format(smtp_sink: SmtpSink) -> None:
    html = Message(title="HTML alert", body="<p>Deadline: <b>14 March</b></p>", body_format="html")
    assert deliver(_channel(smtp_sink.mailto_url()), html, timeout_seconds=10).ok

    [mail] = smtp_sink.wait_for(1)
    part = mail.get_body(preferencelist=("html",))
    assert part is not None
    assert "<b>14 March</b>" in part.get_content()


def test_email_refused_is_a_recoverable_failure_without_the_url(smtp_sink: SmtpSink) -> None:
    url = smtp_sink.mailto_url()
    smtp_sink.reject(550, "mailbox unavailable")

    result = deliver(_channel(url), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.error is not None
    assert "refused" in result.error
    assert "550 mailbox unavailable" in result.error
    assert result.error.startswith("channel 'legal-test': ")
    for part in (url, "mailto", "127.0.0.1", str(smtp_sink.port), "alerts@example.test", "watcher@"):
        assert part not in result.error
    for line in result.details:
        assert "alerts@example.test" not in line
    assert smtp_sink.messages == []

    # The outbox retries once the server accepts again: the same channel then succeeds.
    smtp_sink.accept()
    assert deliver(_channel(url), MESSAGE, timeout_seconds=10).ok
    assert len(smtp_sink.wait_for(1)) == 1


def test_email_server_down_is_recoverable() -> None:
    url = f"mailto://127.0.0.1:{_unused_port()}?mode=insecure&from=w@example.test&to=a@example.test&cto=2"

    result = deliver(_channel(url), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.error is not None
    assert "could not reach" in result.error


# -- webhook ----------------------------------------------------------------------------------


def test_webhook_posts_title_and_body(_receiver: _Receiver) -> None:
    result = deliver(_channel(_receiver.url()), MESSAGE, timeout_seconds=10)

    assert result.ok, result
    [request] = _receiver.requests
    assert request.path == "/hook"
    payload = request.json()
    assert payload["title"] == MESSAGE.title
    assert payload["message"] == MESSAGE.body


def test_webhook_500_is_a_recoverable_failure(_receiver: _Receiver) -> None:
    _receiver.status = 500

    result = deliver(_channel(_receiver.url()), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.error == "channel 'legal-test': HTTP 500 from JSON"
    assert len(_receiver.requests) == 1


def test_webhook_429_is_recoverable_but_404_is_not(_receiver: _Receiver) -> None:
    _receiver.status = 429
    assert deliver(_channel(_receiver.url()), MESSAGE, timeout_seconds=10).recoverable

    _receiver.status = 404
    result = deliver(_channel(_receiver.url()), MESSAGE, timeout_seconds=10)
    assert not result.ok
    assert not result.recoverable
    assert result.error == "channel 'legal-test': HTTP 404 from JSON"


def test_connection_refused_is_recoverable() -> None:
    url = f"json://127.0.0.1:{_unused_port()}/hook?{FAST}"

    result = deliver(_channel(url), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.error is not None
    assert "could not reach JSON" in result.error
    assert "Connection refused" in result.error


def test_slow_webhook_is_cut_off_by_the_read_timeout(_receiver: _Receiver) -> None:
    _receiver.delay = 3.0
    url = f"json://127.0.0.1:{_receiver.port}/hook?cto=1&rto=0.5"

    started = time.monotonic()
    result = deliver(_channel(url), MESSAGE, timeout_seconds=10)

    assert time.monotonic() - started < 2.5
    assert not result.ok
    assert result.recoverable
    assert result.error is not None
    assert "timed out" in result.error


def test_deliver_timeout_bounds_a_hanging_send(_receiver: _Receiver) -> None:
    # The URL's own read timeout (5 s) is longer than the delivery budget (0.5 s).
    _receiver.delay = 2.0
    url = f"json://127.0.0.1:{_receiver.port}/hook?cto=1&rto=5"

    started = time.monotonic()
    result = deliver(_channel(url), MESSAGE, timeout_seconds=0.5)

    assert time.monotonic() - started < 1.9
    assert not result.ok
    assert result.recoverable
    assert result.error is not None
    assert "did not finish within" in result.error


# -- channel shape ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nosuchscheme://s3cretPassw0rd@host/path", "not a url at all", "json://"])
def test_invalid_url_is_permanent_and_not_echoed(bad: str) -> None:
    result = deliver(_channel(bad), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert not result.recoverable
    assert result.error == "channel 'legal-test': URL #1 is not a valid apprise URL"
    assert "s3cretPassw0rd" not in repr(result)


def test_one_invalid_url_sends_nothing(_receiver: _Receiver) -> None:
    result = deliver(_channel(_receiver.url(), "nosuchscheme://x"), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert not result.recoverable
    assert result.error == "channel 'legal-test': URL #2 is not a valid apprise URL"
    assert _receiver.requests == []


def test_partial_send_is_a_failure_naming_the_url(_receiver: _Receiver) -> None:
    _receiver.status_by_path["/broken"] = 500

    result = deliver(_channel(_receiver.url("/fine"), _receiver.url("/broken")), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert result.recoverable
    assert result.error == "channel 'legal-test': URL #2: HTTP 500 from JSON"
    assert "URL #1 (JSON): sent" in result.details
    assert "URL #2 (JSON): failed: HTTP 500 from JSON" in result.details
    assert sorted(r.path.split("?")[0] for r in _receiver.requests) == ["/broken", "/fine"]


def test_secrets_never_reach_error_details_or_logs(_receiver: _Receiver, caplog: pytest.LogCaptureFixture) -> None:
    password, token = "s3cretPassw0rd", "tok_ABCDEF123456"
    _receiver.status = 500
    url = _receiver.url(f"/{token}", userinfo=f"user:{password}@")
    caplog.set_level(logging.DEBUG)  # root: includes urllib3, which logs request paths at DEBUG
    caplog.set_level(logging.DEBUG, logger="apprise")  # apprise does not propagate: caplog hooks it

    result = deliver(_channel(url), MESSAGE, timeout_seconds=10)

    assert not result.ok
    assert len(_receiver.requests) == 1  # the request really went out, with its credentials
    assert _receiver.requests[0].headers.get("Authorization", "").startswith("Basic ")
    records = [r.getMessage() for r in caplog.records]
    assert any("Failed to send JSON" in r for r in records)  # the records were really captured
    assert any(r.startswith("http://127.0.0.1") for r in records)  # ...including urllib3's
    texts = [result.error or "", *result.details, *records]
    for text in texts:
        assert password not in text
        assert token not in text
        assert url not in text


def test_console_channel_writes_to_the_given_stream() -> None:
    stream = io.StringIO()

    result = deliver(Channel(name="stdout", kind="console"), MESSAGE, console=stream)

    assert result.ok
    assert stream.getvalue() == f"{MESSAGE.title}\n{MESSAGE.body}\n"


def test_unknown_kind_is_permanent() -> None:
    result = deliver(Channel(name="pager", kind="pager"), MESSAGE)

    assert not result.ok
    assert not result.recoverable
    assert result.error == "channel 'pager': unknown channel kind 'pager'"
