"""MBR/GPT decoders checked against sfdisk (util-linux, apt package `fdisk`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbdtui.disk.partitions import (
    MAX_GPT_ENTRIES_BYTES,
    PartitionTable,
    decode_gpt_header,
    decode_mbr,
    partition_table_plan,
    read_partition_table,
    read_partition_table_async,
)
from tests.support.requirements import require

MIB = 1024 * 1024


def make_image(path: Path, script: str, size: int = 64 * MIB) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    sfdisk = require("sfdisk")
    subprocess.run([sfdisk, "--quiet", str(path)], input=script, text=True, check=True)
    return path


def sfdisk_dump(path: Path) -> dict:
    out = subprocess.run(
        [require("sfdisk"), "--json", "--dump", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)["partitiontable"]


def file_reader(path: Path):
    def read(offset: int, length: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    return read


def decode_file(path: Path, sector_size: int | None = 512) -> PartitionTable | None:
    return read_partition_table(file_reader(path), path.stat().st_size, sector_size)


GPT_ATTR_BITS = {"RequiredPartition": 0, "NoBlockIOProtocol": 1, "LegacyBIOSBootable": 2}


def sfdisk_attrs(text: str) -> int:
    value = 0
    for word in text.split():
        value |= 1 << (int(word[5:]) if word.startswith("GUID:") else GPT_ATTR_BITS[word])
    return value


def assert_matches_sfdisk(table: PartitionTable, dump: dict) -> None:
    assert table.scheme == {"gpt": "gpt", "dos": "mbr"}[dump["label"]]
    assert table.sector_size == dump["sectorsize"]
    assert table.disk_id.lower() == dump["id"].lower()
    expected = dump["partitions"]
    assert len(table.partitions) == len(expected)
    for part, exp in zip(table.partitions, expected, strict=True):
        assert part.index == int(re.search(r"(\d+)$", exp["node"]).group(1))
        assert part.first_lba == exp["start"]
        assert part.sectors == exp["size"]
        assert part.start == exp["start"] * dump["sectorsize"]
        assert part.size == exp["size"] * dump["sectorsize"]
        if table.scheme == "gpt":
            assert part.type_id == exp["type"]
            assert part.guid == exp["uuid"]
            assert part.name == exp.get("name", "")
            assert part.attributes == sfdisk_attrs(exp.get("attrs", ""))
        else:
            assert int(part.type_id, 16) == int(exp["type"], 16)
            assert part.bootable == exp.get("bootable", False)
            assert part.logical == (part.index >= 5)


GPT_SCRIPT = """label: gpt
size=8MiB, type=U, name="EFI system"
size=16MiB, type=L, name="root fs", attrs="RequiredPartition LegacyBIOSBootable GUID:60"
size=4MiB, type=S
size=1MiB, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE, name="Microsoft reserved partition"
type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="Données ü €"
"""

MBR_SCRIPT = """label: dos
label-id: 0x12345678
disk.img1 : start=2048, size=8MiB, type=83, bootable
disk.img2 : start=18432, size=50MiB, type=f
disk.img3 : start=120832, type=7
disk.img5 : size=4MiB, type=82
disk.img6 : size=8MiB, type=c
disk.img7 : type=8e
"""


@pytest.fixture
def gpt_image(tmp_path: Path) -> Path:
    return make_image(tmp_path / "disk.img", GPT_SCRIPT)


@pytest.fixture
def mbr_image(tmp_path: Path) -> Path:
    return make_image(tmp_path / "disk.img", MBR_SCRIPT)


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))


# ---------------------------------------------------------------- GPT


def test_gpt_matches_sfdisk(gpt_image: Path) -> None:
    table = decode_file(gpt_image)
    assert table is not None
    assert_matches_sfdisk(table, sfdisk_dump(gpt_image))
    assert table.problems == ()
    names = [(p.type_name, p.name) for p in table.partitions]
    assert names == [
        ("EFI System", "EFI system"),
        ("Linux filesystem", "root fs"),
        ("Linux swap", ""),
        ("Microsoft reserved", "Microsoft reserved partition"),
        ("Microsoft basic data", "Données ü €"),
    ]
    assert table.partitions[1].bootable  # LegacyBIOSBootable, attribute bit 2
    assert not table.partitions[0].bootable
    header = table.header
    assert header["my_lba"] == 1 and header["alternate_lba"] == 64 * MIB // 512 - 1
    assert header["entry_count"] == 128 and header["entry_size"] == 128
    assert header["crc_ok"] and header["revision"] == "1.0"


def test_gpt_auto_sector_size_finds_512(gpt_image: Path) -> None:
    table = decode_file(gpt_image, None)
    assert table is not None and table.sector_size == 512 and table.problems == ()
    assert len(table.partitions) == 5


def test_gpt_async_driver_agrees(gpt_image: Path) -> None:
    read = file_reader(gpt_image)

    async def aread(offset: int, length: int) -> bytes:
        await asyncio.sleep(0)
        return read(offset, length)

    size = gpt_image.stat().st_size
    table = asyncio.run(read_partition_table_async(aread, size, None))
    assert table == read_partition_table(read, size, None)


def test_plan_requests_are_inside_the_disk_and_few(gpt_image: Path) -> None:
    read = file_reader(gpt_image)
    size = gpt_image.stat().st_size
    plan = partition_table_plan(size, None)
    requests = []
    try:
        request = next(plan)
        while True:
            requests.append(request)
            request = plan.send(read(*request))
    except StopIteration as stop:
        table = stop.value
    assert table is not None and len(table.partitions) == 5
    assert all(off >= 0 and length > 0 and off + length <= size for off, length in requests)
    assert len(requests) <= 6
    assert sum(length for _, length in requests) <= 64 * 1024


def test_gpt_header_crc_mismatch_uses_backup(gpt_image: Path) -> None:
    good = decode_file(gpt_image)
    flip(gpt_image, 512 + 16)  # a byte of the stored header CRC32
    table = decode_file(gpt_image)
    assert table is not None and table.scheme == "gpt"
    assert any(p.startswith("primary GPT header CRC mismatch: stored 0x") for p in table.problems)
    assert any("using the backup GPT header" in p for p in table.problems)
    assert table.partitions == good.partitions
    assert table.header["my_lba"] == 64 * MIB // 512 - 1


def test_gpt_header_field_corruption_is_detected(gpt_image: Path) -> None:
    good = decode_file(gpt_image)
    patch(gpt_image, 512 + 0x50, struct.pack("<I", 7))  # entry count, CRC not updated
    table = decode_file(gpt_image)
    assert any("primary GPT header CRC mismatch" in p for p in table.problems)
    assert table.partitions == good.partitions


def test_gpt_primary_header_destroyed_uses_backup(gpt_image: Path) -> None:
    dump = sfdisk_dump(gpt_image)
    patch(gpt_image, 512, bytes(512))
    table = decode_file(gpt_image)
    assert table is not None and table.scheme == "gpt"
    assert "primary GPT header missing" in table.problems
    assert any("using the backup GPT header" in p for p in table.problems)
    assert_matches_sfdisk(table, dump)


def test_gpt_primary_entries_crc_mismatch_uses_backup_entries(gpt_image: Path) -> None:
    dump = sfdisk_dump(gpt_image)
    flip(gpt_image, 1024 + 128 + 56)  # first byte of partition 2's name
    table = decode_file(gpt_image)
    assert any(p.startswith("primary entries CRC mismatch: stored 0x") for p in table.problems)
    assert "using the backup partition entries" in table.problems
    assert_matches_sfdisk(table, dump)


def test_gpt_entries_crc_mismatch_without_backup_shows_damaged_entries(gpt_image: Path) -> None:
    size = gpt_image.stat().st_size
    patch(gpt_image, size - 512, bytes(512))  # no backup header
    flip(gpt_image, 1024 + 128 + 56)
    table = decode_file(gpt_image)
    assert "backup GPT header missing" in table.problems
    assert any("primary entries CRC mismatch" in p for p in table.problems)
    assert table.partitions[1].name != "root fs"  # what is on disk, damaged
    assert len(table.partitions) == 5


def test_gpt_backup_missing_is_reported(gpt_image: Path) -> None:
    size = gpt_image.stat().st_size
    patch(gpt_image, size - 512, bytes(512))
    table = decode_file(gpt_image)
    assert table.problems == ("backup GPT header missing",)
    assert len(table.partitions) == 5


def test_gpt_backup_crc_mismatch_is_reported(gpt_image: Path) -> None:
    size = gpt_image.stat().st_size
    flip(gpt_image, size - 512 + 0x38)  # a byte of the disk GUID in the backup header
    table = decode_file(gpt_image)
    assert len(table.problems) == 1
    assert table.problems[0].startswith("backup GPT header CRC mismatch: stored 0x")


def test_gpt_partition_past_end_of_disk(gpt_image: Path) -> None:
    # The same bytes seen through a disk that is 8 MiB shorter (a truncated copy).
    read = file_reader(gpt_image)
    table = read_partition_table(read, 56 * MIB)
    assert table is not None
    assert "partition 5 extends past the end of the disk" in table.problems
    assert "backup GPT header missing" in table.problems
    assert len(table.partitions) == 5


def test_gpt_both_headers_damaged_still_shows_partitions(gpt_image: Path) -> None:
    size = gpt_image.stat().st_size
    flip(gpt_image, 512 + 16)
    flip(gpt_image, size - 512 + 16)
    table = decode_file(gpt_image)
    assert table is not None and table.scheme == "gpt"
    assert any("no intact GPT header" in p for p in table.problems)
    assert len(table.partitions) == 5


def test_gpt_without_protective_mbr(gpt_image: Path) -> None:
    patch(gpt_image, 0, bytes(512))
    table = decode_file(gpt_image)
    assert table.scheme == "gpt" and len(table.partitions) == 5
    assert table.problems == ("no protective MBR (type 0xEE) in front of the GPT",)


def test_protective_mbr_without_gpt(gpt_image: Path) -> None:
    size = gpt_image.stat().st_size
    patch(gpt_image, 512, bytes(512))
    patch(gpt_image, size - 512, bytes(512))
    table = decode_file(gpt_image)
    assert table.scheme == "mbr"
    assert "protective MBR but no valid GPT header was found" in table.problems
    [part] = table.partitions
    assert part.type_id == "0xee" and part.type_name == "protective MBR"


def test_gpt_4k_sectors_synthetic(tmp_path: Path) -> None:
    """A 4Kn GPT written by hand: LBA 1 at byte 4096, backup at the last 4 KiB."""
    ss, size = 4096, 16 * MIB
    lbas = size // ss
    entries = bytearray(128 * 128)
    entries[0:128] = make_entry(0x0FC63DAF, 256, 1279, "four k")
    crc = zlib.crc32(entries)
    image = bytearray(size)
    image[0:512] = protective_mbr(lbas)
    image[ss : ss * 2] = make_header(ss, 1, lbas - 1, 6, lbas - 6, 2, crc)
    image[2 * ss : 2 * ss + len(entries)] = entries
    image[(lbas - 5) * ss : (lbas - 5) * ss + len(entries)] = entries
    image[(lbas - 1) * ss :] = make_header(ss, lbas - 1, 1, 6, lbas - 6, lbas - 5, crc)

    def read(offset, length):
        return bytes(image[offset : offset + length])

    table = read_partition_table(read, size, None)
    assert table.sector_size == 4096 and table.problems == ()
    [part] = table.partitions
    assert (part.start, part.size, part.name) == (256 * 4096, 1024 * 4096, "four k")
    # Asked for 512-byte sectors, the same disk has only its protective MBR.
    table = read_partition_table(read, size, 512)
    assert table.scheme == "mbr"


def test_gpt_4k_sectors_with_sfdisk_on_a_loop_device(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("losetup needs root (a platform limit, not a missing package)")
    losetup, sfdisk = require("losetup"), require("sfdisk")
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(32 * MIB)
    proc = subprocess.run(
        [losetup, "-b", "4096", "-f", "--show", str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"no loop device: {proc.stderr.strip()}")
    dev = proc.stdout.strip()
    try:
        script = 'label: gpt\nsize=4MiB, type=U, name="esp"\ntype=L, name="root"\n'
        subprocess.run([sfdisk, "--quiet", dev], input=script, text=True, check=True)
        dump = json.loads(
            subprocess.run(
                [sfdisk, "--json", "--dump", dev], capture_output=True, text=True, check=True
            ).stdout
        )["partitiontable"]
    finally:
        subprocess.run([losetup, "-d", dev], check=True)
    assert dump["sectorsize"] == 4096
    table = decode_file(path, None)
    assert table is not None and table.problems == ()
    assert_matches_sfdisk(table, dump)


def make_entry(type_first: int, first: int, last: int, name: str) -> bytes:
    type_guid = struct.pack("<IHH8s", type_first, 0x8483, 0x4772, bytes.fromhex("8e793d69d8477de4"))
    return struct.pack(
        "<16s16sQQQ72s", type_guid, os.urandom(16), first, last, 0, name.encode("utf-16-le")
    )


def make_header(ss, my_lba, alt_lba, first, last, entries_lba, crc, count=128, size=128) -> bytes:
    fields = [b"EFI PART", 0x10000, 92, 0, 0, my_lba, alt_lba, first, last, b"\x11" * 16]
    fields += [entries_lba, count, size, crc]
    raw = struct.pack("<8sIIIIQQQQ16sQIII", *fields)
    fields[3] = zlib.crc32(raw)
    return struct.pack("<8sIIIIQQQQ16sQIII", *fields).ljust(ss, b"\0")


def protective_mbr(lbas: int) -> bytes:
    sector = bytearray(512)
    sector[0x1BE:0x1CE] = struct.pack("<B3sB3sII", 0, b"\0\2\0", 0xEE, b"\xff" * 3, 1, lbas - 1)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def test_decode_gpt_header_fields(gpt_image: Path) -> None:
    raw = file_reader(gpt_image)(512, 512)
    header = decode_gpt_header(raw, expected_lba=1)
    dump = sfdisk_dump(gpt_image)
    assert header["disk_guid"] == dump["id"]
    assert header["first_usable_lba"] == dump["firstlba"]
    assert header["last_usable_lba"] == dump["lastlba"]
    assert header["entries_lba"] == 2 and header["problems"] == []
    assert decode_gpt_header(b"EFI PAR" + bytes(505)) is None


# ---------------------------------------------------------------- MBR


def test_mbr_with_logical_partitions_matches_sfdisk(mbr_image: Path) -> None:
    dump = sfdisk_dump(mbr_image)
    assert [p["node"][-1] for p in dump["partitions"]] == list("123567")
    table = decode_file(mbr_image)
    assert table is not None
    assert_matches_sfdisk(table, dump)
    assert table.problems == ()
    assert table.disk_signature == 0x12345678 and table.disk_id == "0x12345678"
    kinds = [(p.index, p.type_name, p.logical, p.bootable) for p in table.partitions]
    assert kinds == [
        (1, "Linux", False, True),
        (2, "extended (LBA)", False, False),
        (3, "HPFS/NTFS/exFAT", False, False),
        (5, "Linux swap", True, False),
        (6, "W95 FAT32 (LBA)", True, False),
        (7, "Linux LVM", True, False),
    ]
    assert table.partitions[1].is_extended


def test_decode_mbr_primary_entries(mbr_image: Path) -> None:
    parts = decode_mbr(file_reader(mbr_image)(0, 512))
    assert [(p.index, p.type_id, p.first_lba) for p in parts] == [
        (1, "0x83", 2048),
        (2, "0x0f", 18432),
        (3, "0x07", 120832),
    ]
    assert decode_mbr(bytes(512)) == []
    assert decode_mbr(b"\x55\xaa") == []


def test_mbr_extended_chain_loop_is_bounded(mbr_image: Path) -> None:
    # Make the third EBR link back to the first one (relative start 0).
    read = file_reader(mbr_image)
    ext_start = 18432
    ebr = ext_start
    for _ in range(2):
        link = struct.unpack_from("<I", read(ebr * 512, 512), 0x1BE + 16 + 8)[0]
        ebr = ext_start + link
    patch(
        mbr_image, ebr * 512 + 0x1BE + 16, struct.pack("<B3sB3sII", 0, bytes(3), 5, bytes(3), 0, 1)
    )
    table = decode_file(mbr_image)
    assert f"the extended partition chain loops back to LBA {ext_start}" in table.problems
    assert [p.index for p in table.partitions] == [1, 2, 3, 5, 6, 7]


def test_mbr_logical_outside_extended_and_past_end(mbr_image: Path) -> None:
    table = read_partition_table(file_reader(mbr_image), 60 * MIB)
    assert "partition 3 extends past the end of the disk" in table.problems


def test_unpartitioned_filesystems_are_not_tables(tmp_path: Path) -> None:
    path = tmp_path / "fs.img"
    with open(path, "wb") as f:
        f.truncate(40 * MIB)
    mkfs_vfat, mkfs_ext4 = require("mkfs.vfat"), require("mkfs.ext4")
    subprocess.run([mkfs_vfat, "-F", "32", str(path)], check=True, capture_output=True)
    assert decode_file(path) is None
    subprocess.run([mkfs_ext4, "-qF", str(path)], check=True, capture_output=True)
    assert decode_file(path) is None
    assert read_partition_table(lambda o, n: bytes(n), 10 * MIB) is None


def test_tiny_and_odd_disks() -> None:
    assert read_partition_table(lambda o, n: bytes(n), 0) is None
    assert read_partition_table(lambda o, n: bytes(n), 100) is None
    assert read_partition_table(lambda o, n: b"", 10 * MIB) is None  # short reads
    assert read_partition_table(lambda o, n: bytes(n), 10 * MIB, sector_size=3) is None


# ---------------------------------------------------------------- never raise


class SparseDisk:
    def __init__(self, size: int, sectors: dict[int, bytes]):
        self.size, self.sectors, self.requested = size, sectors, 0

    def read(self, offset: int, length: int) -> bytes:
        assert offset >= 0 and length > 0 and offset + length <= self.size
        self.requested += length
        out = bytearray(length)
        for at, data in self.sectors.items():
            lo, hi = max(at, offset), min(at + len(data), offset + length)
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - at : hi - at]
        return bytes(out)


u32 = st.integers(0, 2**32 - 1)
u64 = st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1))


@st.composite
def hostile_gpt(draw):
    ss = draw(st.sampled_from([512, 4096]))
    size = draw(st.one_of(st.integers(512, 256 * 1024), st.integers(512, 2**50)))
    lbas = size // ss
    plausible = draw(st.booleans())  # fields that mostly make sense, CRCs right
    if plausible:
        count = draw(st.integers(0, 200))
        entry_size = draw(st.sampled_from([128, 256]))
        entries = b"".join(
            struct.pack(
                "<16s16sQQQ72s",
                draw(st.sampled_from([bytes(16), b"\x01" * 16, os.urandom(16)])),
                bytes(16),
                draw(st.integers(0, 2 * lbas + 2)),
                draw(st.one_of(st.integers(0, 2 * lbas + 2), u64)),
                draw(u64),
                draw(st.binary(min_size=72, max_size=72)),
            ).ljust(entry_size, b"\0")
            for _ in range(draw(st.integers(0, 6)))
        ).ljust(count * entry_size, b"\0")[: count * entry_size]
        entries_crc = zlib.crc32(entries)
        first, last = draw(st.integers(0, lbas)), draw(st.integers(0, lbas + 2))
        alt = draw(st.sampled_from([max(lbas - 1, 0), 0, lbas + 5, 2**64 - 1]))
        raw = bytearray(make_header(ss, 1, alt, first, last, 2, entries_crc, count, entry_size))
        if draw(st.booleans()):
            raw[draw(st.integers(0, 91))] ^= 1 << draw(st.integers(0, 7))
    else:
        fields = [b"EFI PART", draw(u32), draw(st.sampled_from([92, 93, 512, 0, 2**32 - 1]))]
        fields += [0, draw(u32)]
        fields += [draw(u64) for _ in range(4)] + [draw(st.binary(min_size=16, max_size=16))]
        fields += [draw(u64), draw(u32), draw(st.sampled_from([0, 1, 128, 256, 8192, 2**31])), 0]
        raw = bytearray(struct.pack("<8sIIIIQQQQ16sQIII", *fields))
        if draw(st.booleans()) and fields[2] == 92:
            raw[16:20] = struct.pack("<I", zlib.crc32(raw))
        entries = draw(st.binary(max_size=1024))
    sector0 = bytearray(draw(st.binary(min_size=512, max_size=512)))
    sector0[510:512] = b"\x55\xaa"
    if draw(st.booleans()):
        for i in range(4):
            sector0[0x1BE + 16 * i] = 0
    sectors = {0: bytes(sector0), ss: bytes(raw), 2 * ss: entries}
    if draw(st.booleans()):
        sectors[max(size - ss, 0)] = bytes(raw)
    return SparseDisk(size, sectors), draw(st.sampled_from([None, 512, 4096]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_gpt())
def test_hostile_gpt_never_raises(case) -> None:
    disk, sector_size = case
    table = read_partition_table(disk.read, disk.size, sector_size)
    assert table is None or isinstance(table, PartitionTable)
    assert disk.requested <= 3 * MAX_GPT_ENTRIES_BYTES + 64 * 1024


def mbr_sector(draw, start_range) -> bytes:
    entries = b"".join(
        struct.pack(
            "<B3sB3sII",
            draw(st.sampled_from([0, 0x80])),
            bytes(3),
            draw(st.sampled_from([0, 5, 0x0F, 0x85, 0x83, 0xEE, 7])),
            bytes(3),
            draw(st.one_of(start_range, u32)),
            draw(st.one_of(st.integers(0, 64), u32)),
        )
        for _ in range(4)
    )
    return bytes(0x1BE) + entries + b"\x55\xaa"


@st.composite
def hostile_mbr(draw):
    size = draw(st.one_of(st.integers(512, 2**40), st.just(MIB)))
    sectors = {0: mbr_sector(draw, st.integers(1, 32))}
    for lba in draw(st.lists(st.integers(1, 32), max_size=12)):
        sectors[lba * 512] = mbr_sector(draw, st.integers(0, 16))
    return SparseDisk(size, sectors)


@settings(max_examples=300, deadline=None)
@given(hostile_mbr())
def test_hostile_mbr_never_raises_or_loops(disk) -> None:
    table = read_partition_table(disk.read, disk.size)
    assert table is None or len(table.partitions) <= 4 + 128
    assert disk.requested <= 8192 + 3 * 4096 + 130 * 512


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=20000), st.sampled_from([None, 512, 4096]))
def test_random_bytes_never_raise(data: bytes, sector_size) -> None:
    size = max(len(data), 512)
    padded = data.ljust(size, b"\0")
    table = read_partition_table(lambda o, n: padded[o : o + n], size, sector_size)
    assert table is None or isinstance(table, PartitionTable)
    assert isinstance(decode_mbr(data), list)
    assert decode_gpt_header(data) is None or data[:8] == b"EFI PART"


def test_mbr_long_extended_chain_stops_at_the_bound() -> None:
    def entry(ptype: int, start: int, count: int) -> bytes:
        return struct.pack("<B3sB3sII", 0, bytes(3), ptype, bytes(3), start, count)

    def sector(*entries: bytes) -> bytes:
        return bytes(0x1BE) + b"".join(entries).ljust(64, b"\0") + b"\x55\xaa"

    ext_start, chain = 2048, 300
    sectors = {0: sector(entry(0x05, ext_start, 4 * chain))}
    for i in range(chain):
        link = entry(0x05, 4 * (i + 1), 4) if i + 1 < chain else b""
        sectors[(ext_start + 4 * i) * 512] = sector(entry(0x83, 1, 3), link)
    disk = SparseDisk(64 * MIB, sectors)
    table = read_partition_table(disk.read, disk.size)
    logicals = [p for p in table.partitions if p.logical]
    assert len(logicals) == 128
    assert logicals[0].index == 5 and logicals[0].first_lba == ext_start + 1
    assert logicals[1].first_lba == ext_start + 5
    assert "stopped after 128 logical partitions" in table.problems
