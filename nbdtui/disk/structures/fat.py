"""FAT12, FAT16 and FAT32: the boot sector (BPB), FSInfo, label, serial, and the FAT32
backup boot sector.

The FAT type follows from the count of clusters, as Microsoft's specification says
(below 4085 FAT12, below 65525 FAT16, else FAT32), never from ``BS_FilSysType``. blkid
calls them all ``vfat`` (VERSION FAT12/FAT16/FAT32), takes the label from the root
directory's volume label entry before the boot sector's (``NO NAME`` is none), and
prints the serial as ``ABCD-1234``. A FAT32 boot sector is copied at ``BPB_BkBootSec``
(sector 6), its FSInfo at the sector after; when sector 0 holds no BPB, that backup is
looked for at sector 6 (512- or 4096-byte sectors).
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

__all__ = ["TYPES", "checksum_plan", "probe", "restore_plan"]

TYPES = ("vfat",)
MAX_ROOT_READ = 64 * 1024


_COMMON = (
    Spec("BS_jmpBoot", 0x00, "3s", "jump to the boot code"),
    Spec("BS_OEMName", 0x03, "8s", "formatting system", quoted),
    Spec("BPB_BytsPerSec", 0x0B, "<H", "bytes per sector"),
    Spec("BPB_SecPerClus", 0x0D, "<B", "sectors per cluster"),
    Spec("BPB_RsvdSecCnt", 0x0E, "<H", "reserved sectors before the first FAT", kind="sector"),
    Spec("BPB_NumFATs", 0x10, "<B", "copies of the FAT"),
    Spec("BPB_RootEntCnt", 0x11, "<H", "root directory entries (FAT12/16)"),
    Spec("BPB_TotSec16", 0x13, "<H", "sectors in the volume (16-bit, or 0)"),
    Spec("BPB_Media", 0x15, "<B", "media descriptor (0xF8 fixed disk)"),
    Spec("BPB_FATSz16", 0x16, "<H", "sectors per FAT (FAT12/16)"),
    Spec("BPB_SecPerTrk", 0x18, "<H", "sectors per track (CHS)"),
    Spec("BPB_NumHeads", 0x1A, "<H", "heads (CHS)"),
    Spec("BPB_HiddSec", 0x1C, "<I", "sectors before the volume on the disk"),
    Spec("BPB_TotSec32", 0x20, "<I", "sectors in the volume (32-bit)"),
)
_FAT16 = (
    Spec("BS_DrvNum", 0x24, "<B", "BIOS drive number"),
    Spec("BS_BootSig", 0x26, "<B", "0x29: the next three fields are present"),
    Spec("BS_VolID", 0x27, "<I", "volume serial number", hex32),
    Spec("BS_VolLab", 0x2B, "11s", "volume label (boot sector copy)", quoted),
    Spec("BS_FilSysType", 0x36, "8s", "informative type string", quoted),
)
_FAT32 = (
    Spec("BPB_FATSz32", 0x24, "<I", "sectors per FAT"),
    Spec("BPB_ExtFlags", 0x28, "<H", "FAT mirroring flags"),
    Spec("BPB_FSVer", 0x2A, "<H", "version (0.0)"),
    Spec("BPB_RootClus", 0x2C, "<I", "first cluster of the root directory"),
    Spec("BPB_FSInfo", 0x30, "<H", "sector of the FSInfo structure", kind="sector"),
    Spec("BPB_BkBootSec", 0x32, "<H", "sector of the backup boot sector", kind="sector"),
    Spec("BS_DrvNum", 0x40, "<B", "BIOS drive number"),
    Spec("BS_BootSig", 0x42, "<B", "0x29: the next three fields are present"),
    Spec("BS_VolID", 0x43, "<I", "volume serial number", hex32),
    Spec("BS_VolLab", 0x47, "11s", "volume label (boot sector copy)", quoted),
    Spec("BS_FilSysType", 0x52, "8s", "informative type string", quoted),
)
_SIGNATURE = (Spec("Signature_word", 0x1FE, "<H", "0xAA55", hex32),)
_FSINFO = (
    Spec("FSI_LeadSig", 0, "<I", "0x41615252", hex32),
    Spec("FSI_StrucSig", 484, "<I", "0x61417272", hex32),
    Spec("FSI_Free_Count", 488, "<I", "free clusters, 0xFFFFFFFF unknown"),
    Spec("FSI_Nxt_Free", 492, "<I", "where to look for a free cluster"),
    Spec("FSI_TrailSig", 508, "<I", "0xAA550000", hex32),
)


class _Bpb:
    """The geometry of a FAT boot sector, or ``valid`` False."""

    def __init__(self, bs: bytes):
        self.valid = False
        if len(bs) < 512:
            return
        (bps, spc, rsvd, nfats, root_ents, tot16, media, fatsz16) = struct.unpack_from(
            "<HBHBHHBH", bs, 0x0B
        )
        tot32, fatsz32 = struct.unpack_from("<II", bs, 0x20)
        self.bps, self.spc, self.reserved, self.fats = bps, spc, rsvd, nfats
        self.root_entries = root_ents
        self.fat_size = fatsz16 or fatsz32
        self.sectors = tot16 or tot32
        if bs[3:11] in (b"NTFS    ", b"EXFAT   ") or bps not in (512, 1024, 2048, 4096):
            return
        if spc == 0 or spc & (spc - 1) or rsvd == 0 or nfats == 0 or self.fat_size == 0:
            return
        if not (media == 0xF0 or media >= 0xF8):
            return
        self.root_sectors = (root_ents * 32 + bps - 1) // bps
        self.data_start = rsvd + nfats * self.fat_size + self.root_sectors
        if self.sectors <= self.data_start:
            return
        self.clusters = (self.sectors - self.data_start) // spc
        if self.clusters < 4085:
            self.kind = "FAT12"
        elif self.clusters < 65525:
            self.kind = "FAT16"
        else:
            self.kind = "FAT32"
        if (self.kind == "FAT32") != (fatsz16 == 0):
            return  # a FAT32 has no 16-bit FAT size, the others have one
        self.valid = True

    @property
    def fat32(self) -> bool:
        return self.kind == "FAT32"


def _specs(bpb: _Bpb) -> tuple[Spec, ...]:
    return _COMMON + (_FAT32 if bpb.fat32 else _FAT16) + _SIGNATURE


def _own_checks(bs: bytes, bpb: _Bpb) -> list[Check]:
    checks = [
        magic_check("boot_signature", bs[510:512], b"\x55\xaa", "byte 510 of the boot sector")
    ]
    checks.append(
        Check(
            "bpb",
            bpb.valid,
            detail="" if bpb.valid else "the BIOS parameter block is not a FAT volume's",
        )
    )
    return checks


def _volume_label(root: bytes) -> str | None:
    for pos in range(0, len(root) - 31, 32):
        entry = root[pos : pos + 32]
        if entry[0] == 0:
            break
        attr = entry[11]
        if entry[0] == 0xE5 or attr & 0x3F == 0x0F:
            continue
        if attr & 0x08 and not attr & 0x10:
            return entry[:11].decode("latin-1").rstrip(" ")
    return None


def _root_directory(offset: int, bs: bytes, bpb: _Bpb) -> Generator[Request, bytes, bytes]:
    if bpb.fat32:
        root_cluster = struct.unpack_from("<I", bs, 0x2C)[0]
        if not 2 <= root_cluster < bpb.clusters + 2:
            return b""
        sector = bpb.data_start + (root_cluster - 2) * bpb.spc
        length = bpb.spc * bpb.bps
    else:
        sector = bpb.reserved + bpb.fats * bpb.fat_size
        length = bpb.root_sectors * bpb.bps
    return (yield from fetch(offset + sector * bpb.bps, min(length, MAX_ROOT_READ)))


def _find_backup(offset: int, size: int) -> Generator[Request, bytes, tuple[bytes, int] | None]:
    for bps in (512, 4096):
        if (6 + 1) * bps > size:
            continue
        copy = yield from fetch(offset + 6 * bps, 512)
        bpb = _Bpb(copy)
        backup_sector = struct.unpack_from("<H", copy, 0x32)[0]
        signed = copy[510:512] == b"\x55\xaa"
        if bpb.valid and bpb.fat32 and bpb.bps == bps and backup_sector == 6 and signed:
            # The first FAT must follow the reserved sectors, else this "backup" is
            # another volume's primary 6 sectors further on (as a scan may ask).
            fat = yield from fetch(offset + bpb.reserved * bps, 4)
            if fat[:3] == bytes((copy[0x15], 0xFF, 0xFF)):
                return copy, bps
    return None


def _fsinfo(offset: int, bs: bytes, bpb: _Bpb) -> Generator[Request, bytes, Structure | None]:
    sector = struct.unpack_from("<H", bs, 0x30)[0]
    if sector in (0, 0xFFFF) or sector >= bpb.reserved:
        return None
    at = offset + sector * bpb.bps
    raw = yield from fetch(at, 512)
    checks = _fsinfo_checks(raw, bpb)
    return Structure(
        type="vfat",
        offset=offset,
        at=at,
        length=512,
        name="FAT32 FSInfo",
        fields=fields(_FSINFO, raw, at),
        checks=tuple(checks),
        problems=tuple(c.detail for c in checks if not c.ok),
    )


def _fsinfo_checks(raw: bytes, bpb: _Bpb) -> list[Check]:
    lead, struc, free, _next, trail = (
        struct.unpack_from("<I", raw, s.rel)[0] if len(raw) >= 512 else 0 for s in _FSINFO
    )
    sigs_ok = (lead, struc, trail) == (0x41615252, 0x61417272, 0xAA550000)
    free_ok = free == 0xFFFFFFFF or free <= bpb.clusters
    return [
        Check(
            "fsinfo_signatures",
            sigs_ok,
            f"{hexnum(lead)} {hexnum(struc)} {hexnum(trail)}",
            "0x41615252 0x61417272 0xaa550000",
            "" if sigs_ok else "the FSInfo sector's signatures are wrong",
        ),
        Check(
            "fsinfo_free_count",
            free_ok,
            str(free),
            f"<= {bpb.clusters}",
            "" if free_ok else "FSInfo counts more free clusters than the volume has",
        ),
    ]


def probe(offset: int, size: int) -> ProbePlan:
    if size < 512 * 8:
        return None
    bs = yield from fetch(offset, 512)
    bpb = _Bpb(bs)
    problems: list[str] = []
    reference, ref_bpb = bs, bpb
    if not (bpb.valid and bs[510:512] == b"\x55\xaa"):
        found = yield from _find_backup(offset, size)
        if found is None:
            return None
        reference, _ = found
        ref_bpb = _Bpb(reference)
        problems.append("sector 0 holds no FAT boot sector; found the FAT32 backup at sector 6")
    checks = _own_checks(bs, bpb)
    problems.extend(c.detail for c in checks if not c.ok)
    specs = _specs(ref_bpb)
    backups: list[Backup] = []
    parts: list[Structure] = []
    if ref_bpb.fat32:
        backup_sector = struct.unpack_from("<H", reference, 0x32)[0]
        if 0 < backup_sector < ref_bpb.reserved:
            at = offset + backup_sector * ref_bpb.bps
            copy = yield from fetch(at, 512)
            copy_bpb = _Bpb(copy)
            sound = copy_bpb.valid and copy[510:512] == b"\x55\xaa"
            differences = compare(specs, bs, copy)
            if bs[0x5A:510] != copy[0x5A:510]:
                differences += ("boot code",)
            backups.append(
                Backup(at, 512, not differences, sound, differences, f"sector {backup_sector}")
            )
        info = yield from _fsinfo(offset, reference, ref_bpb)
        if info is not None:
            parts.append(info)
            problems.extend(info.problems)
    root = yield from _root_directory(offset, reference, ref_bpb)
    label = _volume_label(root)
    if label is None:
        at = 0x47 if ref_bpb.fat32 else 0x2B
        label = reference[at : at + 11].decode("latin-1").rstrip(" ")
        if label == "NO NAME":
            label = ""
    serial = struct.unpack_from("<I", reference, 0x43 if ref_bpb.fat32 else 0x27)[0]
    return Structure(
        type="vfat",
        offset=offset,
        at=offset,
        length=512,
        size=ref_bpb.sectors * ref_bpb.bps,
        label=label,
        uuid=f"{serial >> 16:04X}-{serial & 0xFFFF:04X}",
        version=ref_bpb.kind,
        name=f"{ref_bpb.kind} boot sector",
        fields=fields(specs, bs, offset, unit=ref_bpb.bps, origin=offset),
        checks=tuple(checks),
        backups=tuple(backups),
        problems=tuple(problems),
        parts=tuple(parts),
    )


def restore_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Copy the FAT32 backup boot sector over sector 0, and the backup FSInfo over the
    FSInfo when the primary's signatures are wrong."""
    backup = first_sound_backup(structure)
    primary = yield from fetch(structure.at, 512)
    copy = yield from fetch(backup.at, 512)
    patches = [Patch(structure.at, primary, copy)] if primary != copy else []
    for info in structure.parts:
        if info.name == "FAT32 FSInfo" and not all(c.ok for c in info.checks):
            info_copy = yield from fetch(backup.at + (info.at - structure.at), 512)
            if _fsinfo_checks(info_copy, _Bpb(copy))[0].ok:
                old = yield from fetch(info.at, 512)
                patches.append(Patch(info.at, old, info_copy))
    return patches


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """FAT has no checksum to recompute."""
    if False:  # a generator that reads nothing
        yield (0, 0)
    return []
