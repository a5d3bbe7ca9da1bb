"""The partition table as a structure: MBR (``dos``) and GPT (``gpt``) facts in the shared
model, with the GPT backup header and entries compared with the primary.

:func:`probe` decodes the table at offset 0 of the export; :func:`absence` says why
there is none ("no 55 AA boot signature at byte 510", …). The GPT backup differs from the
primary by design in ``MyLBA``, ``AlternateLBA``, ``PartitionEntryLBA`` and so in the
header CRC; every other field and the entries must be equal. The partitions themselves
come from :mod:`nbdtui.disk.partitions`.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Generator

from nbdtui.disk.partition_types import gpt_type_name, mbr_type_name
from nbdtui.disk.partitions import MAX_GPT_ENTRIES_BYTES
from nbdtui.disk.structures.field_specs import (
    Spec,
    compare,
    fetch,
    fields,
    hex32,
    magic_check,
    quoted,
)
from nbdtui.disk.structures.model import Backup, Check, Field, Patch, Request, Structure
from nbdtui.errors import RepairError

__all__ = ["TYPES", "absence", "checksum_plan", "probe", "restore_plan"]

TYPES = ("dos", "gpt")
SECTOR_SIZES = (512, 4096)


def _guid(value: object) -> str:
    assert isinstance(value, bytes)
    return str(uuid.UUID(bytes_le=value)).upper()


HEADER = (
    Spec("Signature", 0x00, "8s", "'EFI PART'", quoted),
    Spec("Revision", 0x08, "<I", "1.0 = 0x00010000", hex32),
    Spec("HeaderSize", 0x0C, "<I", "bytes covered by the header CRC"),
    Spec("HeaderCRC32", 0x10, "<I", "CRC32 of the header with this field zero", hex32),
    Spec("MyLBA", 0x18, "<Q", "LBA of this header", kind="lba"),
    Spec("AlternateLBA", 0x20, "<Q", "LBA of the other header", kind="lba"),
    Spec("FirstUsableLBA", 0x28, "<Q", "first LBA a partition may use", kind="lba"),
    Spec("LastUsableLBA", 0x30, "<Q", "last LBA a partition may use", kind="lba"),
    Spec("DiskGUID", 0x38, "16s", "disk GUID", _guid),
    Spec("PartitionEntryLBA", 0x48, "<Q", "LBA of the partition entries", kind="lba"),
    Spec("NumberOfPartitionEntries", 0x50, "<I", "entries in the array"),
    Spec("SizeOfPartitionEntry", 0x54, "<I", "bytes per entry"),
    Spec("PartitionEntryArrayCRC32", 0x58, "<I", "CRC32 of the entries", hex32),
)
_BOOT_FLAGS = {0x80: "bootable (active)", 0x00: "not bootable"}
_EMPTY = "no GPT header and every MBR entry is empty"
_NOT_MBR = ("boot flags", "sector 0 is")
_BY_DESIGN = ("HeaderCRC32", "MyLBA", "AlternateLBA", "PartitionEntryLBA")


def absence(sector0: bytes) -> str:
    """Why sector 0 holds no partition table, in a few words."""
    if len(sector0) < 512:
        return "the export is smaller than one sector"
    if sector0[510:512] != b"\x55\xaa":
        return f"no 55 AA boot signature at byte 510 (found {sector0[510:512].hex(' ')})"
    flags = [sector0[0x1BE + 16 * i] for i in range(4)]
    bad = [f"{f:#04x}" for f in flags if f not in (0, 0x80)]
    if bad:
        return f"boot flags {' '.join(bad)} are not 0x00 or 0x80: a boot sector, not an MBR"
    if sector0[3:11] in (b"NTFS    ", b"EXFAT   ") or b"FAT" in sector0[0x36:0x57]:
        return "sector 0 is a filesystem's boot sector (an unpartitioned filesystem)"
    return _EMPTY


def _mbr_fields(sector0: bytes) -> list[Field]:
    signature = struct.unpack_from("<I", sector0, 0x1B8)[0]
    out = [
        Field(
            "disk_signature",
            0x1B8,
            4,
            f"0x{signature:08x}",
            "disk identifier (sfdisk's Disk identifier)",
        )
    ]
    for slot in range(4):
        at = 0x1BE + 16 * slot
        boot, ptype = sector0[at], sector0[at + 4]
        start, count = struct.unpack_from("<II", sector0, at + 8)
        n = slot + 1
        out += [
            Field(
                f"entry{n}.boot_flag",
                at,
                1,
                f"0x{boot:02x}",
                _BOOT_FLAGS.get(boot, "invalid: neither 0x00 nor 0x80"),
            ),
            Field(
                f"entry{n}.type",
                at + 4,
                1,
                f"0x{ptype:02x}",
                mbr_type_name(ptype) if ptype else "unused",
            ),
            Field(
                f"entry{n}.first_lba",
                at + 8,
                4,
                str(start),
                "first sector",
                "lba",
                start * 512,
            ),
            Field(f"entry{n}.sectors", at + 12, 4, str(count), "sectors in the partition"),
        ]
    out.append(Field("boot_signature", 510, 2, sector0[510:512].hex(" "), "55 AA"))
    return out


def _header_checks(raw: bytes, entries: bytes, label: str) -> list[Check]:
    checks = [magic_check(f"{label}_signature", raw[:8], b"EFI PART", f"the {label} header")]
    if raw[:8] != b"EFI PART":
        return checks
    size, stored = struct.unpack_from("<II", raw, 0x0C)
    computed = _header_crc(raw) if 92 <= size <= len(raw) else None
    ok = computed == stored
    checks.append(
        Check(
            f"{label}_header_crc32",
            ok,
            hex32(stored),
            hex32(computed or 0),
            "" if ok else f"{label} GPT header CRC mismatch",
        )
    )
    stored_entries = struct.unpack_from("<I", raw, 0x58)[0]
    computed_entries = zlib.crc32(entries)
    ok = stored_entries == computed_entries
    checks.append(
        Check(
            f"{label}_entries_crc32",
            ok,
            hex32(stored_entries),
            hex32(computed_entries),
            "" if ok else f"{label} GPT entries CRC mismatch",
        )
    )
    return checks


def _header_crc(raw: bytes) -> int:
    size = struct.unpack_from("<I", raw, 0x0C)[0]
    head = bytearray(raw[:size])
    head[16:20] = bytes(4)
    return zlib.crc32(head)


def _entries(raw: bytes, ss: int, disk: int) -> Generator[Request, bytes, bytes]:
    if raw[:8] != b"EFI PART":
        return b""
    lba, count, size = struct.unpack_from("<QII", raw, 0x48)
    length = count * size
    if not 0 < length <= MAX_GPT_ENTRIES_BYTES or lba * ss + length > disk:
        return b""
    return (yield from fetch(lba * ss, length))


def _entry_fields(entries: bytes, raw: bytes, ss: int) -> list[Field]:
    lba, count, size = struct.unpack_from("<QII", raw, 0x48)
    out = []
    for i in range(min(count, len(entries) // max(size, 1))):
        entry = entries[i * size : i * size + 128]
        if entry[:16] == bytes(16):
            continue
        at = lba * ss + i * size
        type_guid = _guid(entry[:16])
        first, last, attrs = struct.unpack_from("<QQQ", entry, 32)
        out += [
            Field(f"entry{i + 1}.type_guid", at, 16, type_guid, gpt_type_name(type_guid)),
            Field(
                f"entry{i + 1}.first_lba", at + 32, 8, str(first), "first LBA", "lba", first * ss
            ),
            Field(f"entry{i + 1}.last_lba", at + 40, 8, str(last), "last LBA (inclusive)"),
            Field(
                f"entry{i + 1}.attributes",
                at + 48,
                8,
                f"0x{attrs:016x}",
                "bit 2: legacy BIOS bootable" if attrs & 4 else "attribute bits",
            ),
        ]
    return out


def probe(offset: int, size: int) -> Generator[Request, bytes, Structure | None]:
    """The partition table at ``offset`` (0) of a disk of ``size`` bytes, or None."""
    if offset != 0 or size < 512:
        return None
    sector0 = yield from fetch(0, 512)
    for ss in SECTOR_SIZES:
        found = yield from _gpt(sector0, ss, size)
        if found is not None:
            return found
    if sector0[510:512] != b"\x55\xaa" or absence(sector0).startswith(_NOT_MBR):
        return None
    if not any(sector0[0x1BE + 16 * i + 4] for i in range(4)):
        return None
    checks = (magic_check("boot_signature", sector0[510:512], b"\x55\xaa", "byte 510"),)
    return Structure(
        type="dos",
        offset=0,
        at=0,
        length=512,
        size=size,
        uuid=f"{struct.unpack_from('<I', sector0, 0x1B8)[0]:08x}",
        name="MBR",
        fields=tuple(_mbr_fields(sector0)),
        checks=checks,
    )


def _gpt(sector0: bytes, ss: int, disk: int) -> Generator[Request, bytes, Structure | None]:
    lbas = disk // ss
    if lbas < 3:
        return None
    primary = yield from fetch(ss, ss)
    backup_lba = lbas - 1
    if primary[:8] == b"EFI PART":
        alternate = struct.unpack_from("<Q", primary, 0x20)[0]
        if 1 < alternate < lbas:
            backup_lba = alternate
    backup = yield from fetch(backup_lba * ss, ss)
    if primary[:8] != b"EFI PART" and backup[:8] != b"EFI PART":
        return None
    primary_entries = yield from _entries(primary, ss, disk)
    backup_entries = yield from _entries(backup, ss, disk)
    checks = _header_checks(primary, primary_entries, "primary")
    backup_checks = _header_checks(backup, backup_entries, "backup")
    problems = [c.detail for c in checks if not c.ok]
    has_protective = sector0[510:512] == b"\x55\xaa" and any(
        sector0[0x1BE + 16 * i + 4] == 0xEE for i in range(4)
    )
    checks.append(
        Check(
            "protective_mbr",
            has_protective,
            detail="" if has_protective else "no protective MBR (type 0xEE) in front of the GPT",
        )
    )
    if not has_protective:
        problems.append(checks[-1].detail)
    reference = primary if primary[:8] == b"EFI PART" else backup
    if reference is backup:
        problems.insert(0, "the primary GPT header is missing; the backup is used")
    differences: tuple[str, ...] = ()
    if backup[:8] == b"EFI PART":
        differences = compare(HEADER, primary, backup, _BY_DESIGN)
        if primary_entries != backup_entries:
            differences += ("partition entries",)
    backups: tuple[Backup, ...] = ()
    if backup[:8] == b"EFI PART" or primary[:8] == b"EFI PART":
        backups = (
            Backup(
                backup_lba * ss,
                ss,
                matches=not differences and backup[:8] == b"EFI PART",
                sound=all(c.ok for c in backup_checks) and len(backup_checks) == 3,
                differences=differences,
                label=f"LBA {backup_lba}",
            ),
        )
    guid = _guid(reference[0x38:0x48])
    return Structure(
        type="gpt",
        offset=0,
        at=ss,
        length=ss,
        size=disk,
        uuid=guid.lower(),
        name="GPT header",
        version="{}.{}".format(*divmod(struct.unpack_from("<I", reference, 8)[0], 1 << 16)),
        fields=fields(HEADER, primary, ss, unit=ss)
        + tuple(_entry_fields(primary_entries or backup_entries, reference, ss)),
        checks=tuple(checks),
        backups=backups,
        problems=tuple(problems),
        parts=(
            Structure(
                type="gpt",
                offset=0,
                at=0,
                length=512,
                name="protective MBR",
                fields=tuple(_mbr_fields(sector0)),
            ),
        ),
    )


def restore_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Rebuild the primary GPT header (LBA 1) and entries (LBA 2…) from the backup."""
    if structure.type != "gpt" or not structure.backups:
        raise RepairError("only a GPT has a backup to restore the partition table from")
    backup = structure.backups[0]
    if not backup.sound:
        raise RepairError(
            f"the {backup.label} fails its own checks (signature or CRCs): nothing was written"
        )
    ss = structure.length
    raw = yield from fetch(backup.at, ss)
    entries = yield from _entries(raw, ss, structure.size or 0)
    header = bytearray(raw)
    my_lba = struct.unpack_from("<Q", raw, 0x18)[0]
    count, size = struct.unpack_from("<II", raw, 0x50)
    first_usable = struct.unpack_from("<Q", raw, 0x28)[0]
    if 2 + (count * size + ss - 1) // ss > first_usable:
        raise RepairError("the backup's entries would not fit before its first usable LBA")
    struct.pack_into("<QQ", header, 0x18, 1, my_lba)
    struct.pack_into("<Q", header, 0x48, 2)
    struct.pack_into("<I", header, 0x10, _header_crc(bytes(header)))
    old_header = yield from fetch(ss, ss)
    old_entries = yield from fetch(2 * ss, len(entries))
    patches = []
    if bytes(header) != old_header:
        patches.append(Patch(ss, old_header, bytes(header)))
    if entries != old_entries:
        patches.append(Patch(2 * ss, old_entries, entries))
    return patches


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Recompute the entries CRC and then the header CRC of both GPT headers."""
    if structure.type != "gpt":
        raise RepairError("an MBR has no checksum to recompute")
    ss = structure.length
    patches = []
    places = [ss] + [b.at for b in structure.backups]
    for at in places:
        raw = yield from fetch(at, ss)
        if raw[:8] != b"EFI PART":
            continue
        entries = yield from _entries(raw, ss, structure.size or 0)
        header = bytearray(raw)
        struct.pack_into("<I", header, 0x58, zlib.crc32(entries))
        struct.pack_into("<I", header, 0x10, _header_crc(bytes(header)))
        if bytes(header) != raw:
            patches.append(Patch(at, raw, bytes(header)))
    return patches
