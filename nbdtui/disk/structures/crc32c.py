"""CRC-32C (Castagnoli), table-driven, for the checksums of ext4, XFS, btrfs and others.

:func:`crc32c` is the standard CRC-32C (initial value and final XOR ``0xFFFFFFFF``, as
iSCSI and ``crc32c("123456789") == 0xE3069283``). :func:`crc32c_raw` is the register
without the final XOR, started from ``seed``, which is what Linux's ``crc32c(seed, …)``
returns and what ext4 stores (``crc32c_raw(data)`` with the default seed ``~0``).
Pure Python: about 1 MB/s, plenty for a superblock of a few KiB.
"""

from __future__ import annotations

__all__ = ["crc32c", "crc32c_raw"]

_POLY = 0x82F63B78  # the reflected Castagnoli polynomial


def _table() -> tuple[int, ...]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        out.append(c)
    return tuple(out)


_TABLE = _table()


def crc32c_raw(data: bytes, seed: int = 0xFFFFFFFF) -> int:
    """The CRC register after ``data``, started at ``seed``, without the final XOR."""
    crc = seed & 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def crc32c(data: bytes, value: int = 0) -> int:
    """The standard CRC-32C of ``data``; pass a previous result as ``value`` to continue."""
    return crc32c_raw(data, value ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
