"""ext2/ext3/ext4: the superblock, its crc32c (metadata_csum), and its backup copies.

The primary superblock is the 1024 bytes at byte 1024 of the filesystem. Backups start
block group ``g`` (at block ``s_first_data_block + g * s_blocks_per_group``) for every
group with sparse_super (groups 0, 1 and the powers of 3, 5 and 7), for the two groups of
``s_backup_bgs`` with sparse_super2, and for every group otherwise. A backup differs from
the primary by design in ``s_block_group_nr`` (and so in ``s_checksum``) and in what the
kernel updates on the primary only (free counts, times, state, mount count…); only the
geometry and identity compare. When the primary has no magic, the group 1 backup is
looked for where mke2fs puts it for block sizes 1, 2 and 4 KiB (as ``e2fsck -b`` would).
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable, Generator

from nbdtui.disk.structures.crc32c import crc32c
from nbdtui.disk.structures.field_specs import (
    Spec,
    compare,
    decode,
    fetch,
    fields,
    first_sound_backup,
    hex32,
    hexnum,
    read_backup,
    show_uuid,
    shown_label,
    text,
    unreadable,
)
from nbdtui.disk.structures.model import Backup, Check, Patch, ProbePlan, Request, Structure

__all__ = ["TYPES", "fix_checksums", "probe", "restore_backup", "superblock_bytes"]

TYPES = ("ext2", "ext3", "ext4", "jbd")
SB_AT = 1024
SB_SIZE = 1024
MAGIC = b"\x53\xef"
MAX_BACKUPS = 64

_COMPAT_HAS_JOURNAL = 0x4
_COMPAT_SPARSE_SUPER2 = 0x200
_INCOMPAT_FILETYPE = 0x2
_INCOMPAT_RECOVER = 0x4
_INCOMPAT_JOURNAL_DEV = 0x8
_INCOMPAT_META_BG = 0x10
_INCOMPAT_64BIT = 0x80
_RO_SPARSE_SUPER = 0x1
_RO_LARGE_FILE = 0x2
_RO_BTREE_DIR = 0x4
_RO_METADATA_CSUM = 0x400

_COMPAT_NAMES = {
    0x1: "dir_prealloc", 0x2: "imagic_inodes", 0x4: "has_journal", 0x8: "ext_attr",
    0x10: "resize_inode", 0x20: "dir_index", 0x200: "sparse_super2", 0x400: "fast_commit",
    0x800: "stable_inodes", 0x1000: "orphan_file",
}  # fmt: skip
_INCOMPAT_NAMES = {
    0x1: "compression", 0x2: "filetype", 0x4: "needs_recovery", 0x8: "journal_dev",
    0x10: "meta_bg", 0x40: "extent", 0x80: "64bit", 0x100: "mmp", 0x200: "flex_bg",
    0x400: "ea_inode", 0x1000: "dirdata", 0x2000: "metadata_csum_seed", 0x4000: "large_dir",
    0x8000: "inline_data", 0x10000: "encrypt", 0x20000: "casefold",
}  # fmt: skip
_RO_NAMES = {
    0x1: "sparse_super", 0x2: "large_file", 0x4: "btree_dir", 0x8: "huge_file",
    0x10: "uninit_bg", 0x20: "dir_nlink", 0x40: "extra_isize", 0x100: "quota",
    0x200: "bigalloc", 0x400: "metadata_csum", 0x1000: "read-only", 0x2000: "project",
    0x8000: "verity", 0x10000: "orphan_present",
}  # fmt: skip


def _flags(names: dict[int, str]) -> Callable[[object], str]:
    def show(value: object) -> str:
        assert isinstance(value, int)
        words = [name for bit, name in names.items() if value & bit]
        rest = value & ~sum(names)
        if rest:
            words.append(hexnum(rest))
        return f"{hexnum(value)} " + (" ".join(words) if words else "(none)")

    return show


def _hex16(value: object) -> str:
    assert isinstance(value, int)
    return hexnum(value, 4)


def _time(value: object) -> str:
    assert isinstance(value, int)
    if value == 0:
        return "never"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _state(value: object) -> str:
    assert isinstance(value, int)
    words = ["clean" if value & 1 else "not clean"]
    if value & 2:
        words.append("with errors")
    if value & 4:
        words.append("orphans being recovered")
    return " ".join(words)


def _uuid(value: object) -> str:
    assert isinstance(value, bytes)
    return show_uuid(value)


def _block_size(value: object) -> str:
    assert isinstance(value, int)
    return f"{value} ({1024 << value if value < 16 else '?'} bytes)"


SPECS = (
    Spec("s_inodes_count", 0x00, "<I", "inodes in the filesystem"),
    Spec("s_blocks_count_lo", 0x04, "<I", "blocks in the filesystem (low 32 bits)"),
    Spec("s_r_blocks_count_lo", 0x08, "<I", "blocks reserved for the superuser"),
    Spec("s_free_blocks_count_lo", 0x0C, "<I", "free blocks (primary only)"),
    Spec("s_free_inodes_count", 0x10, "<I", "free inodes (primary only)"),
    Spec("s_first_data_block", 0x14, "<I", "block of the primary superblock", kind="block"),
    Spec("s_log_block_size", 0x18, "<I", "block size = 1024 << this", _block_size),
    Spec("s_log_cluster_size", 0x1C, "<I", "cluster size = 1024 << this (bigalloc)"),
    Spec("s_blocks_per_group", 0x20, "<I", "blocks in each block group"),
    Spec("s_clusters_per_group", 0x24, "<I", "clusters in each block group"),
    Spec("s_inodes_per_group", 0x28, "<I", "inodes in each block group"),
    Spec("s_mtime", 0x2C, "<I", "last mount time", _time),
    Spec("s_wtime", 0x30, "<I", "last write time", _time),
    Spec("s_mnt_count", 0x34, "<H", "mounts since the last check"),
    Spec("s_max_mnt_count", 0x36, "<h", "mounts allowed before a check"),
    Spec("s_magic", 0x38, "<H", "0xEF53", _hex16),
    Spec("s_state", 0x3A, "<H", "clean unmount, errors", _state),
    Spec("s_errors", 0x3C, "<H", "on errors: 1 continue, 2 remount ro, 3 panic"),
    Spec("s_minor_rev_level", 0x3E, "<H", "minor revision"),
    Spec("s_lastcheck", 0x40, "<I", "time of the last check", _time),
    Spec("s_checkinterval", 0x44, "<I", "seconds between checks"),
    Spec("s_creator_os", 0x48, "<I", "0 Linux, 3 FreeBSD…"),
    Spec("s_rev_level", 0x4C, "<I", "revision: 0 original, 1 dynamic"),
    Spec("s_def_resuid", 0x50, "<H", "uid allowed the reserved blocks"),
    Spec("s_def_resgid", 0x52, "<H", "gid allowed the reserved blocks"),
    Spec("s_first_ino", 0x54, "<I", "first non-reserved inode"),
    Spec("s_inode_size", 0x58, "<H", "bytes per inode"),
    Spec("s_block_group_nr", 0x5A, "<H", "block group holding this copy"),
    Spec("s_feature_compat", 0x5C, "<I", "compatible features", _flags(_COMPAT_NAMES)),
    Spec("s_feature_incompat", 0x60, "<I", "incompatible features", _flags(_INCOMPAT_NAMES)),
    Spec("s_feature_ro_compat", 0x64, "<I", "read-only compatible features", _flags(_RO_NAMES)),
    Spec("s_uuid", 0x68, "16s", "filesystem UUID", _uuid),
    Spec("s_volume_name", 0x78, "16s", "label", shown_label),
    Spec("s_last_mounted", 0x88, "64s", "directory where last mounted", shown_label),
    Spec("s_reserved_gdt_blocks", 0xCE, "<H", "blocks reserved to grow the group table"),
    Spec("s_journal_uuid", 0xD0, "16s", "UUID of an external journal", _uuid),
    Spec("s_journal_inum", 0xE0, "<I", "inode of the journal"),
    Spec("s_hash_seed", 0xEC, "16s", "directory hash seed", _uuid),
    Spec("s_desc_size", 0xFE, "<H", "bytes per group descriptor (64bit)"),
    Spec("s_mkfs_time", 0x108, "<I", "creation time", _time),
    Spec("s_blocks_count_hi", 0x150, "<I", "blocks in the filesystem (high 32 bits)"),
    Spec("s_r_blocks_count_hi", 0x154, "<I", "reserved blocks (high 32 bits)"),
    Spec("s_free_blocks_count_hi", 0x158, "<I", "free blocks (high 32 bits)"),
    Spec("s_checksum_type", 0x175, "<B", "1: crc32c"),
    Spec("s_kbytes_written", 0x178, "<Q", "KiB written over the filesystem's life"),
    Spec("s_backup_bgs", 0x24C, "8s", "the two backup groups (sparse_super2)"),
    Spec("s_checksum_seed", 0x270, "<I", "crc32c(uuid), with metadata_csum_seed"),
    Spec("s_checksum", 0x3FC, "<I", "crc32c of the superblock", hex32),
)

#: Fields a backup shares with the primary: the geometry and identity of the filesystem.
_SAME = (
    "s_inodes_count",
    "s_blocks_count_lo",
    "s_first_data_block",
    "s_log_block_size",
    "s_log_cluster_size",
    "s_blocks_per_group",
    "s_clusters_per_group",
    "s_inodes_per_group",
    "s_magic",
    "s_rev_level",
    "s_first_ino",
    "s_inode_size",
    "s_feature_compat",
    "s_feature_incompat",
    "s_feature_ro_compat",
    "s_uuid",
    "s_volume_name",
    "s_reserved_gdt_blocks",
    "s_desc_size",
    "s_blocks_count_hi",
    "s_checksum_type",
    "s_checksum_seed",
)
_COMPARED = tuple(s for s in SPECS if s.name in _SAME)


def _u32(sb: bytes, at: int) -> int:
    value: int = struct.unpack_from("<I", sb, at)[0]
    return value


def _u16(sb: bytes, at: int) -> int:
    value: int = struct.unpack_from("<H", sb, at)[0]
    return value


def type_name(sb: bytes) -> str:
    """blkid's name: jbd (an external journal), ext4, ext3 or ext2."""
    compat, incompat, ro = _u32(sb, 0x5C), _u32(sb, 0x60), _u32(sb, 0x64)
    ext3_incompat = _INCOMPAT_FILETYPE | _INCOMPAT_RECOVER | _INCOMPAT_META_BG
    ext2_incompat = _INCOMPAT_FILETYPE | _INCOMPAT_META_BG
    ro_known = _RO_SPARSE_SUPER | _RO_LARGE_FILE | _RO_BTREE_DIR
    if incompat & _INCOMPAT_JOURNAL_DEV:
        return "jbd"
    if compat & _COMPAT_HAS_JOURNAL:
        return "ext4" if incompat & ~ext3_incompat or ro & ~ro_known else "ext3"
    return "ext4" if incompat & ~ext2_incompat or ro & ~ro_known else "ext2"


