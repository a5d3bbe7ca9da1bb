"""The demo disk served by ``nbdtui demo`` and used by tests.

A GPT disk with 512-byte sectors (protective MBR, primary and backup GPT with correct
CRCs) and four partitions whose first sectors carry real filesystem signatures:

====  ======================  ===========================================
 #    type                    contents
====  ======================  ===========================================
 1    EFI System              FAT32 boot sector, FSInfo, FATs, a root
                              directory with a label and ``README.TXT``
 2    Linux filesystem        ext4 superblock, label ``nbdtui-demo``
 3    Microsoft basic data    NTFS boot sector, $MFT and $Volume records
 4    Linux swap              swap header, label ``nbdtui-swap``
====  ======================  ===========================================

plus a sector of friendly text at :data:`HELLO_OFFSET` for the hex editor. Everything
is deterministic (fixed GUIDs and timestamps). The image is sparse: ``pieces`` holds
a few dozen whole sectors; everything else reads as zeros.
"""

from __future__ import annotations

import bisect
import itertools
import os
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEMO_SIZE", "HELLO_OFFSET", "HELLO_TEXT", "DemoImage", "build_demo_image"]

SECTOR = 512
MIB = 1024 * 1024
DEMO_SIZE = 64 * MIB
HELLO_OFFSET = 0x8000  # LBA 64, in the gap before the first partition
HELLO_TEXT = b"Hello from nbdtui! Edit me. "
TIMESTAMP = 1704110400  # 2024-01-01T12:00:00Z

GPT_EFI = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_MSDATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
GPT_SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"


