"""[http] block_private_addresses against a real loopback server: a feed, a linked page or a
redirect resolving to an address inside the network is refused with a clear per-feed error and
never reaches the server; off, the same feeds are read (local setups)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from watcher.errors import FetchError
from watcher.feeds.fetch import Fetcher, FetchPolicy
from watcher.feeds.guard import blocked, networks

RSS = '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


def _fetch(policy: FetchPolicy, url: str) -> Any:
    async def run() -> Any:
        async with Fetcher(policy) as fetcher:
            return await fetcher.fetch("f", url)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("fd00::1", "private"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_which_addresses_are_refused(address: str, kind: str | None) -> None:
    assert blocked(address) == kind


def test_refused_before_any_request(feed_server: Any) -> None:
    feed = feed_server.route("/feed.rss", body=RSS, headers={"Content-Type": "application/rss+xml"})
    by_name = feed.replace("127.0.0.1", "localhost")
    hop = feed_server.route("/hop", status=302, headers={"Location": feed})
    guarded = FetchPolicy(block_private_addresses=True)
    for url, shown in ((feed, "127.0.0.1 is a loopback address"), (by_name, "localhost (127.0.0.1) is a loopback")):
        with pytest.raises(FetchError) as refused:
            _fetch(guarded, url)
        assert shown in str(refused.value) and "block_private_addresses" in str(refused.value)
    with pytest.raises(FetchError):
        _fetch(guarded, hop)
    assert feed_server.requests == []  # nothing reached the server
    assert _fetch(FetchPolicy(), hop).status == 200  # off: a local setup reads its own feeds


def test_allowed_networks_open_only_what_they_name(feed_server: Any) -> None:
    """An operator's intranet feed server stays reachable with the guard on; the rest of the
    same kind of address (here, the rest of 127/8 and a redirect into it) is still refused."""
    feed = feed_server.route("/feed.rss", body=RSS, headers={"Content-Type": "application/rss+xml"})
    elsewhere = feed_server.route("/hop", status=302, headers={"Location": feed.replace("127.0.0.1", "127.0.0.2")})
    policy = FetchPolicy(block_private_addresses=True, allowed_networks=("127.0.0.1/32",))
    assert _fetch(policy, feed).status == 200
    with pytest.raises(FetchError) as refused:
        _fetch(policy, elsewhere)
    assert "127.0.0.2 is a loopback address" in str(refused.value)
    assert blocked("10.1.2.3", networks(["10.0.0.0/8"])) is None
    assert blocked("10.1.2.3", networks(["10.9.0.0/16"])) == "private"
    assert blocked("::ffff:10.1.2.3", networks(["10.1.2.3"])) is None  # mapped addresses too