def computed_checksum(sb: bytes) -> int:
    """What ext4 stores: Linux's crc32c(~0, bytes before s_checksum), which is the
    standard CRC-32C without its final inversion."""
    return crc32c(sb[:0x3FC]) ^ 0xFFFFFFFF


def _geometry(sb: bytes) -> tuple[int, int, int, int] | None:
    """(block size, blocks, first data block, blocks per group), or None if nonsense."""
    log = _u32(sb, 0x18)
    if log > 6:
        return None
    bs = 1024 << log
    blocks = _u32(sb, 0x04)
    if _u32(sb, 0x60) & _INCOMPAT_64BIT:
        blocks |= _u32(sb, 0x150) << 32
    bpg = _u32(sb, 0x20)
    if bpg == 0 or blocks == 0:
        return None
    return bs, blocks, _u32(sb, 0x14), bpg


def backup_groups(sb: bytes) -> list[int]:
    """The block groups after group 0 that hold a superblock backup, in order."""
    geometry = _geometry(sb)
    if geometry is None:
        return []
    _, blocks, first, bpg = geometry
    groups = (blocks - first + bpg - 1) // bpg
    if _u32(sb, 0x5C) & _COMPAT_SPARSE_SUPER2:
        pair = struct.unpack_from("<II", sb, 0x24C)
        return sorted({g for g in pair if 0 < g < groups})
    if not _u32(sb, 0x64) & _RO_SPARSE_SUPER:
        return list(range(1, min(groups, MAX_BACKUPS + 1)))
    out = {1} if groups > 1 else set()
    for base in (3, 5, 7):
        g = base
        while g < groups:
            out.add(g)
            g *= base
    return sorted(out)[:MAX_BACKUPS]


