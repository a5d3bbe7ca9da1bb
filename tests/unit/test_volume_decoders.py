"""The volume decoders and the scan's magic search on hostile bytes: random data with
each family's magic planted where it belongs never makes a decoder raise or read
outside the device, and the magic search finds starts only where a format puts them.
(Real images and the formats' own tools: tests/integration/test_volume_structures.py.)"""

from __future__ import annotations

import random
import struct

import pytest

from nbdtui.disk.partitions import run_plan
from nbdtui.disk.structures import btrfs, luks, lvm, mdraid, swap, xfs
from nbdtui.disk.structures.model import Probe, Structure
from nbdtui.disk.structures.scan import candidates, verify_plan

#: (probe, [(offset in the device, bytes)] that make it look like that family)
PLANTS: list[tuple[Probe, list[tuple[int, bytes]]]] = [
    (xfs.probe, [(0, b"XFSB")]),
    (btrfs.probe, [(0x10040, b"_BHRfS_M")]),
    (luks.probe, [(0, b"LUKS\xba\xbe\x00\x01")]),
    (luks.probe, [(0, b"LUKS\xba\xbe\x00\x02"), (8, struct.pack(">Q", 0x4000))]),
    (swap.probe, [(4086, b"SWAPSPACE2"), (1024, struct.pack("<I", 1))]),
    (lvm.probe, [(512, b"LABELONE"), (536, b"LVM2 001")]),
    (mdraid.probe, [(4096, struct.pack("<II", 0xA92B4EFC, 1)), (4096 + 144, struct.pack("<Q", 8))]),
]


def device(size: int, rng: random.Random, plants: list[tuple[int, bytes]]) -> bytearray:
    data = bytearray(rng.randbytes(size))
    for at, raw in plants:
        data[at : at + len(raw)] = raw[: max(0, size - at)]
    return data[:size]


def bounded(data: bytearray):
    def read(offset: int, length: int) -> bytes:
        assert offset >= 0 and length > 0 and offset + length <= len(data), (offset, length)
        return bytes(data[offset : offset + length])

    return read


@pytest.mark.parametrize(("probe", "plants"), PLANTS)
def test_random_bytes_with_a_planted_magic(probe: Probe, plants) -> None:
    rng = random.Random(14)
    for size in (0, 100, 600, 2048, 5000, 0x11000, 0x40000, 0x400000):
        for _ in range(30 if size <= 0x40000 else 2):
            data = device(size, rng, plants)
            result = run_plan(probe(0, size), bounded(data))
            assert result is None or isinstance(result, Structure)


@pytest.mark.parametrize(("probe", "plants"), PLANTS)
def test_zeros_are_no_structure(probe: Probe, plants) -> None:
    data = bytearray(0x20000)
    assert run_plan(probe(0, len(data)), bounded(data)) is None


def test_candidates_at_the_places_each_format_puts_its_magic() -> None:
    base = 200 << 20
    piece = bytearray(4 << 20)

    def put(at: int, raw: bytes) -> None:
        piece[at : at + len(raw)] = raw

    put(0x1000, b"XFSB")
    put(0x20000 + 0x10040, b"_BHRfS_M")
    put(0x40000 + 4086, b"SWAPSPACE2")
    put(0x40000 + 1024, struct.pack("<I", 1))
    put(0x60000 + 1024 + 0x38, b"\x53\xef")
    put(0x80000 + 512, b"LABELONE" + struct.pack("<Q", 1) + bytes(8) + b"LVM2 001")
    put(0xA0000 + 4096, struct.pack("<II", 0xA92B4EFC, 1))
    put(0xA0000 + 4096 + 144, struct.pack("<Q", 8))
    put(0xC0000, b"\xeb\x3c\x90mkfs.fat" + struct.pack("<H", 512))
    put(0xC0000 + 510, b"\x55\xaa")
    put(0xE0000, b"\xeb\x52\x90NTFS    ")
    put(0xE0000 + 510, b"\x55\xaa")
    # an ext4 backup superblock (group 1 of 32768 4 KiB blocks): the start is 128 MiB back
    put(0x140000 + 0x14, struct.pack("<III", 0, 2, 0))
    put(0x140000 + 0x20, struct.pack("<I", 32768))
    put(0x140000 + 0x38, b"\x53\xef")
    put(0x140000 + 0x5A, struct.pack("<H", 1))
    put(0x100001, b"XFSB")  # not on a sector boundary: no start
    put(0x120000 + 0x39, b"\x53\xef")  # one byte off an ext superblock's magic
    found = candidates(piece, base)
    assert found.pop(base + 0x140000 - (128 << 20)) == {"ext2", "ext3", "ext4"}
    assert {at - base: types for at, types in found.items()} == {
        0x1000: {"xfs"},
        0x20000: {"btrfs"},
        0x40000: {"swap"},
        0x60000: {"ext2", "ext3", "ext4"},
        0x80000: {"LVM2_member"},
        0xA1000: {"linux_raid_member"},  # the superblock itself (it says where it is)
        0xC0000: {"vfat"},
        0xE0000: {"ntfs"},
        0x140000 - 0x400: {"ext2", "ext3", "ext4"},  # the backup's own place, for the decoder
    }


def test_a_candidate_inside_a_filesystem_found_is_skipped() -> None:
    """An XFS secondary superblock (AG 1) is inside the filesystem: not a second one."""
    sector = bytearray(512)
    struct.pack_into(">4sIQ", sector, 0, b"XFSB", 4096, 1024)  # 1024 blocks of 4 KiB
    struct.pack_into(">II", sector, 84, 512, 2)  # 2 AGs of 512 blocks
    struct.pack_into(">H", sector, 100, 4)  # version 4: no CRC
    struct.pack_into(">H", sector, 102, 512)
    disk = bytearray(8 << 20)
    disk[1 << 20 : (1 << 20) + 512] = sector
    disk[(1 << 20) + (2 << 20) : (1 << 20) + (2 << 20) + 512] = sector  # AG 1
    found = candidates(disk, 0)
    assert sorted(found) == [1 << 20, 3 << 20]
    structures = run_plan(verify_plan(found, len(disk)), bounded(disk))
    assert [(s.type, s.offset, s.size) for s in structures] == [("xfs", 1 << 20, 4 << 20)]
    assert [(b.at, b.matches) for b in structures[0].backups] == [(3 << 20, True)]
