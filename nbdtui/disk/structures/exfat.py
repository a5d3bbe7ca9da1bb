"""exFAT: the main boot region (boot sector, extended boot sectors, OEM parameters, boot
checksum sector), the backup boot region, and the label from the root directory.

A boot region is 12 sectors; sector 11 repeats the 32-bit boot checksum of sectors 0-10,
computed byte by byte (``rotate right by one, add the byte``) skipping
``VolumeFlags`` (bytes 106-107) and ``PercentInUse`` (byte 112), which change while the
volume is in use. The backup region (sectors 12-23) is the same bytes; those three may
differ by design. blkid names it ``exfat``, prints the serial as ``ABCD-1234`` and takes
the label from the root directory's volume label entry (type 0x83, UTF-16).
"""

from __future__ import annotations

import struct
from collections.abc import Generator

from nbdtui.disk.structures.field_specs import (
    Spec,
    compare,
    fetch,
    fields,
    first_sound_backup,
    hex32,
    hexnum,
    magic_check,
    quoted,
)
from nbdtui.disk.structures.model import Backup, Check, Patch, ProbePlan, Request, Structure

__all__ = ["TYPES", "boot_checksum", "checksum_plan", "probe", "restore_plan"]

TYPES = ("exfat",)
REGION_SECTORS = 12
MAX_ROOT_READ = 64 * 1024
_VARIABLE = (106, 107, 112)  # VolumeFlags, PercentInUse: outside the checksum


def _shift(value: object) -> str:
    assert isinstance(value, int)
    return f"{value} ({1 << value if value < 32 else '?'})"


SPECS = (
    Spec("JumpBoot", 0, "3s", "EB 76 90"),
    Spec("FileSystemName", 3, "8s", "'EXFAT   '", quoted),
    Spec("PartitionOffset", 64, "<Q", "sectors before the volume on the disk"),
    Spec("VolumeLength", 72, "<Q", "sectors in the volume"),
    Spec("FatOffset", 80, "<I", "sector of the first FAT", kind="sector"),
    Spec("FatLength", 84, "<I", "sectors per FAT"),
    Spec("ClusterHeapOffset", 88, "<I", "sector of the cluster heap", kind="sector"),
    Spec("ClusterCount", 92, "<I", "clusters in the heap"),
    Spec("FirstClusterOfRootDirectory", 96, "<I", "first cluster of the root directory"),
    Spec("VolumeSerialNumber", 100, "<I", "volume serial number", hex32),
    Spec("FileSystemRevision", 104, "<H", "revision (0x0100: 1.00)", hex32),
    Spec("VolumeFlags", 106, "<H", "bit 1 dirty, bit 2 media failure (not checksummed)"),
    Spec("BytesPerSectorShift", 108, "<B", "bytes per sector = 2^this", _shift),
    Spec("SectorsPerClusterShift", 109, "<B", "sectors per cluster = 2^this", _shift),
    Spec("NumberOfFats", 110, "<B", "1, or 2 for TexFAT"),
    Spec("DriveSelect", 111, "<B", "INT 13h drive number"),
    Spec("PercentInUse", 112, "<B", "percent of clusters used (not checksummed)"),
    Spec("BootSignature", 510, "<H", "0xAA55", hex32),
)
_COMPARED = tuple(s for s in SPECS if s.name not in ("VolumeFlags", "PercentInUse"))


def boot_checksum(region: bytes, sector_size: int) -> int:
    """The checksum of the first 11 sectors of a boot region."""
    checksum = 0
    for i, byte in enumerate(region[: 11 * sector_size]):
        if i in _VARIABLE:
            continue
        checksum = ((checksum >> 1) | ((checksum & 1) << 31)) + byte
        checksum &= 0xFFFFFFFF
    return checksum


def _sector_size(boot: bytes) -> int | None:
    if len(boot) < 512 or boot[3:11] != b"EXFAT   " or any(boot[11:64]):
        return None
    shift = boot[108]
    return 1 << shift if 9 <= shift <= 12 else None