def group_superblock_at(sb: bytes, offset: int, group: int) -> int:
    """Absolute offset of the superblock copy of ``group`` (group 0: the primary)."""
    geometry = _geometry(sb)
    assert geometry is not None
    bs, _, first, bpg = geometry
    if group == 0:
        return offset + SB_AT
    return offset + (first + group * bpg) * bs


def _own_checks(sb: bytes, prefix: str = "") -> list[Check]:
    checks = [
        Check(
            "magic",
            sb[0x38:0x3A] == MAGIC,
            hexnum(_u16(sb, 0x38), 4),
            "0xef53",
            "" if sb[0x38:0x3A] == MAGIC else f"{prefix}no ext magic 0xEF53 at byte 0x38",
        )
    ]
    if sb[0x38:0x3A] != MAGIC:
        return checks
    geometry = _geometry(sb)
    checks.append(
        Check(
            "geometry",
            geometry is not None,
            detail="" if geometry else f"{prefix}block size or counts are impossible",
        )
    )
    if _u32(sb, 0x64) & _RO_METADATA_CSUM:
        stored, computed = _u32(sb, 0x3FC), computed_checksum(sb)
        checks.append(
            Check(
                "crc32c",
                stored == computed,
                hexnum(stored),
                hexnum(computed),
                "" if stored == computed else f"{prefix}superblock checksum mismatch",
            )
        )
    return checks


