"""Refuse connections to addresses inside the network (``[http] block_private_addresses``).

Owns: the check on the address actually connected to. In a shared deployment the people who add
feeds are not all trusted, and a feed URL, a linked page or a redirect pointing at 127.0.0.1, the
cloud metadata service (169.254.169.254) or a private service would make the daemon a proxy into
the network. The name is resolved here, every address it resolves to is checked, and the socket is
opened to the checked address itself, so a name that resolves differently the second time (DNS
rebinding) cannot slip past. TLS still verifies the certificate for the name: httpcore takes the
server name from the URL, not from the address connected to.

An operator may allow chosen networks (an intranet feed server on 10.0.0.5) without turning the
guard off for everything else; an allowed network is checked on the same resolved address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """Parse allowed networks ("10.0.0.5", "10.1.0.0/16", "fd00::/8"). Raises ValueError."""
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs)


def blocked(address: str, allowed: Sequence[Network] = ()) -> str | None:
    """Why ``address`` may not be connected to ("loopback", "private"...), or None if it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    for kind, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),  # 169.254.169.254: cloud metadata services
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return kind
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to public addresses."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, allowed: Sequence[Network] = ()) -> None:
        self._inner = inner
        self._allowed = tuple(allowed)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"timed out resolving {host}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            kind = blocked(address, self._allowed)
            if kind is not None:
                shown = host if host == address else f"{host} ({address})"
                article = "an" if kind[0] in "aeiou" else "a"
                raise httpcore.ConnectError(
                    f"refused: {shown} is {article} {kind} address (http.block_private_addresses is on)"
                )
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused: unix sockets (http.block_private_addresses is on)")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
