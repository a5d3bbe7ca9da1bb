"""XXH64 (seed 0 by default), the checksum a btrfs made with ``--csum xxhash`` uses.

Written from the xxHash specification: four lanes over 32-byte stripes, then the
tail 8, 4 and 1 bytes at a time, then the avalanche; all arithmetic modulo 2**64.
``xxh64(b"") == 0xEF46DB3751D8E999``. Pure Python: for a few KiB, as a superblock.
"""

from __future__ import annotations

import struct

__all__ = ["xxh64"]

_M = (1 << 64) - 1
P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
P3 = 0x165667B19E3779F9
P4 = 0x85EBCA77C2B2AE63
P5 = 0x27D4EB2F165667C5


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * P2) & _M, 31) * P1) & _M


def _merge(acc: int, v: int) -> int:
    return (((acc ^ _round(0, v)) * P1) + P4) & _M


def xxh64(data: bytes | bytearray | memoryview, seed: int = 0) -> int:
    """The XXH64 of ``data``."""
    data = bytes(data)
    n, i = len(data), 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + P1 + P2) & _M, (seed + P2) & _M, seed, (seed - P1) & _M
        for i in range(0, n - n % 32, 32):
            a, b, c, d = struct.unpack_from("<4Q", data, i)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
        i = n - n % 32
        acc = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        for v in (v1, v2, v3, v4):
            acc = _merge(acc, v)
    else:
        acc = (seed + P5) & _M
    acc = (acc + n) & _M
    while i + 8 <= n:
        acc ^= _round(0, struct.unpack_from("<Q", data, i)[0])
        acc = (_rotl(acc, 27) * P1 + P4) & _M
        i += 8
    if i + 4 <= n:
        acc ^= (struct.unpack_from("<I", data, i)[0] * P1) & _M
        acc = (_rotl(acc, 23) * P2 + P3) & _M
        i += 4
    for byte in data[i:]:
        acc ^= (byte * P5) & _M
        acc = (_rotl(acc, 11) * P1) & _M
    acc ^= acc >> 33
    acc = (acc * P2) & _M
    acc ^= acc >> 29
    acc = (acc * P3) & _M
    return acc ^ (acc >> 32)
