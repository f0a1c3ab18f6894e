"""The hostile-feed corpus: one entry per attack, each run as its own test by test_corpus.py.

Each case serves its hostile feed (and any pages or hops it needs) on the loopback servers and
says what must come of one poll cycle beside a healthy feed: ``error``, a fragment of the clear
per-feed error that `watcher feeds` shows (``feeds.last_error``), or ``None`` for a safe result,
which ``check`` then inspects (every stored item is also checked for safety by the test).
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.fixtures.feed_server import FeedServer, Response
from tests.hostile.bombs import deflate_bomb, gzip_bomb
from tests.hostile.harness import Cycle, RawServer, item, read_request, rss

CAP = 10_000_000  # [http] max_body_bytes, the default
TOO_LARGE = f"body larger than {CAP:,} bytes"
GUARD = "block_private_addresses = true"  # under [http]
# With the guard on, the loopback test servers must stay reachable: only 127.0.0.1 is allowed,
# so 127.0.0.2 and the rest of 127/8 still count as loopback.
LOOPBACK_ONLY = ("127.0.0.1/32",)


@dataclass
class Env:
    feed_server: FeedServer
    tmp_path: Path
    raw_servers: list[RawServer] = field(default_factory=list)

    def raw(self, script: Callable[[socket.socket, threading.Event], None], *, accept: bool = True) -> RawServer:
        server = RawServer(script, accept=accept)
        self.raw_servers.append(server)
        return server


@dataclass(frozen=True)
class Case:
    id: str
    attack: str  # one line, for the report and docs/reliability.md
    serve: Callable[[Env], str]  # registers what it needs; returns the hostile feed's URL
    error: str | None = None
    check: Callable[[Cycle], None] | None = None
    http: str = ""
    full_text: bool = False
    allowed_networks: tuple[str, ...] = ()
    memory_mib: int = 200
    timeout: float = 30  # seconds; the size cases get more on a loaded machine


CASES: list[Case] = []


def case(
    id: str,
    attack: str,
    *,
    error: str | None = None,
    check: Callable[[Cycle], None] | None = None,
    http: str = "",
    full_text: bool = False,
    allowed_networks: tuple[str, ...] = (),
    memory_mib: int = 200,
    timeout: float = 30,
) -> Callable[[Callable[[Env], str]], Callable[[Env], str]]:
    def register(serve: Callable[[Env], str]) -> Callable[[Env], str]:
        assert all(c.id != id for c in CASES), id
        CASES.append(Case(id, attack, serve, error, check, http, full_text, allowed_networks, memory_mib, timeout))
        return serve

    return register


def feed(env: Env, body: bytes | str, *, path: str = "/hostile.xml", **headers: str) -> str:
    head = {"Content-Type": "application/rss+xml", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return env.feed_server.route(path, body=body, headers=head)


def titles(cycle: Cycle) -> list[str]:
    return sorted(i.title for i in cycle.items)


def stored(count: int) -> Callable[[Cycle], None]:
    def check(cycle: Cycle) -> None:
        assert len(cycle.items) == count, [i.item_key for i in cycle.items]

    return check


def endless(piece: bytes) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        while True:
            yield piece

    return chunks


# -- compression ---------------------------------------------------------------------------------


@case("gzip-bomb", "gzip body of 2 MB on the wire inflating to 2 GiB", error=TOO_LARGE)
def _gzip_bomb(env: Env) -> str:
    return feed(env, gzip_bomb(), content_encoding="gzip")


@case("gzip-bomb-chunked", "the same bomb chunked, with no Content-Length to refuse early", error=TOO_LARGE)
def _gzip_bomb_chunked(env: Env) -> str:
    return feed(env, gzip_bomb(), content_encoding="gzip", transfer_encoding="chunked")


@case("deflate-bomb", "raw deflate (no zlib header) inflating to 2 GiB", error=TOO_LARGE)
def _deflate_bomb(env: Env) -> str:
    return feed(env, deflate_bomb(), content_encoding="deflate")


@case("gzip-twice", "Content-Encoding: gzip, gzip (nested), never asked for", error="unsupported Content-Encoding")
def _gzip_twice(env: Env) -> str:
    return feed(env, gzip.compress(gzip.compress(rss(item(1)).encode())), content_encoding="gzip, gzip")


@case("gzip-lie", "Content-Encoding: gzip on a body that is not gzip", error="could not decode the body")
def _gzip_lie(env: Env) -> str:
    return feed(env, rss(item(1)), content_encoding="gzip")


@case("redirect-bomb", "a 302 whose body is the gzip bomb: drained raw, never inflated", check=stored(1))
def _redirect_bomb(env: Env) -> str:
    target = feed(env, rss(item(1)))
    headers = {"Location": target, "Content-Encoding": "gzip"}
    return env.feed_server.route("/bomb-hop", status=302, body=gzip_bomb(), headers=headers)


# -- bodies that never end, or lie -------------------------------------------------------------------


@case("endless-body", "a chunked body that never ends, sent as fast as it is read", error=TOO_LARGE)
def _endless_body(env: Env) -> str:
    stream = endless(b"<item><title>again</title></item>" * 2000)
    return env.feed_server.handler("/endless", lambda _r: Response(200, {}, rss("")[:-22], stream=stream))


@case("endless-close-delimited", "an HTTP/1.0-style body that never ends and is never closed", error=TOO_LARGE)
def _endless_close_delimited(env: Env) -> str:
    stream = endless(b"<item><title>again</title></item>" * 2000)
    return env.feed_server.handler("/endless10", lambda _r: Response(200, {}, b"", stream=stream, close_delimited=True))


@case("endless-trickle", "a body that never ends, one small piece every 50 ms", error="no complete response within 3 s")
def _endless_trickle(env: Env) -> str:
    def chunks() -> Iterator[bytes]:
        while not env.feed_server.stopping.wait(0.05):
            yield b"<!-- still here -->"

    return env.feed_server.handler("/trickle-forever", lambda _r: Response(200, {}, rss(item(1))[:40], stream=chunks))


@case(
    "trickle",
    "a whole feed sent one byte every 20 ms (never trips the read timeout)",
    error="no complete response within 3 s",
)
def _trickle(env: Env) -> str:
    return env.feed_server.route("/trickle", body=rss(item(1) + item(2)), trickle=0.02)


@case(
    "silent-after-accept",
    "a server that accepts the connection and never answers",
    error="timed out waiting for the server",
)
def _silent(env: Env) -> str:
    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        stop.wait(10)

    return env.raw(script).url()


@case("never-accepts", "a listener whose backlog takes the connection but nobody ever reads it", error="timed out")
def _never_accepts(env: Env) -> str:
    return env.raw(lambda conn, stop: None, accept=False).url()


@case("endless-headers", "response headers that never end (a new header every 10 ms)", error="")
def _endless_headers(env: Env) -> str:
    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        n = 0
        while not stop.wait(0.01):
            conn.sendall(b"X-Padding-%d: %s\r\n" % (n, b"x" * 200))
            n += 1

    return env.raw(script).url()


@case("huge-header", "one 1 MB response header line", error="server broke the HTTP protocol")
def _huge_header(env: Env) -> str:
    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 1_000_000 + b"\r\nContent-Length: 0\r\n\r\n")

    return env.raw(script).url()


@case("not-http", "bytes that are not HTTP at all in answer to the request", error="server broke the HTTP protocol")
def _not_http(env: Env) -> str:
    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(b"\x16\x03\x01\x00\xa5 SSH-2.0-OpenSSH_9.6 \x00\xff garbage\r\n\r\n")

    return env.raw(script).url()


@case("http10-close-delimited", "a valid feed as an HTTP/1.0 close-delimited body (no length)", check=stored(2))
def _http10(env: Env) -> str:
    body = rss(item(1) + item(2)).encode()

    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/rss+xml\r\n\r\n" + body)

    return env.raw(script).url()


@case(
    "content-length-too-long",
    "Content-Length larger than the body, then the connection closes",
    error="server broke the HTTP protocol",
)
def _length_long(env: Env) -> str:
    body = rss(item(1)).encode()

    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body) + 5000, body))

    return env.raw(script).url()


@case(
    "content-length-too-short",
    "Content-Length shorter than the body: the rest must not be read as the next response",
    error="not a feed",
)
def _length_short(env: Env) -> str:
    body = rss(item(1)).encode()

    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n%s" % body)

    return env.raw(script).url()


@case(
    "content-length-huge",
    "Content-Length: 10^30 (more than any integer type) with a small body",
    error="server broke the HTTP protocol: bad Content-Length",
)
def _length_huge(env: Env) -> str:
    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1" + b"0" * 30 + b"\r\n\r\n" + rss(item(1)).encode())

    return env.raw(script).url()


# -- redirects -------------------------------------------------------------------------------------


def hop(env: Env, location: str, path: str = "/hop") -> str:
    return env.feed_server.route(path, status=302, headers={"Location": location})


@case("redirect-loop", "a redirect to itself, forever", error="too many redirects")
def _redirect_loop(env: Env) -> str:
    return hop(env, env.feed_server.url("/loop"), "/loop")


@case("redirect-ping-pong", "two addresses redirecting to each other", error="too many redirects")
def _ping_pong(env: Env) -> str:
    hop(env, env.feed_server.url("/pong"), "/ping")
    return hop(env, env.feed_server.url("/ping"), "/pong")


@case("redirect-file", "a redirect to file:///etc/passwd", error="invalid URL")
def _redirect_file(env: Env) -> str:
    return hop(env, "file:///etc/passwd")


@case("redirect-ftp", "a redirect to ftp://", error="invalid URL")
def _redirect_ftp(env: Env) -> str:
    return hop(env, "ftp://127.0.0.1/feed.xml")


@case("redirect-javascript", "a redirect to javascript:alert(1)", error="invalid URL")
def _redirect_js(env: Env) -> str:
    return hop(env, "javascript:alert(document.cookie)")


@case("redirect-data", "a redirect to a data: URL carrying a feed", error="invalid URL")
def _redirect_data(env: Env) -> str:
    return hop(env, "data:application/rss+xml;base64,PHJzcz48L3Jzcz4=")


def _guarded(id: str, attack: str, location: Callable[[Env], str], kind: str) -> None:
    def serve(env: Env) -> str:
        return hop(env, location(env))

    article = "an" if kind[0] in "aeiou" else "a"
    case(id, attack, error=f"is {article} {kind} address", http=GUARD, allowed_networks=LOOPBACK_ONLY)(serve)


_guarded(
    "redirect-metadata",
    "a redirect to the cloud metadata service",
    lambda e: "http://169.254.169.254/latest/meta-data/",
    "link-local",
)
_guarded("redirect-private", "a redirect to a private (RFC 1918) address", lambda e: "http://10.0.0.1/admin", "private")
_guarded(
    "redirect-loopback",
    "a redirect to another loopback address",
    lambda e: f"http://127.0.0.2:{e.feed_server.port}/",
    "loopback",
)
_guarded("redirect-ipv6-loopback", "a redirect to [::1]", lambda e: f"http://[::1]:{e.feed_server.port}/", "loopback")
_guarded(
    "redirect-ipv4-mapped", "a redirect to [::ffff:127.0.0.2] (IPv4 in IPv6 clothing)",
    lambda e: f"http://[::ffff:127.0.0.2]:{e.feed_server.port}/", "loopback",
)  # fmt: skip
_guarded(
    "redirect-decimal-ip", "a redirect to http://2130706434/ (127.0.0.2 as one decimal number)",
    lambda e: f"http://2130706434:{e.feed_server.port}/", "loopback",
)  # fmt: skip
_guarded(
    "redirect-unspecified",
    "a redirect to 0.0.0.0 (reaches local services on Linux)",
    lambda e: f"http://0.0.0.0:{e.feed_server.port}/",
    "unspecified",
)
_guarded(
    "redirect-ipv6-private",
    "a redirect to fd00:ec2::254 (the IPv6 metadata service)",
    lambda e: "http://[fd00:ec2::254]/",
    "private",
)


@case(
    "redirect-to-feed-guarded",
    "a redirect between allowed addresses, guard on: still read",
    check=stored(1),
    http=GUARD,
    allowed_networks=LOOPBACK_ONLY,
)
def _redirect_allowed(env: Env) -> str:
    return hop(env, feed(env, rss(item(1))))


# -- not a feed ------------------------------------------------------------------------------------


@case("html-page", "an HTML login page served with status 200", error="not a feed: no RSS or Atom root element")
def _html(env: Env) -> str:
    page = "<!doctype html><html><head><title>Sign in</title></head><body><form><input name=u></form></body></html>"
    return feed(env, page, content_type="text/html")


@case("json", "JSON (a JSON Feed or an API error) instead of RSS/Atom", error="not a feed")
def _json(env: Env) -> str:
    return feed(
        env, '{"version": "https://jsonfeed.org/version/1", "items": [{"id": "1"}]}', content_type="application/json"
    )


@case("empty-200", "an empty body with status 200", error="not a feed: empty body")
def _empty(env: Env) -> str:
    return feed(env, b"")


@case("whitespace-200", "a body of blank lines and spaces", error="not a feed: empty body")
def _blank(env: Env) -> str:
    return feed(env, b"\r\n \t\n" * 1000)


@case("binary", "a PNG image served as the feed", error="not a feed")
def _binary(env: Env) -> str:
    return feed(env, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100, content_type="image/png")


@case("truncated-xml", "a feed cut off in the middle of its third item", check=lambda c: _at_least(c, 2))
def _truncated(env: Env) -> str:
    body = rss(item(1) + item(2) + item(3))
    return feed(env, body[: body.index("<guid>g-3") + 3])


def _at_least(cycle: Cycle, count: int) -> None:
    assert len(cycle.items) >= count, titles(cycle)


@case("truncated-prolog", "a body that stops after the XML declaration", error="not a feed")
def _truncated_prolog(env: Env) -> str:
    return feed(env, '<?xml version="1.0" encoding="utf-8"?>\n')


# -- encodings -------------------------------------------------------------------------------------


@case(
    "charset-header-lies",
    "Content-Type says UTF-8, the bytes are ISO-8859-1 (invalid UTF-8)",
    check=lambda c: _at_least(c, 1),
)
def _charset_lies(env: Env) -> str:
    return feed(
        env, rss(item(1, title="Décision")).encode("latin-1"), content_type="application/rss+xml; charset=utf-8"
    )


@case("charset-missing", "windows-1252 bytes with no charset anywhere", check=lambda c: _at_least(c, 1))
def _charset_missing(env: Env) -> str:
    return feed(env, rss(item(1, title="“Quoted” – dash")).encode("cp1252"), content_type="application/rss+xml")


@case("charset-unknown", "an encoding declaration naming no real charset (x-klingon)", check=lambda c: _at_least(c, 1))
def _charset_unknown(env: Env) -> str:
    return feed(env, rss(item(1), prolog='<?xml version="1.0" encoding="x-klingon"?>'))


@case("mojibake", "UTF-8 encoded twice (Ã© for é): stored as served, no crash", check=stored(1))
def _mojibake(env: Env) -> str:
    return feed(env, rss(item(1, title="Décision")).encode().decode("latin-1").encode())


@case(
    "invalid-utf8",
    "stray invalid UTF-8 bytes (0xff, lone continuation bytes) in a title",
    check=lambda c: _at_least(c, 1),
)
def _invalid_utf8(env: Env) -> str:
    return feed(env, rss(item(1, title="bad \xff\x80\xc3 bytes")).encode("latin-1"))


@case("utf16-no-bom", "UTF-16 without a byte-order mark, declared as UTF-8", error="")
def _utf16(env: Env) -> str:
    return feed(env, rss(item(1)).encode("utf-16-le"))


@case("nul-bytes", "NUL bytes in the raw body and as &#0; in a title", check=lambda c: _at_least(c, 1))
def _nul(env: Env) -> str:
    return feed(env, rss(item(1, title="nul&#0;here") + item(2, title="raw\x00nul")).encode())


def _replaced(cycle: Cycle) -> None:
    assert len(cycle.items) == 3
    assert "half \ufffd a pair \ufffd" in titles(cycle)


@case("lone-surrogates", "character references to lone surrogates and past U+10FFFF in one item", check=_replaced)
def _surrogates(env: Env) -> str:
    return feed(env, rss(item(1, title="half &#xD800; a pair &#1114112;") + item(2) + item(3)))


# -- dates -----------------------------------------------------------------------------------------


def _dated(value: str) -> Callable[[Env], str]:
    def serve(env: Env) -> str:
        return feed(env, rss(item(1, extra=f"<pubDate>{value}</pubDate>") + item(2)))

    return serve


def _undated(cycle: Cycle) -> None:
    assert len(cycle.items) == 2
    assert all(i.published_at is None for i in cycle.items if i.item_key == "g-1")


case("date-garbage", "a pubDate that is not a date at all", check=_undated)(_dated("soon, probably"))
case("date-zero", 'the CMS default "0000-00-00 00:00:00"', check=_undated)(_dated("0000-00-00 00:00:00"))
case("date-overflow", "a date in year 99999, past datetime's range", check=lambda c: _at_least(c, 2))(
    _dated("Mon, 01 Jan 99999 00:00:00 GMT")
)
case("date-far-future", "a date in the year 9999 (the last datetime can hold)", check=stored(2))(
    _dated("Fri, 31 Dec 9999 23:59:59 GMT")
)
case("date-far-past", "a date in the year 1", check=stored(2))(_dated("Mon, 01 Jan 0001 00:00:00 GMT"))


# -- size ------------------------------------------------------------------------------------------


@case("ten-thousand-items", "10,000 new items in one feed", check=stored(10_000), memory_mib=400, timeout=90)
def _ten_thousand(env: Env) -> str:
    # Titles no rule matches: this case is about parsing and storing; 10,000 alerts at once is
    # the outbox's and the story index's load, not the feed reader's.
    return feed(env, rss("".join(item(n, title=f"Item {n}") for n in range(10_000))))


@case("megabyte-titles", "five items with 1 MB titles", check=stored(5))
def _big_titles(env: Env) -> str:
    return feed(env, rss("".join(item(n, title=f"T{n} " + "word " * 200_000) for n in range(5))))


@case("megabyte-guid", "a 1 MB guid (too long for a database index)", check=stored(1))
def _big_guid(env: Env) -> str:
    return feed(env, rss(f"<item><title>t</title><guid>{'g' * 1_000_000}</guid></item>"))


@case("megabyte-link", "a 1 MB link", check=stored(1))
def _big_link(env: Env) -> str:
    return feed(env, rss(item(1, link="https://example.org/" + "a" * 1_000_000)))


@case("enclosures", "one item with 30,000 enclosures", check=stored(1), memory_mib=400, timeout=60)
def _enclosures(env: Env) -> str:
    many = "".join(
        f'<enclosure url="https://example.org/{n}.mp3" length="1" type="audio/mpeg"/>' for n in range(30_000)
    )
    return feed(env, rss(item(1, extra=many)))


@case(
    "categories",
    "one item with 100,000 categories (feedparser dedups tags quadratically)",
    check=stored(1),
    memory_mib=400,
    timeout=60,
)
def _categories(env: Env) -> str:
    return feed(env, rss(item(1, extra="".join(f"<category>c{n}</category>" for n in range(100_000)))))


@case("deep-nesting", "30,000 nested elements inside an item", check=lambda c: _at_least(c, 0), timeout=60)
def _deep(env: Env) -> str:
    return feed(env, rss(item(1, extra="<x>" * 30_000 + "</x>" * 30_000) + item(2)))


@case("deep-html", "30,000 nested <div>s in an escaped HTML summary", check=stored(1), timeout=60)
def _deep_html(env: Env) -> str:
    html = "&lt;div&gt;" * 30_000 + "text" + "&lt;/div&gt;" * 30_000
    return feed(env, rss(item(1, extra=f"<description>{html}</description>")))


# -- identity --------------------------------------------------------------------------------------


@case("duplicate-guids", "the same item (guid and link) listed three times", check=stored(1))
def _dup(env: Env) -> str:
    return feed(env, rss(item(1) * 3))


@case("one-guid-for-all", "every item carries the same guid (a CMS default)", check=stored(3))
def _shared_guid(env: Env) -> str:
    items = "".join(
        f"<item><title>Notice {n}</title><link>https://example.org/{n}</link><guid>same</guid></item>" for n in range(3)
    )
    return feed(env, rss(items))


@case("no-identity", "items with no guid, link, title or description", check=stored(0))
def _no_identity(env: Env) -> str:
    return feed(env, rss("<item></item>" * 5))


# -- text and links ----------------------------------------------------------------------------------


@case("control-characters", "ESC[2J, BEL, backspace and C1 controls in title and summary", check=stored(1))
def _controls(env: Env) -> str:
    return feed(
        env,
        rss(
            item(1, title="clear&#27;[2J\x07bell\x08&#x9b;31m", extra="<description>a&#27;]0;owned&#7;b</description>")
        ),
    )


@case("bidi-overrides", "right-to-left override in a title (Trojan Source)", check=stored(1))
def _bidi(env: Env) -> str:
    return feed(env, rss(item(1, title="invoice\u202egnp.exe")))


def _no_links(cycle: Cycle) -> None:
    assert cycle.items and all(i.link is None for i in cycle.items), [i.link for i in cycle.items]
    assert cycle.articles == {}  # nothing was fetched as a page


@case("javascript-links", "javascript: links, also javascript://host/%0a forms", check=_no_links, full_text=True)
def _js_links(env: Env) -> str:
    return feed(
        env,
        rss(
            item(1, link="javascript:alert(1)")
            + item(2, link="javascript://example.org/%0aalert(1)")
            + item(3, link=" JaVaScRiPt:alert(1)")
        ),
    )


@case("data-links", "data: links (a page inline) and vbscript:", check=_no_links, full_text=True)
def _data_links(env: Env) -> str:
    return feed(
        env, rss(item(1, link="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;") + item(2, link="vbscript:msgbox"))
    )


@case("file-links", "file: and ftp: links in items, never read as pages", check=_no_links, full_text=True)
def _file_links(env: Env) -> str:
    return feed(env, rss(item(1, link="file:///etc/passwd") + item(2, link="ftp://example.org/x")))


def _links_on_the_feed_server(cycle: Cycle) -> None:
    assert cycle.items and all((i.link or "").startswith("http://127.0.0.1:") for i in cycle.items)


@case(
    "xml-base-javascript",
    "an Atom xml:base of javascript: for relative links: resolved against the feed's own URL",
    check=_links_on_the_feed_server,
)
def _xml_base(env: Env) -> str:
    atom = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="javascript:alert(1)//">'
        "<title>t</title><id>urn:t</id><entry><id>urn:1</id><title>Notice 1</title>"
        '<link rel="alternate" href="x"/><updated>2026-01-01T00:00:00Z</updated></entry></feed>'
    )
    return feed(env, atom, content_type="application/atom+xml")


# -- XML attacks -----------------------------------------------------------------------------------


@case("billion-laughs", "nested internal entities expanding to gigabytes", check=lambda c: _at_least(c, 0))
def _laughs(env: Env) -> str:
    levels = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    doc = f'<?xml version="1.0"?><!DOCTYPE rss [{"".join(levels)}]>' + rss(item(1, title="&lol9;"))[21:]
    return feed(env, doc)


@case("xxe-local-file", "an external entity reading a local file (XXE)", check=lambda c: _no_secret(c))
def _xxe(env: Env) -> str:
    secret = env.tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-XXE-CONTENT")
    doc = f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]>' + rss(item(1, title="&x;"))[21:]
    return feed(env, doc)


def _no_secret(cycle: Cycle) -> None:
    for i in cycle.items:
        assert "TOP-SECRET" not in f"{i.title}{i.summary}{i.content}"
    assert "TOP-SECRET" not in (cycle.status.last_error or "")


@case(
    "xxe-remote-dtd",
    "an external DTD and parameter entity on the feed server (SSRF via XXE)",
    check=lambda c: _at_least(c, 0),
)
def _xxe_remote(env: Env) -> str:
    dtd = env.feed_server.route(
        "/evil.dtd", body='<!ENTITY % x SYSTEM "file:///etc/passwd">', headers={"Content-Type": "application/xml-dtd"}
    )
    doc = f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{dtd}" [<!ENTITY % p SYSTEM "{dtd}"> %p;]>' + rss(item(1))[21:]
    return feed(env, doc)


# -- hostile linked pages (full_text: every item's page is read before matching) -----------------------


def _page_case(id: str, attack: str, page: Callable[[Env], str], error: str, **kw: object) -> None:
    def serve(env: Env) -> str:
        link = page(env)
        return feed(env, rss(item(1, link=link)))

    def check(cycle: Cycle) -> None:
        assert len(cycle.items) == 1  # the item is stored whatever its page does
        errors = list(cycle.articles.values())
        assert len(errors) == 1 and errors[0] is not None and error in errors[0], cycle.articles

    case(id, f"linked page: {attack}", check=check, full_text=True, **kw)(serve)  # type: ignore[arg-type]


_page_case(
    "page-huge",
    "a 50 MB page",
    lambda e: e.feed_server.route("/p", body=b"<p>" + b"x" * 50_000_000),
    TOO_LARGE,
    memory_mib=300,
)
_page_case(
    "page-endless", "a page that never ends",
    lambda e: e.feed_server.handler("/p", lambda _r: Response(200, {"Content-Type": "text/html"}, b"<html>", stream=endless(b"<p>more</p>" * 1000))),
    TOO_LARGE,
)  # fmt: skip
_page_case(
    "page-gzip-bomb", "a page that is a gzip bomb",
    lambda e: e.feed_server.route("/p", body=gzip_bomb(), headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}),
    TOO_LARGE,
)  # fmt: skip
_page_case(
    "page-metadata", "a page on the cloud metadata service (guard on)",
    lambda e: "http://169.254.169.254/latest/meta-data/iam/", "is a link-local address",
    http=GUARD, allowed_networks=LOOPBACK_ONLY,
)  # fmt: skip
_page_case(
    "page-binary", "a page that is a binary download",
    lambda e: e.feed_server.route("/p", body=bytes(1000), headers={"Content-Type": "application/octet-stream"}),
    "not a web page",
)  # fmt: skip
_page_case(
    "page-trickle", "a page sent one byte every 20 ms",
    lambda e: e.feed_server.route("/p", body="<html>" + "x" * 1000, headers={"Content-Type": "text/html"}, trickle=0.02),
    "no complete response",
)  # fmt: skip


@case("page-deep-html", "linked page: 30,000 nested <div>s", check=stored(1), full_text=True)
def _page_deep(env: Env) -> str:
    body = "<html><body>" + "<div>" * 30_000 + "Notice text" + "</div>" * 30_000 + "</body></html>"
    link = env.feed_server.route("/p", body=body, headers={"Content-Type": "text/html"})
    return feed(env, rss(item(1, link=link)))
