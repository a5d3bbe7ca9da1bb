"""btrfs: the superblock at 64 KiB, its checksum, and its mirrors at 64 MiB and
256 GiB (where the device is large enough to hold them).

Little-endian, 4096 bytes. The checksum (``csum_type``: 0 CRC-32C, 1 XXH64, 2 SHA-256,
3 BLAKE2b-256) covers bytes 0x20 to the end; a mirror
differs from the primary by design in ``bytenr`` (its own offset) and ``csum``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Generator

from nbdtui.disk.structures.crc32c import crc32c
from nbdtui.disk.structures.field_specs import (
    Values,
    decoded,
    differences,
    read_backup,
    restore_source,
    table,
    unreadable,
)
from nbdtui.disk.structures.model import Backup, Check, Patch, ProbePlan, Request, Structure
from nbdtui.disk.structures.xxhash64 import xxh64
from nbdtui.errors import RepairError

TYPES = ("btrfs",)
MAGIC = b"_BHRfS_M"
MAGIC_AT = 0x40
SUPER_AT = 0x10000
SUPER_SIZE = 0x1000
MIRRORS = (0x4000000, 0x4000000000)  # 64 MiB, 256 GiB
CSUM_NAMES = {0: "crc32c", 1: "xxhash64", 2: "sha256", 3: "blake2b"}

ROWS = table(
    (
        ("csum", 0x00, "32x", "checksum of bytes 0x20 to the end"),
        ("fsid", 0x20, "uuid", "filesystem UUID"),
        ("bytenr", 0x30, "Q", "this copy's own offset"),
        ("flags", 0x38, "Q", "flags"),
        ("magic", 0x40, "8s", "magic '_BHRfS_M'"),
        ("generation", 0x48, "Q", "transaction generation"),
        ("root", 0x50, "Q", "logical address of the root tree"),
        ("chunk_root", 0x58, "Q", "logical address of the chunk tree"),
        ("log_root", 0x60, "Q", "logical address of the log tree"),
        ("total_bytes", 0x70, "Q", "filesystem size in bytes"),
        ("bytes_used", 0x78, "Q", "bytes used"),
        ("root_dir_objectid", 0x80, "Q", "root directory object id (6)"),
        ("num_devices", 0x88, "Q", "devices in the filesystem"),
        ("sectorsize", 0x90, "I", "sector size in bytes"),
        ("nodesize", 0x94, "I", "tree node size in bytes"),
        ("stripesize", 0x9C, "I", "stripe size"),
        ("sys_chunk_array_size", 0xA0, "I", "bytes of the system chunk array"),
        ("chunk_root_generation", 0xA4, "Q", "chunk tree generation"),
        ("compat_flags", 0xAC, "Q", "compatible features"),
        ("compat_ro_flags", 0xB4, "Q", "read-only compatible features"),
        ("incompat_flags", 0xBC, "Q", "incompatible features"),
        ("csum_type", 0xC4, "H", "checksum algorithm (0 crc32c, 1 xxhash64, 2 sha256, 3 blake2b)"),
        ("root_level", 0xC6, "B", "root tree level"),
        ("dev_item.devid", 0xC9, "Q", "this device's id"),
        ("dev_item.total_bytes", 0xD1, "Q", "this device's size in bytes"),
        ("dev_item.bytes_used", 0xD9, "Q", "bytes used on this device"),
        ("dev_item.uuid", 0x10B, "uuid", "this device's UUID (blkid UUID_SUB)"),
        ("dev_item.fsid", 0x11B, "uuid", "filesystem UUID the device belongs to"),
        ("label", 0x12B, "256s", "label"),
        ("cache_generation", 0x22B, "Q", "free space cache generation"),
    )
)
#: Fields that differ by design between the primary and a mirror.
OWN = ("csum", "bytenr")
COMPARED = tuple(s.name for s in ROWS if s.name not in OWN)


def checksum(block: bytes, csum_type: int) -> bytes | None:
    """The checksum a superblock of ``csum_type`` should store (32 bytes), or None
    for a type not computed here."""
    body = bytes(block[0x20:SUPER_SIZE])
    if csum_type == 0:
        return struct.pack("<I", crc32c(body)) + bytes(28)
    if csum_type == 1:
        return struct.pack("<Q", xxh64(body)) + bytes(24)
    if csum_type == 2:
        return hashlib.sha256(body).digest()
    if csum_type == 3:
        return hashlib.blake2b(body, digest_size=32).digest()
    return None


def _checks(block: bytes, v: Values, at: int) -> list[Check]:
    csum_type = int(v.get("csum_type", -1))
    checks = [
        Check("magic", block[MAGIC_AT : MAGIC_AT + 8] == MAGIC, str(v.get("magic")), "_BHRfS_M"),
        Check(
            "bytenr",
            v.get("bytenr") == at,
            str(v.get("bytenr")),
            str(at),
            "the copy does not record its own offset",
        ),
    ]
    want = checksum(block, csum_type)
    name = CSUM_NAMES.get(csum_type, f"csum type {csum_type}")
    if want is not None:
        got = bytes(block[: len(want)])
        width = {0: 4, 1: 8}.get(csum_type, 32)
        checks.append(
            Check(
                name,
                got == want,
                got[:width].hex(),
                want[:width].hex(),
                f"the superblock's {name} does not match its bytes",
            )
        )
    return checks


def probe(offset: int, size: int) -> ProbePlan:
    """The btrfs filesystem (this device of it) that starts at ``offset``, or None.

    When the superblock at ``offset`` + 64 KiB is a mirror (its ``bytenr`` is 64 MiB
    or 256 GiB), the device starts that much earlier: it is decoded from there if its
    primary superblock is sound, and from this mirror, with the failed check
    ``primary``, if not (so a scan finds a filesystem whose primary was wiped)."""
    return (yield from _probe(offset, size, follow=True))


def _probe(offset: int, size: int, *, follow: bool) -> ProbePlan:
    if size < SUPER_AT + SUPER_SIZE:
        return None
    block = yield (offset + SUPER_AT, SUPER_SIZE)
    if block[MAGIC_AT : MAGIC_AT + 8] != MAGIC:
        return None
    at = offset + SUPER_AT
    fields, v = decoded(ROWS, block, at)
    own = int(v["bytenr"])
    start = offset
    if own in MIRRORS and own - SUPER_AT <= offset:
        start = at - own
        checks = _checks(block, v, own)
        primary = yield (start + SUPER_AT, SUPER_SIZE)
        _, pv = decoded(ROWS, primary, start + SUPER_AT)
        if follow and all(c.ok for c in _checks(primary, pv, SUPER_AT)):
            return (yield from _probe(start, offset + size - start, follow=False))
        why = f"the primary superblock at {start + SUPER_AT} is missing or damaged"
        checks.append(Check("primary", False, detail=f"{why}: decoded from the mirror at {at}"))
    else:
        checks = _checks(block, v, SUPER_AT)
    available = offset + size - start
    backups = []
    for mirror in MIRRORS:
        if mirror + SUPER_SIZE > available:
            break
        if start + mirror == at:
            continue  # the copy decoded
        label = (
            f"mirror at {mirror >> 20} MiB" if mirror < 1 << 30 else f"mirror at {mirror >> 30} GiB"
        )
        copy = yield from read_backup(start + mirror, SUPER_SIZE)
        if copy is None:
            backups.append(unreadable(start + mirror, SUPER_SIZE, label))
            continue
        _, cv = decoded(ROWS, copy, start + mirror)
        sound = all(c.ok for c in _checks(copy, cv, mirror))
        diff = differences(v, cv, COMPARED)
        backups.append(Backup(start + mirror, SUPER_SIZE, not diff, sound, diff, label))
    csum_type = int(v["csum_type"])
    return Structure(
        type="btrfs",
        offset=start,
        at=at,
        length=SUPER_SIZE,
        size=int(v["dev_item.total_bytes"]) or None,
        label=str(v["label"]),
        uuid=str(v["fsid"]),
        version=CSUM_NAMES.get(csum_type, str(csum_type)),
        name="btrfs superblock" if start == offset else "btrfs superblock (mirror)",
        fields=fields,
        checks=tuple(checks),
        backups=tuple(backups),
        problems=tuple(c.detail or c.name for c in checks if not c.ok),
    )


# ---- repairs ---------------------------------------------------------------------


def _with_csum(block: bytearray) -> bytes:
    want = checksum(bytes(block), struct.unpack_from("<H", block, 0xC4)[0])
    if want is not None:
        block[: len(want)] = want
    return bytes(block)


def restore_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Put a sound mirror over the primary superblock, with ``bytenr`` set to the
    primary's own offset and the checksum computed again."""
    primary_at = structure.offset + SUPER_AT
    source = restore_source(structure, primary_at)
    primary = bytes((yield (primary_at, SUPER_SIZE)))
    block = bytearray((yield (source.at, SUPER_SIZE)))
    if struct.unpack_from("<H", block, 0xC4)[0] not in CSUM_NAMES:
        raise RepairError(f"the copy at {source.at} has an unknown checksum type")
    struct.pack_into("<Q", block, 0x30, SUPER_AT)
    new = _with_csum(block)
    return [Patch(primary_at, primary, new)] if new != primary else []


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Store the computed checksum in the superblock decoded (crc32c, xxhash64, sha256
    or blake2b, as its ``csum_type`` says)."""
    block = bytes((yield (structure.at, SUPER_SIZE)))
    if block[MAGIC_AT : MAGIC_AT + 8] != MAGIC:
        return []
    new = _with_csum(bytearray(block))
    return [Patch(structure.at, block, new)] if new != block else []
