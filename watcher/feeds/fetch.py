"""Fetch stage: one feed URL (http, https or file) -> FetchResult with the body as bytes.

Owns the shared httpx client, conditional GET, timeouts and the overall deadline, the body
size cap (before and after decompression), concurrency limits, and the mapping of every
failure to ``FetchError``. It never parses: the body leaves exactly as served, only inflated.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import ssl
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from watcher.errors import FetchError, FetchFailure
from watcher.feeds.guard import GuardedBackend, networks
from watcher.httpdate import parse_retry_after
from watcher.model import FetchResult

ACCEPT = "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
# We hand back the inflated body, so headers describing the wire encoding would lie.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length"})
_RATE_LIMITED = frozenset({429, 503})
_TIMEOUT_MESSAGES: dict[type[BaseException], str] = {
    httpx.ConnectTimeout: "timed out connecting",
    httpx.ReadTimeout: "timed out waiting for the server",
    httpx.WriteTimeout: "timed out sending the request",
    httpx.PoolTimeout: "timed out waiting for a free connection",
}
# First match wins, after TLS (which hides inside ConnectError and others) is ruled out.
_NETWORK_MESSAGES: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str], ...] = (
    # h11 quotes the offending header value, and request headers must not reach messages.
    (httpx.LocalProtocolError, "could not send the request: invalid HTTP request"),
    (httpx.RemoteProtocolError, "server broke the HTTP protocol: {}"),
    ((httpx.DecodingError, zlib.error), "could not decode the body: {}"),
    (httpx.ConnectError, "could not connect: {}"),
    ((httpx.ReadError, httpx.WriteError, httpx.CloseError), "connection lost: {}"),
    (httpx.ProxyError, "proxy error: {}"),
)


@dataclass(frozen=True)
class FetchPolicy:
    """How patient and how defensive to be; the defaults suit a daemon polling public sites."""

    user_agent: str = "watcher/0.1 (+https://github.com/watcher-alerts/watcher; regulatory feed reader)"
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 20.0
    # Overall per fetch: httpx has no such deadline, and a server trickling bytes never trips
    # the read timeout.
    deadline_seconds: float = 60.0
    max_body_bytes: int = 10_000_000  # on the wire and after decompression
    max_redirects: int = 5
    max_connections: int = 20  # across all hosts
    max_per_host: int = 2
    per_host_rate: float = 0.0  # requests per second to one host, whichever feed asks; 0: no limit
    block_private_addresses: bool = False  # see feeds/guard.py
    # Networks reachable even with block_private_addresses on ("10.0.0.5", "10.1.0.0/16").
    allowed_networks: tuple[str, ...] = ()


class BodyTooLarge(Exception):
    """A body passed the cap; ``classify`` turns it into ``FetchFailure.TOO_LARGE``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit:,} bytes")


# What fetching can raise besides FetchError; anything else is a bug and propagates.
_FETCH_FAILURES = (httpx.HTTPError, httpx.InvalidURL, OSError, zlib.error, BodyTooLarge)


class _Inflater:
    """Inflate gzip or deflate in bounded steps: a small bomb cannot expand past ``limit``."""

    def __init__(self, coding: str, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._head = b""
        self._is_fed = False
        # The "deflate" wrapper is decided on the first two bytes (see ``feed``).
        self._zlib: zlib._Decompress | None = None
        if coding != "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def feed(self, data: bytes) -> bytes:
        self._is_fed = self._is_fed or bool(data)
        if self._zlib is None:
            # RFC 9110 8.4.1.2: "deflate" means zlib-wrapped, but some servers send raw deflate.
            self._head += data
            if len(self._head) < 2:
                return b""
            data, cmf, flg = self._head, self._head[0], self._head[1]
            is_wrapped = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if is_wrapped else -zlib.MAX_WBITS)
        if self._zlib.eof:
            return b""  # trailing bytes after the stream end are ignored, as httpx does
        # max_length one past the room left: reaching it means the cap is passed, and zlib
        # never allocates more than that for this chunk.
        piece = self._zlib.decompress(data, self._limit - self._size + 1)
        self._size += len(piece)
        if self._size > self._limit:
            raise BodyTooLarge(self._limit)
        return piece

    def finish(self) -> None:
        if self._is_fed and (self._zlib is None or not self._zlib.eof):
            raise zlib.error("compressed body ended early")


