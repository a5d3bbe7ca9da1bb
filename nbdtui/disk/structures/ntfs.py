"""NTFS: the boot sector, the $MFT record 0 header (FILE magic, update sequence fixups),
the label from $Volume (MFT record 3), and the backup boot sector.

``TotalSectors`` counts one sector less than the partition: the backup boot sector lies
just past it, in the partition's last sector. When sector 0 holds no NTFS boot sector,
the backup is looked for in the last sector of the space probed. blkid names it ``ntfs``
and prints the serial as 16 upper-case hex digits.
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
    magic_check,
    quoted,
)
from nbdtui.disk.structures.model import Backup, Check, Patch, ProbePlan, Request, Structure

__all__ = ["TYPES", "checksum_plan", "probe", "restore_plan"]

TYPES = ("ntfs",)
MAX_RECORD = 4096


def _hex64(value: object) -> str:
    assert isinstance(value, int)
    return f"{value:016X}"


def _record_size(value: object) -> str:
    assert isinstance(value, int)
    signed = value - 256 if value > 127 else value
    return (
        f"{value} ({'2^' + str(-signed) + ' bytes' if signed < 0 else str(signed) + ' clusters'})"
    )


SPECS = (
    Spec("JumpBoot", 0x00, "3s", "jump to the boot code"),
    Spec("OEMID", 0x03, "8s", "'NTFS    '", quoted),
    Spec("BytesPerSector", 0x0B, "<H", "bytes per sector"),
    Spec("SectorsPerCluster", 0x0D, "<B", "sectors per cluster (above 0x80: 2^(256-n))"),
    Spec("MediaDescriptor", 0x15, "<B", "0xF8 fixed disk"),
    Spec("SectorsPerTrack", 0x18, "<H", "sectors per track (CHS)"),
    Spec("NumberOfHeads", 0x1A, "<H", "heads (CHS)"),
    Spec("HiddenSectors", 0x1C, "<I", "sectors before the volume on the disk"),
    Spec("TotalSectors", 0x28, "<Q", "sectors in the volume (the backup boot sector follows)"),
    Spec("MftLcn", 0x30, "<Q", "cluster of the $MFT", kind="block"),
    Spec("MftMirrLcn", 0x38, "<Q", "cluster of the $MFTMirr", kind="block"),
    Spec("ClustersPerMftRecord", 0x40, "<B", "MFT record size", _record_size),
    Spec("ClustersPerIndexRecord", 0x44, "<B", "index record size", _record_size),
    Spec("VolumeSerialNumber", 0x48, "<Q", "volume serial number", _hex64),
    Spec("Checksum", 0x50, "<I", "unused (0)", hex32),
    Spec("EndOfSectorMarker", 0x1FE, "<H", "0xAA55", hex32),
)
_RECORD = (
    Spec("Signature", 0x00, "4s", "'FILE'", quoted),
    Spec("UpdateSequenceOffset", 0x04, "<H", "offset of the update sequence array"),
    Spec("UpdateSequenceCount", 0x06, "<H", "1 + sectors in the record"),
    Spec("LogFileSequenceNumber", 0x08, "<Q", "$LogFile sequence number"),
    Spec("SequenceNumber", 0x10, "<H", "times this record was reused"),
    Spec("HardLinkCount", 0x12, "<H", "names of the file"),
    Spec("FirstAttributeOffset", 0x14, "<H", "offset of the first attribute"),
    Spec("Flags", 0x16, "<H", "1 in use, 2 directory"),
    Spec("BytesInUse", 0x18, "<I", "used bytes of the record"),
    Spec("BytesAllocated", 0x1C, "<I", "size of the record"),
)


class _Boot:
    def __init__(self, bs: bytes):
        self.valid = False
        if len(bs) < 512 or bs[3:11] != b"NTFS    ":
            return
        self.bps = struct.unpack_from("<H", bs, 0x0B)[0]
        spc = bs[0x0D]
        self.spc = 1 << (256 - spc) if spc > 0x80 else spc
        self.sectors, self.mft, self.mirr = struct.unpack_from("<QQQ", bs, 0x28)
        if self.bps not in (256, 512, 1024, 2048, 4096) or not self.spc or self.spc > 4096:
            return
        self.cluster = self.bps * self.spc
        self.record = self._size(bs[0x40])
        self.valid = 0 < self.record <= MAX_RECORD and self.sectors > 0

    def _size(self, raw: int) -> int:
        signed = raw - 256 if raw > 127 else raw
        if signed < 0:
            return 1 << -signed if -signed < 31 else 0
        return signed * self.cluster


def _boot_checks(bs: bytes) -> list[Check]:
    return [
        magic_check("oem_id", bs[3:11], b"NTFS    ", "byte 3 of the boot sector"),
        magic_check("boot_signature", bs[510:512], b"\x55\xaa", "byte 510 of the boot sector"),
    ]


def apply_fixups(record: bytes, sector: int = 512) -> tuple[bytes, bool]:
    """The record with each sector's last two bytes restored from the update sequence
    array, and whether every sector ended with the update sequence number."""
    usa, count = struct.unpack_from("<HH", record, 4)
    if count == 0 or usa + 2 * count > len(record) or (count - 1) * sector > len(record):
        return record, False
    out = bytearray(record)
    usn = record[usa : usa + 2]
    ok = True
    for i in range(1, count):
        end = i * sector
        if out[end - 2 : end] != usn:
            ok = False
        out[end - 2 : end] = record[usa + 2 * i : usa + 2 * i + 2]
    return bytes(out), ok


def _volume_name(record: bytes) -> str | None:
    """The $VOLUME_NAME (0x60) attribute of a fixed-up record, or None."""
    pos = struct.unpack_from("<H", record, 0x14)[0]
    while pos + 16 <= len(record):
        kind, length = struct.unpack_from("<II", record, pos)
        if kind == 0xFFFFFFFF or length < 16 or pos + length > len(record):
            return None
        if kind == 0x60 and record[pos + 8] == 0:  # resident
            size, start = struct.unpack_from("<IH", record, pos + 0x10)
            raw = record[pos + start : pos + start + size]
            return raw.decode("utf-16-le", errors="replace")
        pos += length
    return None


def _mft_record(offset: int, boot: _Boot) -> Generator[Request, bytes, Structure]:
    at = offset + boot.mft * boot.cluster
    raw = yield from fetch(at, boot.record)
    fixed, fixups_ok = apply_fixups(raw) if raw[:4] == b"FILE" else (raw, False)
    checks = [
        magic_check("file_magic", raw[:4], b"FILE", "the first bytes of MFT record 0"),
        Check(
            "fixups",
            fixups_ok,
            detail="" if fixups_ok else "the update sequence does not end each sector",
        ),
    ]
    return Structure(
        type="ntfs",
        offset=offset,
        at=at,
        length=boot.record,
        name="$MFT record 0",
        fields=fields(_RECORD, fixed, at),
        checks=tuple(checks),
        problems=tuple(f"$MFT record 0: {c.detail}" for c in checks if not c.ok),
    )


def _label(offset: int, boot: _Boot) -> Generator[Request, bytes, str]:
    at = offset + boot.mft * boot.cluster + 3 * boot.record
    raw = yield from fetch(at, boot.record)
    if raw[:4] != b"FILE":
        return ""
    fixed, ok = apply_fixups(raw)
    return (_volume_name(fixed) or "") if ok else ""


def probe(offset: int, size: int) -> ProbePlan:
    if size < 16 * 512:
        return None
    bs = yield from fetch(offset, 512)
    boot = _Boot(bs)
    problems: list[str] = []
    reference = bs
    last = offset + size - 512
    if not boot.valid:
        copy = yield from fetch(last, 512)
        boot = _Boot(copy)
        if not boot.valid or offset + (boot.sectors + 1) * boot.bps > offset + size:
            return None
        reference = copy
        problems.append("sector 0 holds no NTFS boot sector; found the backup in the last sector")
    checks = _boot_checks(bs)
    problems.extend(c.detail for c in checks if not c.ok)
    backups = []
    backup_at = offset + boot.sectors * boot.bps
    if backup_at + 512 <= offset + size:
        copy = yield from fetch(backup_at, 512)
        differences = compare(SPECS, bs, copy)
        if bs[0x54:0x1FE] != copy[0x54:0x1FE]:
            differences += ("boot code",)
        backups.append(
            Backup(
                backup_at,
                512,
                matches=not differences,
                sound=_Boot(copy).valid and all(c.ok for c in _boot_checks(copy)),
                differences=differences,
                label="last sector",
            )
        )
    else:
        problems.append("the backup boot sector lies past the end of the space probed")
    record = yield from _mft_record(offset, boot)
    problems.extend(record.problems)
    label = yield from _label(offset, boot)
    serial = struct.unpack_from("<Q", reference, 0x48)[0]
    return Structure(
        type="ntfs",
        offset=offset,
        at=offset,
        length=512,
        size=(boot.sectors + 1) * boot.bps,
        label=label,
        uuid=f"{serial:016X}",
        name="NTFS boot sector",
        fields=fields(SPECS, bs, offset, unit=boot.cluster, origin=offset),
        checks=tuple(checks),
        backups=tuple(backups),
        problems=tuple(problems),
        parts=(record,),
    )


def restore_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Copy the backup boot sector over sector 0."""
    backup = first_sound_backup(structure)
    primary = yield from fetch(structure.at, 512)
    copy = yield from fetch(backup.at, 512)
    return [Patch(structure.at, primary, copy)] if primary != copy else []


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """The NTFS boot sector has no checksum in use."""
    if False:  # a generator that reads nothing
        yield (0, 0)
    return []