def _region_checks(region: bytes, ss: int) -> list[Check]:
    boot = region[:512]
    checks = [
        magic_check("name", boot[3:11], b"EXFAT   ", "byte 3 of the boot sector"),
        magic_check("boot_signature", boot[510:512], b"\x55\xaa", "byte 510 of the boot sector"),
    ]
    if len(region) < REGION_SECTORS * ss:
        checks.append(Check("boot_checksum", False, detail="the boot region is cut short"))
        return checks
    computed = boot_checksum(region, ss)
    stored_sector = region[11 * ss : 12 * ss]
    stored = struct.unpack_from("<I", stored_sector)[0]
    ok = stored_sector == struct.pack("<I", computed) * (ss // 4)
    checks.append(
        Check(
            "boot_checksum",
            ok,
            hexnum(stored),
            hexnum(computed),
            "" if ok else "the boot checksum sector does not match sectors 0-10",
        )
    )
    return checks


def _label(root: bytes) -> str | None:
    for pos in range(0, len(root) - 31, 32):
        kind = root[pos]
        if kind == 0:
            break
        if kind == 0x83:
            count = min(root[pos + 1], 11)
            return root[pos + 2 : pos + 2 + 2 * count].decode("utf-16-le", errors="replace")
    return None


def probe(offset: int, size: int) -> ProbePlan:
    if size < 24 * 512:
        return None
    head = yield from fetch(offset, REGION_SECTORS * 512)
    ss = _sector_size(head)
    problems: list[str] = []
    reference = head
    if ss is None:
        found = yield from _find_backup(offset, size)
        if found is None:
            return None
        reference, ss = found
        problems.append("sector 0 holds no exFAT boot sector; found the backup boot region")
    if ss != 512 or len(head) < REGION_SECTORS * ss:
        head = yield from fetch(offset, REGION_SECTORS * ss)
    checks = _region_checks(head, ss)
    problems.extend(c.detail for c in checks if not c.ok)
    backup_at = offset + REGION_SECTORS * ss
    copy = yield from fetch(backup_at, REGION_SECTORS * ss)
    copy_checks = _region_checks(copy, ss)
    differences = compare(_COMPARED, head, copy)
    if _strip(head[: 11 * ss]) != _strip(copy[: 11 * ss]):
        differences += ("boot region bytes",) if not differences else ()
    backups = (
        Backup(
            backup_at,
            REGION_SECTORS * ss,
            matches=not differences,
            sound=all(c.ok for c in copy_checks),
            differences=differences,
            label="sectors 12-23",
        ),
    )
    volume_sectors, cluster_heap, root_cluster = (
        struct.unpack_from("<Q", reference, 72)[0],
        struct.unpack_from("<I", reference, 88)[0],
        struct.unpack_from("<I", reference, 96)[0],
    )
    cluster = ss << reference[109] if reference[109] < 25 else 0
    label = ""
    if cluster and root_cluster >= 2:
        root_at = offset + cluster_heap * ss + (root_cluster - 2) * cluster
        if root_at < offset + size:
            root = yield from fetch(root_at, min(cluster, MAX_ROOT_READ, offset + size - root_at))
            label = _label(root) or ""
    serial = struct.unpack_from("<I", reference, 100)[0]
    revision = struct.unpack_from("<H", reference, 104)[0]
    return Structure(
        type="exfat",
        offset=offset,
        at=offset,
        length=REGION_SECTORS * ss,
        size=volume_sectors * ss,
        label=label,
        uuid=f"{serial >> 16:04X}-{serial & 0xFFFF:04X}",
        version=f"{revision >> 8}.{revision & 0xFF}",
        name="exFAT boot region",
        fields=fields(SPECS, head[:512], offset, unit=ss, origin=offset),
        checks=tuple(checks),
        backups=backups,
        problems=tuple(problems),
    )


def _strip(region: bytes) -> bytes:
    out = bytearray(region)
    for i in _VARIABLE:
        if i < len(out):
            out[i] = 0
    return bytes(out)


def _find_backup(offset: int, size: int) -> Generator[Request, bytes, tuple[bytes, int] | None]:
    for ss in (512, 4096):
        if 2 * REGION_SECTORS * ss > size:
            continue
        copy = yield from fetch(offset + REGION_SECTORS * ss, REGION_SECTORS * ss)
        if _sector_size(copy) == ss and all(c.ok for c in _region_checks(copy, ss)):
            return copy, ss
    return None


def _sector(structure: Structure) -> int:
    return structure.length // REGION_SECTORS


def restore_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Copy the backup boot region (sectors 12-23) over the main one (sectors 0-11)."""
    backup = first_sound_backup(structure)
    primary = yield from fetch(structure.at, structure.length)
    copy = yield from fetch(backup.at, backup.length)
    return [Patch(structure.at, primary, copy)] if primary != copy else []


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Write the computed boot checksum into sector 11 of each region that needs it."""
    ss = _sector(structure)
    patches = []
    for at in (structure.at, structure.at + structure.length):
        region = yield from fetch(at, structure.length)
        if region[3:11] != b"EXFAT   ":
            continue
        new = struct.pack("<I", boot_checksum(region, ss)) * (ss // 4)
        old = region[11 * ss : 12 * ss]
        if new != old:
            patches.append(Patch(at + 11 * ss, old, new))
    return patches
