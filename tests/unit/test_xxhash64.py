"""XXH64 against the reference implementation's published values."""

from __future__ import annotations

import pytest

from nbdtui.disk.structures.xxhash64 import xxh64


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", 0xEF46DB3751D8E999),
        (b"a", 0xD24EC4F1A98C6E5B),
        (b"abc", 0x44BC2CF5AD770999),
    ],
)
def test_vectors(data: bytes, digest: int) -> None:
    assert xxh64(data) == digest


def test_every_tail_length_differs() -> None:
    """Lengths 0..70 cover the 32-byte stripes and the 8-, 4- and 1-byte tails."""
    data = bytes(range(71))
    digests = {xxh64(data[:n]) for n in range(71)}
    assert len(digests) == 71