def _demo_uuid(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://nbdtui.invalid/demo/{name}")


DISK_GUID = str(_demo_uuid("disk")).upper()
EXT4_UUID = str(_demo_uuid("ext4"))
SWAP_UUID = str(_demo_uuid("swap"))
FAT_SERIAL = 0x4E42_5444
NTFS_SERIAL = 0x4E42_4454_5549_4430


@dataclass(frozen=True)
class DemoImage:
    size: int
    pieces: tuple[tuple[int, bytes], ...]  # sorted, non-overlapping; the rest is zeros
    landmarks: tuple[tuple[int, str], ...] = ()  # (offset, what is there), for "go to"

    def read(self, offset: int, length: int) -> bytes:
        """The bytes at ``offset``; raises ValueError outside the image."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"read of {length} bytes at {offset} is outside the image")
        out = bytearray(length)
        starts = [start for start, _ in self.pieces]
        i = max(bisect.bisect_right(starts, offset) - 1, 0)
        end = offset + length
        for start, data in self.pieces[i:]:
            if start >= end:
                break
            lo, hi = max(start, offset), min(start + len(data), end)
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - start : hi - start]
        return bytes(out)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the image as a sparse file."""
        with open(path, "wb") as f:
            f.truncate(self.size)
            for start, data in self.pieces:
                f.seek(start)
                f.write(data)


def _sector(*parts: tuple[int, bytes], size: int = SECTOR) -> bytes:
    buf = bytearray(size)
    for at, data in parts:
        buf[at : at + len(data)] = data
    return bytes(buf)


def _protective_mbr(total_lbas: int) -> bytes:
    entry = struct.pack(
        "<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, min(total_lbas - 1, 0xFFFFFFFF)
    )
    return _sector((0x1BE, entry), (0x1FE, b"\x55\xaa"))


def _gpt_entry(type_guid: str, unique: uuid.UUID, first: int, last: int, name: str) -> bytes:
    return struct.pack(
        "<16s16sQQQ72s",
        uuid.UUID(type_guid).bytes_le,
        unique.bytes_le,
        first,
        last,
        0,
        name.encode("utf-16-le"),
    )


def _gpt_header(
    my_lba: int,
    alt_lba: int,
    first_usable: int,
    last_usable: int,
    entries_lba: int,
    entries_crc: int,
) -> bytes:
    fields = [
        b"EFI PART",
        0x00010000,
        92,
        0,
        0,
        my_lba,
        alt_lba,
        first_usable,
        last_usable,
        uuid.UUID(DISK_GUID).bytes_le,
        entries_lba,
        128,
        128,
        entries_crc,
    ]
    layout = "<8sIIIIQQQQ16sQIII"
    crc = zlib.crc32(struct.pack(layout, *fields))
    fields[3] = crc
    return _sector((0, struct.pack(layout, *fields)))


def _fat32(first_lba: int, sectors: int) -> list[tuple[int, bytes]]:
    """Offsets relative to the partition start."""
    reserved, fats = 32, 2
    fat_len = 1
    for _ in range(8):
        clusters = sectors - reserved - fats * fat_len
        fat_len = -(-(clusters + 2) * 4 // SECTOR)
    data_start = reserved + fats * fat_len
    bpb = struct.pack(
        "<HBHBHHBHHHII IHHIHH12sBBBI11s8s",
        SECTOR,
        1,
        reserved,
        fats,
        0,
        0,
        0xF8,
        0,
        32,
        64,
        first_lba,
        sectors,
        fat_len,
        0,
        0,
        2,
        1,
        6,
        bytes(12),
        0x80,
        0,
        0x29,
        FAT_SERIAL,
        b"NBDTUI-EFI ",
        b"FAT32   ",
    )
    message = b"This is the nbdtui demo disk; it does not boot.\r\n"
    boot = _sector((0, b"\xeb\x58\x90NBDTUI  "), (0x0B, bpb), (0x5A, message), (0x1FE, b"\x55\xaa"))
    fsinfo = _sector(
        (0, b"RRaA"),
        (484, b"rrAa" + struct.pack("<II", clusters - 2, 4)),
        (508, b"\x00\x00\x55\xaa"),
    )
    fat = _sector((0, struct.pack("<IIII", 0x0FFFFFF8, 0x0FFFFFFF, 0x0FFFFFFF, 0x0FFFFFFF)))
    text = b"Hello from nbdtui!\r\n\r\nThis file lives on the EFI partition of the demo disk.\r\n"
    date = (2024 - 1980) << 9 | 1 << 5 | 1
    time = 12 << 11

    def dirent(name: bytes, attr: int, cluster: int, size: int) -> bytes:
        return struct.pack(
            "<11sBBBHHHHHHHI", name, attr, 0, 0, time, date, date, 0, time, date, cluster, size
        )

    root = _sector(
        (0, dirent(b"NBDTUI-EFI ", 0x08, 0, 0)), (32, dirent(b"README  TXT", 0x20, 3, len(text)))
    )
    return [
        (0, boot),
        (SECTOR, fsinfo),
        (6 * SECTOR, boot),
        (7 * SECTOR, fsinfo),
        (reserved * SECTOR, fat),
        ((reserved + fat_len) * SECTOR, fat),
        (data_start * SECTOR, root),
        ((data_start + 1) * SECTOR, _sector((0, text))),
    ]


def _ext4(sectors: int) -> list[tuple[int, bytes]]:
    blocks = sectors * SECTOR // 4096
    groups = -(-blocks // 32768)
    inodes_per_group = 2048
    sb = bytearray(1024)
    struct.pack_into(
        "<IIIIIIIIIIIIIHhHHHHIIIIHHIHH",
        sb,
        0,
        groups * inodes_per_group,  # s_inodes_count
        blocks,  # s_blocks_count_lo
        blocks // 20,  # s_r_blocks_count_lo
        blocks - 64 * groups,  # s_free_blocks_count_lo
        groups * inodes_per_group - 11,  # s_free_inodes_count
        0,  # s_first_data_block
        2,  # s_log_block_size: 4096
        2,  # s_log_cluster_size
        32768,  # s_blocks_per_group
        32768,  # s_clusters_per_group
        inodes_per_group,
        0,  # s_mtime
        TIMESTAMP,  # s_wtime
        0,  # s_mnt_count
        -1,  # s_max_mnt_count
        0xEF53,  # s_magic
        1,  # s_state: clean
        1,  # s_errors: continue
        0,  # s_minor_rev_level
        TIMESTAMP,  # s_lastcheck
        0,  # s_checkinterval
        0,  # s_creator_os: Linux
        1,  # s_rev_level: dynamic
        0,  # s_def_resuid
        0,  # s_def_resgid
        11,  # s_first_ino
        256,  # s_inode_size
        0,  # s_block_group_nr
    )
    # compat: has_journal, ext_attr, dir_index; incompat: filetype, extents, flex_bg;
    # ro_compat: sparse_super, large_file, huge_file, dir_nlink, extra_isize.
    struct.pack_into("<III", sb, 0x5C, 0x2C, 0x242, 0x6B)
    sb[0x68:0x78] = uuid.UUID(EXT4_UUID).bytes
    sb[0x78:0x88] = b"nbdtui-demo".ljust(16, b"\0")
    sb[0x88:0x89] = b"/"
    struct.pack_into("<I", sb, 0xE0, 8)  # s_journal_inum
    sb[0xEC:0xFC] = _demo_uuid("ext4-hash").bytes
    sb[0xFC] = 1  # s_def_hash_version: half_md4
    struct.pack_into("<I", sb, 0x108, TIMESTAMP)  # s_mkfs_time
    struct.pack_into("<HH", sb, 0x15C, 32, 32)  # s_min_extra_isize, s_want_extra_isize
    sb[0x174] = 4  # s_log_groups_per_flex
    return [(1024, bytes(sb))]


def _mft_record(number: int, attributes: bytes = b"") -> bytes:
    rec = bytearray(1024)
    attrs_at = 0x38
    body = attributes + b"\xff\xff\xff\xff\x00\x00\x00\x00"
    in_use = attrs_at + len(body)
    struct.pack_into(
        "<4sHHQHHHHIIQHHI",
        rec,
        0,
        b"FILE",
        0x30,
        3,
        0,
        1,
        1,
        attrs_at,
        1,
        in_use,
        1024,
        0,
        1,
        0,
        number,
    )
    rec[attrs_at : attrs_at + len(body)] = body
    usn = 1  # update sequence: the last two bytes of each sector move to the array
    struct.pack_into("<H", rec, 0x30, usn)
    for i, end in enumerate((510, 1022)):
        rec[0x32 + 2 * i : 0x34 + 2 * i] = rec[end : end + 2]
        struct.pack_into("<H", rec, end, usn)
    return bytes(rec)


def _ntfs(first_lba: int, sectors: int) -> list[tuple[int, bytes]]:
    cluster = 8 * SECTOR
    boot = bytearray(SECTOR)
    boot[0:11] = b"\xeb\x52\x90NTFS    "
    struct.pack_into(
        "<HBHBHHBHHHII", boot, 0x0B, SECTOR, 8, 0, 0, 0, 0, 0xF8, 0, 63, 255, first_lba, 0
    )
    struct.pack_into(
        "<IQQQbxxxbxxxQI", boot, 0x24, 0x00800080, sectors - 1, 4, 2, -10, 1, NTFS_SERIAL, 0
    )
    boot[0x54:0x7E] = b"This is the nbdtui demo disk; it does not boot."[:42].ljust(42, b"\0")
    boot[0x1FE:0x200] = b"\x55\xaa"
    label = "nbdtui-data".encode("utf-16-le")
    vol_name = struct.pack("<IIBBHHHIHBx", 0x60, 0, 0, 0, 0x18, 0, 1, len(label), 0x18, 0) + label
    vol_name += bytes(-len(vol_name) % 8)
    vol_name = vol_name[:4] + struct.pack("<I", len(vol_name)) + vol_name[8:]
    mft = 4 * cluster
    return [
        (0, bytes(boot)),
        (mft, _mft_record(0)),
        (mft + 3 * 1024, _mft_record(3, vol_name)),
        ((sectors - 1) * SECTOR, bytes(boot)),
    ]


def _swap(sectors: int) -> list[tuple[int, bytes]]:
    pages = sectors * SECTOR // 4096
    header = _sector(
        (0, struct.pack("<III", 1, pages - 1, 0)),
        (12, uuid.UUID(SWAP_UUID).bytes),
        (28, b"nbdtui-swap"),
    )
    return [(1024, header), (4096 - SECTOR, _sector((SECTOR - 10, b"SWAPSPACE2")))]


def _layout(size: int) -> list[tuple[str, str, uuid.UUID, int, int]]:
    """(type GUID, name, unique GUID, first LBA, last LBA) of the four partitions."""
    mib = size // MIB
    # 33 MiB of 512-byte clusters is the smallest real FAT32 (65525 clusters or more);
    # smaller demo disks get a FAT32 that tools warn about.
    efi = 33 if mib >= 64 else max(1, mib // 8)
    ntfs, swap = max(1, mib // 8), max(1, mib // 16)
    linux = mib - 2 - efi - ntfs - swap
    spans = []
    start = 1
    for type_guid, name, length in (
        (GPT_EFI, "EFI System Partition", efi),
        (GPT_LINUX, "nbdtui-root", linux),
        (GPT_MSDATA, "Windows data", ntfs),
        (GPT_SWAP, "swap", swap),
    ):
        first = start * MIB // SECTOR
        spans.append((type_guid, name, _demo_uuid(name), first, first + length * MIB // SECTOR - 1))
        start += length
    return spans


def build_demo_image(size: int = DEMO_SIZE) -> DemoImage:
    """Build the demo disk of ``size`` bytes (a multiple of 512, at least 8 MiB)."""
    if size % SECTOR or size < 8 * MIB:
        raise ValueError("the demo disk must be a multiple of 512 bytes and at least 8 MiB")
    total = size // SECTOR
    layout = _layout(size)
    entries = b"".join(_gpt_entry(t, u, first, last, n) for t, n, u, first, last in layout)
    entries_crc = zlib.crc32(entries.ljust(128 * 128, b"\0"))
    last_usable = total - 34
    pieces: list[tuple[int, bytes]] = [
        (0, _protective_mbr(total)),
        (SECTOR, _gpt_header(1, total - 1, 34, last_usable, 2, entries_crc)),
        (2 * SECTOR, entries),
        (HELLO_OFFSET, (HELLO_TEXT * (SECTOR // len(HELLO_TEXT) + 1))[: SECTOR - 1] + b"\n"),
        ((total - 33) * SECTOR, entries),
        ((total - 1) * SECTOR, _gpt_header(total - 1, 1, 34, last_usable, total - 33, entries_crc)),
    ]
    landmarks = [
        (0, "protective MBR"),
        (SECTOR, "primary GPT header"),
        (2 * SECTOR, "GPT partition entries"),
        (HELLO_OFFSET, "hello text"),
    ]
    builders: tuple[Callable[[int, int], list[tuple[int, bytes]]], ...] = (
        lambda first, n: _fat32(first, n),
        lambda first, n: _ext4(n),
        lambda first, n: _ntfs(first, n),
        lambda first, n: _swap(n),
    )
    for (_t, name, _u, first, last), build in zip(layout, builders, strict=True):
        landmarks.append((first * SECTOR, f"partition {name}"))
        for rel, data in build(first, last - first + 1):
            pieces.append((first * SECTOR + rel, data))
    landmarks += [
        ((total - 33) * SECTOR, "backup GPT entries"),
        ((total - 1) * SECTOR, "backup GPT header"),
    ]
    pieces.sort()
    for (a, da), (b, _db) in itertools.pairwise(pieces):
        if a + len(da) > b:
            raise AssertionError(f"demo pieces overlap at {b}")
    return DemoImage(size=size, pieces=tuple(pieces), landmarks=tuple(sorted(landmarks)))