def _sound(sb: bytes) -> bool:
    return all(c.ok for c in _own_checks(sb))


def probe(offset: int, size: int) -> ProbePlan:
    """The ext filesystem that starts at ``offset``, or None.

    When the primary superblock has no magic, the group 1 backup where mke2fs puts it
    stands in. When the superblock 1 KiB into ``offset`` is itself a backup (its
    ``s_block_group_nr`` is not 0: a scan found it), the filesystem starts that many
    groups earlier: it is decoded from there, from this backup if the primary there is
    not sound (with the failed check ``primary``)."""
    if size < SB_AT + SB_SIZE:
        return None
    sb = yield from fetch(offset + SB_AT, SB_SIZE)
    if len(sb) < SB_SIZE:
        return None
    problems: list[str] = []
    reference = sb
    extra: list[Check] = []
    group = _u16(sb, 0x5A) if sb[0x38:0x3A] == MAGIC else 0
    geometry = _geometry(sb) if group else None
    if group and geometry is not None:  # a backup superblock: the filesystem starts earlier
        backup_bs, _, first, per_group = geometry
        start = offset + SB_AT - (first + group * per_group) * backup_bs
        if start < 0 or not _sound(sb):
            return None
        sb = yield from fetch(start + SB_AT, SB_SIZE)
        size += offset - start
        offset = start
        if len(sb) < SB_SIZE:
            return None
        if not _sound(sb):
            why = f"the primary superblock at {start + SB_AT} is missing or damaged"
            extra.append(Check("primary", False, detail=f"{why}: decoded from group {group}"))
            problems.append(extra[0].detail)
        else:
            reference = sb
    elif sb[0x38:0x3A] != MAGIC:
        found = yield from _find_backup(offset, size)
        if found is None:
            return None
        reference = found
        problems.append("the primary superblock has no ext magic; found a backup in group 1")
    geometry = _geometry(reference)
    if geometry is None:
        return None
    bs, blocks, _, _ = geometry
    checks = _own_checks(sb) + extra
    problems.extend(c.detail for c in checks if not c.ok and c.detail and c.name != "primary")
    backups = []
    for group in backup_groups(reference):
        at = group_superblock_at(reference, offset, group)
        if at + SB_SIZE > offset + size:
            break
        copy = yield from read_backup(at, SB_SIZE)
        if copy is None:  # the server could not read it (a damaged disk)
            backups.append(unreadable(at, SB_SIZE, f"group {group}"))
            continue
        differences = compare(_COMPARED, sb, copy)
        backups.append(
            Backup(
                at=at,
                length=SB_SIZE,
                matches=not differences,
                sound=_sound(copy) and _u16(copy, 0x5A) == group,
                differences=differences,
                label=f"group {group}",
            )
        )
    values = decode(SPECS, reference)
    raw_uuid = values["s_uuid"]
    raw_label = values["s_volume_name"]
    assert isinstance(raw_uuid, bytes) and isinstance(raw_label, bytes)
    return Structure(
        type=type_name(reference),
        offset=offset,
        at=offset + SB_AT,
        length=SB_SIZE,
        size=blocks * bs,
        label=text(raw_label),
        uuid=show_uuid(raw_uuid) if any(raw_uuid) else "",
        version=f"{_u32(reference, 0x4C)}.{_u16(reference, 0x3E)}",
        name=f"{type_name(reference)} superblock",
        fields=fields(SPECS, sb, offset + SB_AT, unit=bs, origin=offset),
        checks=tuple(checks),
        backups=tuple(backups),
        problems=tuple(problems),
    )