class _DiscardedBody(httpx.AsyncByteStream):
    """A redirect's body, drained raw up to the cap and dropped, so it cannot be a bomb."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise BodyTooLarge(self._limit)
            yield b""

    async def aclose(self) -> None:
        await self._inner.aclose()


class Fetcher:
    """One shared HTTP client with concurrency limits; use as ``async with Fetcher() as f``."""

    def __init__(self, policy: FetchPolicy | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._policy = policy = policy or FetchPolicy()
        self._slots = asyncio.Semaphore(policy.max_connections)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._host_next: dict[str, float] = {}  # host -> loop time of its next free request slot
        limits = httpx.Limits(max_connections=policy.max_connections, max_keepalive_connections=policy.max_connections)
        if transport is None and policy.block_private_addresses:
            guarded = httpx.AsyncHTTPTransport(http2=True, limits=limits)
            # httpx has no public hook for the network backend; httpcore's pool takes one.
            backend = GuardedBackend(guarded._pool._network_backend, networks(policy.allowed_networks))
            guarded._pool._network_backend = backend
            transport = guarded
        self._client = httpx.AsyncClient(
            http2=True,
            timeout=httpx.Timeout(policy.read_timeout_seconds, connect=policy.connect_timeout_seconds),
            follow_redirects=True,
            max_redirects=policy.max_redirects,
            limits=limits,
            headers={"User-Agent": policy.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
            transport=transport,
            event_hooks={"response": [self._bound_redirect_body]},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(
        self, feed_id: str, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """Fetch ``url`` once, conditionally when validators are given; 304 is a result.

        Raises FetchError for every failure, and nothing else.
        """
        deadline = self._policy.deadline_seconds
        try:
            if url[:5].lower() == "file:":
                async with asyncio.timeout(deadline):
                    return await asyncio.to_thread(_read_file, feed_id, url, etag, self._policy.max_body_bytes)
            host = _http_host(feed_id, url)
            # The host's slot first: a request queued behind its own host must not hold one of
            # the shared slots that other hosts' feeds could use meanwhile.
            async with self._host_slot(host), self._slots:
                # Paced once both slots are held: a request paced first and then queued for a
                # slot would leave whenever the slot freed, however close behind the one before.
                await self._pace(host)
                # The deadline starts once slots and pacing are done: queueing behind other
                # feeds is not the server's fault.
                async with asyncio.timeout(deadline):
                    return await self._get(feed_id, url, etag, last_modified)
        except FetchError:
            raise
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            message = f"no complete response within {deadline:g} s"
            raise FetchError(feed_id, url, message, FetchFailure.TIMEOUT) from exc
        except _FETCH_FAILURES as exc:
            raise classify(exc, feed_id, url) from exc

    async def _pace(self, host: str) -> None:
        """Wait for this host's next request slot: at most ``per_host_rate`` requests a second to
        one host, however many of its feeds and pages are due (gov.uk serves dozens of feeds)."""
        rate = self._policy.per_host_rate
        if rate <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            # The turn is taken when the request actually leaves, not booked ahead: a booked turn
            # wakes late when the loop is busy, and several late ones would leave together.
            now = loop.time()
            free_at = self._host_next.get(host, now)
            if free_at <= now:
                self._host_next[host] = now + 1.0 / rate  # no await between check and claim
                return
            await asyncio.sleep(free_at - now)

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self._policy.max_per_host)
        return slot

    async def _bound_redirect_body(self, response: httpx.Response) -> None:
        """Response hook: httpx reads a redirect's whole body (inflated) before following it."""
        if response.has_redirect_location and isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _DiscardedBody(response.stream, self._policy.max_body_bytes)

    async def _get(self, feed_id: str, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        validators = {"If-None-Match": etag, "If-Modified-Since": last_modified}
        # A validator we cannot send verbatim is dropped: an unconditional GET beats a failure.
        headers = {k: v for k, v in validators.items() if v and v.isascii() and v.isprintable()}
        async with self._client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status == 304:
                body = b""
                etag = response.headers.get("etag", etag)
                last_modified = response.headers.get("last-modified", last_modified)
            elif 200 <= status < 300:
                body = await self._read_body(response)
                etag = response.headers.get("etag")
                last_modified = response.headers.get("last-modified")
            else:
                raise _status_error(feed_id, url, response)
            plain = {k.lower(): v for k, v in response.headers.items() if k.lower() not in _WIRE_HEADERS}
            hops = [r.status_code for r in response.history]
            moved = str(response.url) if hops and all(h in (301, 308) for h in hops) else None
            return FetchResult(url, str(response.url), status, body, plain, etag, last_modified, moved)

    async def _read_body(self, response: httpx.Response) -> bytes:
        limit = self._policy.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(limit)
        coding = response.headers.get("content-encoding", "").strip().lower()
        if coding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise zlib.error(f"unsupported Content-Encoding {coding!r}")  # we never asked for it
        inflater = _Inflater(coding, limit) if coding not in ("", "identity") else None
        body = bytearray()
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge(limit)
            body += inflater.feed(chunk) if inflater else chunk
        if inflater:
            inflater.finish()
        return bytes(body)


def classify(exc: Exception, feed_id: str, url: str) -> FetchError:
    """Map a failure met while fetching to one FetchError; anything unforeseen is NETWORK.

    Messages are short and never quote request headers or the URL (it may hold credentials).
    """
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_error(feed_id, url, exc.response)
    failure, message = _describe(exc)
    return FetchError(feed_id, url, message, failure)


def _describe(exc: Exception) -> tuple[FetchFailure, str]:
    reason = _reason(exc)
    if isinstance(exc, BodyTooLarge):
        return FetchFailure.TOO_LARGE, reason
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return FetchFailure.TIMEOUT, _TIMEOUT_MESSAGES.get(type(exc), "timed out")
    if isinstance(exc, httpx.TooManyRedirects):
        return FetchFailure.TOO_MANY_REDIRECTS, "too many redirects"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return FetchFailure.INVALID_URL, f"invalid URL: {reason}"
    if _is_tls(exc):
        return FetchFailure.TLS, f"TLS error: {reason}"
    if isinstance(exc, FileNotFoundError):
        return FetchFailure.NETWORK, f"no such file: {exc.filename}"
    for kinds, template in _NETWORK_MESSAGES:
        if isinstance(exc, kinds):
            return FetchFailure.NETWORK, template.format(reason)
    if isinstance(exc, OSError) and exc.filename:
        return FetchFailure.NETWORK, f"cannot read {exc.filename}: {exc.strerror or reason}"
    return FetchFailure.NETWORK, f"network error: {reason}"


def _status_error(feed_id: str, url: str, response: httpx.Response) -> FetchError:
    status = response.status_code
    message = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
    if status not in _RATE_LIMITED:
        return FetchError(feed_id, url, message, FetchFailure.HTTP_STATUS, status=status)
    retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    if retry_after is not None:
        message += f" (retry after {retry_after:.0f} s)"
    return FetchError(feed_id, url, message, FetchFailure.RATE_LIMITED, status=status, retry_after_seconds=retry_after)


def _http_host(feed_id: str, url: str) -> str:
    parsed = httpx.URL(url)  # InvalidURL is classified by the caller
    if parsed.scheme not in ("http", "https") or not parsed.host:
        message = "invalid URL: expected http://, https:// or file:// with a host"
        raise FetchError(feed_id, url, message, FetchFailure.INVALID_URL)
    return parsed.host


def _read_file(feed_id: str, url: str, etag: str | None, limit: int) -> FetchResult:
    """Serve a saved feed like a server would: 304 while the file is unchanged.

    The validator is an ETag from the file's nanosecond mtime and size: Last-Modified has
    one-second resolution, and a feed rewritten within the same second must not look unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.netloc not in ("", "localhost"):
        raise FetchError(feed_id, url, "invalid URL: not a local file", FetchFailure.INVALID_URL)
    with open(url2pathname(parts.path), "rb") as fh:
        stat = os.fstat(fh.fileno())
        stamp = email.utils.format_datetime(datetime.fromtimestamp(int(stat.st_mtime), UTC), usegmt=True)
        tag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        headers = {"last-modified": stamp, "etag": tag}
        if etag == tag:
            return FetchResult(url, url, 304, b"", headers, tag, stamp)
        if stat.st_size > limit:
            raise BodyTooLarge(limit)
        body = fh.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(limit)
    return FetchResult(url, url, 200, body, headers, tag, stamp)


def _is_tls(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    for _ in range(10):  # cause chains are short; the bound guards against cycles
        if cause is None:
            break
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    return isinstance(exc, httpx.ConnectError) and ("ssl" in text or "certificate" in text)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"
