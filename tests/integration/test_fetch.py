"""Fetch against a real loopback server: validators, status mapping, limits, deadlines, files."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.feed_server import FeedServer, RecordedRequest, Response
from watcher.errors import FetchError, FetchFailure
from watcher.feeds.fetch import ACCEPT, BodyTooLarge, Fetcher, FetchPolicy, classify
from watcher.httpdate import parse_retry_after
from watcher.model import FetchResult

FEED = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>CMA</title></channel></rss>'
LAST_MODIFIED = "Tue, 04 Mar 2025 10:00:00 GMT"
# Short timeouts keep the failure tests fast; server-side delays are far longer than these.
FAST = FetchPolicy(connect_timeout_seconds=1.0, read_timeout_seconds=1.0, deadline_seconds=5.0)


def fetch(url: str, policy: FetchPolicy = FAST, **validators: Any) -> FetchResult:
    async def run() -> FetchResult:
        async with Fetcher(policy) as fetcher:
            return await fetcher.fetch("cma-cases", url, **validators)

    return asyncio.run(run())


def fetch_error(url: str, policy: FetchPolicy = FAST, **validators: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, policy, **validators)
    assert caught.value.feed_id == "cma-cases"
    assert caught.value.url == url
    return caught.value


def gzip_of(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    return packer.compress(data) + packer.flush()


# -- success and conditional GET -----------------------------------------------------------------


def test_200_returns_body_headers_and_validators(feed_server: FeedServer) -> None:
    url = feed_server.feed("/feed.xml", FEED, etag='"v1"', last_modified=LAST_MODIFIED)

    result = fetch(url)

    assert (result.status, result.body, result.url, result.final_url) == (200, FEED, url, url)
    assert (result.etag, result.last_modified) == ('"v1"', LAST_MODIFIED)
    assert result.is_modified
    assert result.headers["content-type"] == "application/xml"
    assert all(name == name.lower() for name in result.headers)
    assert "content-length" not in result.headers
    sent = feed_server.requests_for("/feed.xml")[0].headers
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_second_fetch_is_conditional_and_304_keeps_validators(feed_server: FeedServer) -> None:
    url = feed_server.feed("/feed.xml", FEED, etag='"v1"', last_modified=LAST_MODIFIED)
    first = fetch(url)

    second = fetch(url, etag=first.etag, last_modified=first.last_modified)

    sent = feed_server.requests_for("/feed.xml")[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert (second.status, second.body, second.is_modified) == (304, b"", False)
    assert (second.etag, second.last_modified) == ('"v1"', LAST_MODIFIED)


def test_304_with_new_validators_returns_them(feed_server: FeedServer) -> None:
    url = feed_server.route("/feed.xml", status=304, headers={"ETag": '"v2"'})

    result = fetch(url, etag='"v1"', last_modified=LAST_MODIFIED)

    assert (result.status, result.etag, result.last_modified) == (304, '"v2"', LAST_MODIFIED)


def test_validator_that_cannot_be_sent_is_dropped(feed_server: FeedServer) -> None:
    url = feed_server.feed("/feed.xml", FEED, etag='"v1"')

    result = fetch(url, etag='"v1"\r\nX-Injected: 1')

    assert result.status == 200
    sent = feed_server.requests_for("/feed.xml")[0].headers
    assert "if-none-match" not in sent and "x-injected" not in sent


def test_identifies_itself_and_asks_for_feeds(feed_server: FeedServer) -> None:
    url = feed_server.feed("/feed.xml", FEED)

    fetch(url)

    sent = feed_server.requests_for("/feed.xml")[0].headers
    assert sent["user-agent"] == FetchPolicy().user_agent
    assert sent["accept"] == ACCEPT
    assert sent["accept-encoding"] == "gzip, deflate"


# -- status codes ---------------------------------------------------------------------------------


def test_404_is_http_status_without_request_headers_in_message(feed_server: FeedServer) -> None:
    error = fetch_error(feed_server.url("/missing.xml"), etag='"private-etag"')

    assert (error.failure, error.status, str(error)) == (FetchFailure.HTTP_STATUS, 404, "HTTP 404 Not Found")
    assert "private-etag" not in str(error) and "watcher/0.1" not in str(error)


def test_500_is_http_status(feed_server: FeedServer) -> None:
    error = fetch_error(feed_server.route("/feed.xml", status=500, body="oops"))

    assert (error.failure, error.status, str(error)) == (
        FetchFailure.HTTP_STATUS,
        500,
        "HTTP 500 Internal Server Error",
    )


def test_429_reads_retry_after_seconds(feed_server: FeedServer) -> None:
    error = fetch_error(feed_server.route("/feed.xml", status=429, headers={"Retry-After": "120"}))

    assert (error.failure, error.status, error.retry_after_seconds) == (FetchFailure.RATE_LIMITED, 429, 120.0)


def test_503_reads_retry_after_http_date(feed_server: FeedServer) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    error = fetch_error(feed_server.route("/feed.xml", status=503, headers={"Retry-After": later}))

    assert (error.failure, error.status) == (FetchFailure.RATE_LIMITED, 503)
    assert error.retry_after_seconds == pytest.approx(3600, abs=5)


def test_503_without_retry_after(feed_server: FeedServer) -> None:
    error = fetch_error(feed_server.route("/feed.xml", status=503))

    assert (error.failure, error.retry_after_seconds) == (FetchFailure.RATE_LIMITED, None)


# -- time limits ----------------------------------------------------------------------------------


def test_silent_server_trips_read_timeout(feed_server: FeedServer) -> None:
    policy = FetchPolicy(read_timeout_seconds=0.3, deadline_seconds=5.0)

    error = fetch_error(feed_server.route("/feed.xml", body=FEED, delay=30), policy)

    assert error.failure is FetchFailure.TIMEOUT


def test_slow_server_trips_deadline(feed_server: FeedServer) -> None:
    policy = FetchPolicy(read_timeout_seconds=30, deadline_seconds=0.3)

    error = fetch_error(feed_server.route("/feed.xml", body=FEED, delay=30), policy)

    assert (error.failure, str(error)) == (FetchFailure.TIMEOUT, "no complete response within 0.3 s")


def test_trickling_server_trips_deadline(feed_server: FeedServer) -> None:
    # Each byte arrives well within the read timeout; only the overall deadline can stop this.
    policy = FetchPolicy(read_timeout_seconds=5, deadline_seconds=0.3)

    error = fetch_error(feed_server.route("/feed.xml", body=FEED, trickle=0.02), policy)

    assert error.failure is FetchFailure.TIMEOUT


# -- size limits and content coding ---------------------------------------------------------------


def test_declared_oversized_body_is_too_large(feed_server: FeedServer) -> None:
    error = fetch_error(feed_server.route("/feed.xml", body=b"x" * 2000), FetchPolicy(max_body_bytes=1000))

    assert error.failure is FetchFailure.TOO_LARGE


def test_undeclared_oversized_body_stops_reading(feed_server: FeedServer) -> None:
    url = feed_server.route("/feed.xml", body=b"x" * 300_000, headers={"Transfer-Encoding": "chunked"})

    error = fetch_error(url, FetchPolicy(max_body_bytes=100_000))

    assert error.failure is FetchFailure.TOO_LARGE


def test_chunked_body_under_cap_is_read(feed_server: FeedServer) -> None:
    body = FEED * 2000
    url = feed_server.route("/feed.xml", body=body, headers={"Transfer-Encoding": "chunked"})

    assert fetch(url).body == body


def test_gzip_body_is_decoded(feed_server: FeedServer) -> None:
    url = feed_server.feed("/feed.xml", FEED, gzip=True)

    result = fetch(url)

    assert result.body == FEED
    assert "content-encoding" not in result.headers


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_body_is_decoded(feed_server: FeedServer, wbits: int) -> None:
    packer = zlib.compressobj(wbits=wbits)
    body = packer.compress(FEED) + packer.flush()
    url = feed_server.route("/feed.xml", body=body, headers={"Content-Encoding": "deflate"})

    assert fetch(url).body == FEED


def test_gzip_bomb_is_too_large_without_inflating_it(feed_server: FeedServer) -> None:
    packer = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    zeros = bytes(1_000_000)
    bomb = b"".join(packer.compress(zeros) for _ in range(50)) + packer.flush()  # 50 MB inflated
    url = feed_server.route("/feed.xml", body=bomb, headers={"Content-Encoding": "gzip"})
    del zeros

    tracemalloc.start()
    try:
        error = fetch_error(url, FetchPolicy(max_body_bytes=1_000_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert error.failure is FetchFailure.TOO_LARGE
    assert len(bomb) < 100_000
    assert peak < 10_000_000


def test_truncated_gzip_is_a_network_failure(feed_server: FeedServer) -> None:
    body = gzip_of(FEED * 50)
    url = feed_server.route("/feed.xml", body=body[: len(body) // 2], headers={"Content-Encoding": "gzip"})

    error = fetch_error(url)

    assert (error.failure, str(error)) == (
        FetchFailure.NETWORK,
        "could not decode the body: compressed body ended early",
    )


def test_unsupported_content_encoding_is_a_network_failure(feed_server: FeedServer) -> None:
    url = feed_server.route("/feed.xml", body=b"\x00\x01", headers={"Content-Encoding": "br"})

    assert fetch_error(url).failure is FetchFailure.NETWORK


# -- redirects ------------------------------------------------------------------------------------


def test_redirect_is_followed(feed_server: FeedServer) -> None:
    target = feed_server.feed("/feed.xml", FEED)
    old = feed_server.route("/old.xml", status=301, headers={"Location": "/feed.xml"})

    result = fetch(old)

    assert (result.status, result.body, result.url, result.final_url) == (200, FEED, old, target)


def test_redirect_loop_is_too_many_redirects(feed_server: FeedServer) -> None:
    url = feed_server.route("/loop", status=302, headers={"Location": "/loop"})

    error = fetch_error(url, FetchPolicy(max_redirects=3))

    assert error.failure is FetchFailure.TOO_MANY_REDIRECTS
    assert len(feed_server.requests_for("/loop")) == 4


def test_redirect_body_counts_against_the_cap(feed_server: FeedServer) -> None:
    feed_server.feed("/feed.xml", FEED)
    url = feed_server.route("/old.xml", status=301, headers={"Location": "/feed.xml"}, body=b"x" * 200_000)

    error = fetch_error(url, FetchPolicy(max_body_bytes=100_000))

    assert error.failure is FetchFailure.TOO_LARGE
    assert feed_server.requests_for("/feed.xml") == []


# -- transport failures and bad URLs --------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_connection_refused_is_network(closed_port: int) -> None:
    error = fetch_error(f"http://127.0.0.1:{closed_port}/feed.xml")

    assert error.failure is FetchFailure.NETWORK
    assert str(error).startswith("could not connect: ")


def test_tls_handshake_with_plain_http_server_is_tls(feed_server: FeedServer) -> None:
    url = feed_server.url("/feed.xml").replace("http://", "https://")

    assert fetch_error(url).failure is FetchFailure.TLS


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/feed.xml", "feed.xml", "http:///feed.xml", "http://[::1/", "file://example.org/x"],
)
def test_invalid_url(url: str) -> None:
    assert fetch_error(url).failure is FetchFailure.INVALID_URL


# -- file:// --------------------------------------------------------------------------------------


def test_file_url_reads_with_validators_then_304(tmp_path: Path) -> None:
    path = tmp_path / "saved feed.xml"
    path.write_bytes(FEED)
    os.utime(path, (1_700_000_000, 1_700_000_000))

    first = fetch(path.as_uri())
    second = fetch(path.as_uri(), etag=first.etag, last_modified=first.last_modified)
    os.utime(path, (1_700_000_100, 1_700_000_100))
    third = fetch(path.as_uri(), etag=first.etag, last_modified=first.last_modified)

    assert (first.status, first.body, first.final_url) == (200, FEED, path.as_uri())
    assert first.last_modified == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert (second.status, second.body) == (304, b"")
    assert (third.status, third.body, third.last_modified) == (200, FEED, "Tue, 14 Nov 2023 22:15:00 GMT")


def test_file_rewritten_within_the_same_second_is_modified(tmp_path: Path) -> None:
    """Last-Modified has one-second resolution; the ETag (nanosecond mtime and size) does not."""
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    first = fetch(path.as_uri())
    path.write_bytes(FEED + b"\n")
    os.utime(path, ns=(1_700_000_000_500_000_000, 1_700_000_000_500_000_000))
    second = fetch(path.as_uri(), etag=first.etag, last_modified=first.last_modified)
    assert first.last_modified == second.last_modified
    assert (second.status, second.body) == (200, FEED + b"\n")


def test_missing_file_is_network(tmp_path: Path) -> None:
    path = tmp_path / "gone.xml"

    error = fetch_error(path.as_uri())

    assert (error.failure, str(error)) == (FetchFailure.NETWORK, f"no such file: {path}")


def test_oversized_file_is_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"x" * 2000)

    assert fetch_error(path.as_uri(), FetchPolicy(max_body_bytes=1000)).failure is FetchFailure.TOO_LARGE


# -- concurrency ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_connections", "max_per_host", "may_overlap"),
    [(20, 1, False), (1, 2, False), (20, 2, True)],
    ids=["per-host-1", "global-1", "per-host-2"],
)
def test_concurrency_limits(
    feed_server: FeedServer, max_connections: int, max_per_host: int, may_overlap: bool
) -> None:
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def slow(request: RecordedRequest) -> Response:
        started = time.monotonic()
        feed_server.stopping.wait(0.2)
        with lock:
            spans.append((started, time.monotonic()))
        return Response(200, {}, FEED)

    urls = [feed_server.handler(path, slow) for path in ("/a.xml", "/b.xml")]
    policy = FetchPolicy(max_connections=max_connections, max_per_host=max_per_host)

    async def run() -> None:
        async with Fetcher(policy) as fetcher:
            await asyncio.gather(*(fetcher.fetch("cma-cases", url) for url in urls))

    asyncio.run(run())

    (_, first_end), (second_start, _) = sorted(spans)
    assert (second_start < first_end) is may_overlap


# -- classify and Retry-After ---------------------------------------------------------------------

REQUEST = httpx.Request("GET", "http://127.0.0.1/feed.xml")
# The nearest listed ancestor decides. CookieConflict (a cookie-jar lookup) and StreamError
# (misuse of a response object) are not fetch failures: they are bugs and should propagate.
EXPECTED_FAILURE: dict[type[Exception], FetchFailure] = {
    httpx.TimeoutException: FetchFailure.TIMEOUT,
    httpx.TooManyRedirects: FetchFailure.TOO_MANY_REDIRECTS,
    httpx.UnsupportedProtocol: FetchFailure.INVALID_URL,
    httpx.InvalidURL: FetchFailure.INVALID_URL,
    httpx.HTTPStatusError: FetchFailure.HTTP_STATUS,
    httpx.HTTPError: FetchFailure.NETWORK,
}


def httpx_exceptions(cls: type[Exception] = httpx.HTTPError) -> Iterator[type[Exception]]:
    if cls.__module__.split(".")[0] == "httpx":
        yield cls
    for sub in cls.__subclasses__():
        yield from httpx_exceptions(sub)


@pytest.mark.parametrize("cls", [*httpx_exceptions(), httpx.InvalidURL], ids=lambda cls: cls.__name__)
def test_classify_maps_every_httpx_exception(cls: type[Exception]) -> None:
    if issubclass(cls, httpx.HTTPStatusError):
        exc: Exception = cls("boom", request=REQUEST, response=httpx.Response(404, request=REQUEST))
    elif issubclass(cls, httpx.RequestError):
        exc = cls("boom", request=REQUEST)
    else:
        exc = cls("boom")
    expected = next(EXPECTED_FAILURE[base] for base in cls.__mro__ if base in EXPECTED_FAILURE)

    error = classify(exc, "cma-cases", "http://127.0.0.1/feed.xml")

    assert isinstance(error, FetchError)
    assert (error.failure, error.feed_id, error.url) == (expected, "cma-cases", "http://127.0.0.1/feed.xml")
    assert str(error)


def test_httpx_walk_found_the_whole_tree() -> None:
    found = set(httpx_exceptions())

    assert {httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError, httpx.DecodingError} <= found


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (BodyTooLarge(1000), FetchFailure.TOO_LARGE),
        (TimeoutError(), FetchFailure.TIMEOUT),
        (FileNotFoundError(2, "No such file or directory", "/srv/feeds/x.xml"), FetchFailure.NETWORK),
        (ssl.SSLCertVerificationError("certificate verify failed"), FetchFailure.TLS),
        (zlib.error("invalid stored block lengths"), FetchFailure.NETWORK),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_classify_maps_our_own_cases(exc: Exception, failure: FetchFailure) -> None:
    assert classify(exc, "cma-cases", "http://127.0.0.1/").failure is failure


def test_classify_sees_tls_through_the_cause_chain() -> None:
    try:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed: self-signed certificate")
        except ssl.SSLError as tls:
            raise httpx.ConnectError("handshake failed", request=REQUEST) from tls
    except httpx.ConnectError as exc:
        error = classify(exc, "cma-cases", "https://127.0.0.1/")

    assert (error.failure, str(error)) == (FetchFailure.TLS, "TLS error: handshake failed")


def test_classify_rate_limited_status_error() -> None:
    response = httpx.Response(429, headers={"Retry-After": "30"}, request=REQUEST)
    exc = httpx.HTTPStatusError("429", request=REQUEST, response=response)

    error = classify(exc, "cma-cases", "http://127.0.0.1/")

    assert (error.failure, error.status, error.retry_after_seconds) == (FetchFailure.RATE_LIMITED, 429, 30.0)


def test_classify_keeps_a_fetch_error() -> None:
    original = FetchError("cma-cases", "http://127.0.0.1/", "HTTP 404 Not Found", FetchFailure.HTTP_STATUS)

    assert classify(original, "cma-cases", "http://127.0.0.1/") is original


NOW = datetime(2025, 3, 4, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Tue, 04 Mar 2025 10:01:30 GMT", 90.0),  # IMF-fixdate
        ("Tuesday, 04-Mar-25 10:01:30 GMT", 90.0),  # obsolete RFC 850
        ("Tue Mar  4 10:01:30 2025", 90.0),  # obsolete asctime
        ("Tue, 04 Mar 2025 09:00:00 GMT", 0.0),  # in the past: never negative
        (None, None),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("9" * 400, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_parse_retry_after_treats_naive_now_as_utc() -> None:
    assert parse_retry_after("Tue, 04 Mar 2025 10:00:10 GMT", NOW.replace(tzinfo=None)) == 10.0


# -- the fixture as a webhook receiver ------------------------------------------------------------


def test_feed_server_records_webhook_posts(feed_server: FeedServer) -> None:
    url = feed_server.route("/hook", method="POST", status=202)

    with httpx.Client() as client:
        response = client.post(url, json={"title": "CMA opens consultation"})

    assert response.status_code == 202
    (request,) = feed_server.requests_for("/hook", "POST")
    assert request.body == b'{"title":"CMA opens consultation"}'
    assert request.headers["content-type"] == "application/json"
