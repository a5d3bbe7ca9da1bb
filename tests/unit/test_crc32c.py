"""CRC-32C against the published check value and the RFC 3720 (iSCSI) vectors."""

from __future__ import annotations

import pytest

from nbdtui.disk.structures.crc32c import crc32c


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"", 0),
        (b"123456789", 0xE3069283),
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_vectors(data: bytes, crc: int) -> None:
    assert crc32c(data) == crc


def test_continues_across_pieces_of_any_length() -> None:
    data = bytes(range(256)) * 5
    for cut in (0, 1, 7, 8, 9, 100, len(data)):
        assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)
