"""Compressed bodies that inflate far past any cap: built once per session, in about a second.

Deflate output is byte-aligned after a full flush and the dictionary is reset, so one
compressed megabyte of zeros can be repeated: 2 MB on the wire inflate to 2 GiB.
"""

from __future__ import annotations

import functools
import struct
import zlib

INFLATED_MIB = 2048
_PREFIX = b'<?xml version="1.0"?><rss version="2.0"><channel><title>'


@functools.cache
def _blocks(wbits: int) -> tuple[bytes, bytes]:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    head = packer.compress(_PREFIX) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(bytes(1 << 20)) + packer.flush(zlib.Z_FULL_FLUSH)
    return head, block


@functools.cache
def gzip_bomb(mebibytes: int = INFLATED_MIB) -> bytes:
    """A valid gzip member whose content is a feed prolog and ``mebibytes`` MiB of NUL bytes."""
    head, block = _blocks(zlib.MAX_WBITS | 16)
    crc = zlib.crc32(_PREFIX)
    zeros = bytes(1 << 20)
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    size = len(_PREFIX) + (mebibytes << 20)
    # 0x03 0x00: a final, empty fixed-Huffman block; then CRC-32 and size mod 2**32 (RFC 1952).
    return head + block * mebibytes + b"\x03\x00" + struct.pack("<II", crc, size & 0xFFFFFFFF)


@functools.cache
def deflate_bomb(mebibytes: int = INFLATED_MIB) -> bytes:
    """Raw deflate (no zlib wrapper, as some servers send "deflate"), no checksum to compute."""
    head, block = _blocks(-zlib.MAX_WBITS)
    return head + block * mebibytes + b"\x03\x00"