def _find_backup(offset: int, size: int) -> Generator[Request, bytes, bytes | None]:
    """The group 1 backup where mke2fs puts it (1, 2 or 4 KiB blocks), if sound."""
    for bs, first in ((1024, 1), (2048, 0), (4096, 0)):
        at = offset + (first + 8 * bs) * bs
        if at + SB_SIZE > offset + size:
            continue
        copy = yield from fetch(at, SB_SIZE)
        if len(copy) == SB_SIZE and _sound(copy) and 1024 << _u32(copy, 0x18) == bs:
            return copy
    return None


def superblock_bytes(structure: Structure) -> Generator[Request, bytes, bytes]:
    return (yield from fetch(structure.at, SB_SIZE))


def _with_checksum(sb: bytearray) -> bytes:
    if _u32(bytes(sb), 0x64) & _RO_METADATA_CSUM:
        struct.pack_into("<I", sb, 0x3FC, computed_checksum(bytes(sb)))
    return bytes(sb)


def restore_backup(primary: bytes, backup: bytes, at: int) -> list[Patch]:
    """The patch that puts ``backup`` (a sound copy from another group) in place of the
    primary at ``at``: ``s_block_group_nr`` set to 0 and the checksum computed again."""
    sb = bytearray(backup)
    struct.pack_into("<H", sb, 0x5A, 0)
    new = _with_checksum(sb)
    return [Patch(at, primary, new)] if new != primary else []


def fix_checksums(primary: bytes, at: int) -> list[Patch]:
    """The patch that stores the computed crc32c in the primary (metadata_csum only)."""
    if primary[0x38:0x3A] != MAGIC or not _u32(primary, 0x64) & _RO_METADATA_CSUM:
        return []
    new = _with_checksum(bytearray(primary))
    return [Patch(at, primary, new)] if new != primary else []


def restore_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Restore the primary superblock from the first sound backup."""
    backup = first_sound_backup(structure)
    primary = yield from fetch(structure.at, SB_SIZE)
    copy = yield from fetch(backup.at, SB_SIZE)
    return restore_backup(primary, copy, structure.at)


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Store the computed crc32c in the primary superblock."""
    primary = yield from fetch(structure.at, SB_SIZE)
    return fix_checksums(primary, structure.at)
