"""Linux MD RAID, metadata 1.x superblock (blkid: linux_raid_member).

Little-endian, magic 0xA92B4EFC. Version 1.1 puts it at the device's start, 1.2 at
4 KiB, 1.0 at the end (8 KiB from it, rounded down to 4 KiB); each records its own
sector in ``super_offset``, so a superblock found anywhere tells where its device
starts. ``sb_csum`` is the sum of the superblock's 32-bit little-endian words (256
bytes plus 2 per device role) with ``sb_csum`` taken as zero, folded to 32 bits.
"""

from __future__ import annotations

import struct
from collections.abc import Generator

from nbdtui.disk.structures.field_specs import decoded, no_repair, table, text, with_targets
from nbdtui.disk.structures.model import Check, Patch, ProbePlan, Request, Structure

TYPES = ("linux_raid_member",)
MAGIC = struct.pack("<I", 0xA92B4EFC)
SB_SIZE = 1024  # read; the superblock itself is 256 + 2 * max_dev bytes
MAX_DEV = 384  # what fits in 1 KiB
LEVELS = {
    -4: "multipath",
    -1: "linear",
    0: "raid0",
    1: "raid1",
    4: "raid4",
    5: "raid5",
    6: "raid6",
    10: "raid10",
}

ROWS = table(
    (
        ("magic", 0, "I", "magic 0xa92b4efc"),
        ("major_version", 4, "I", "major version (1)"),
        ("feature_map", 8, "I", "feature bits (bitmap, recovery, reshape…)"),
        ("set_uuid", 16, "16x", "array UUID"),
        ("set_name", 32, "32s", "array name (host:name)"),
        ("ctime", 64, "Q", "creation time (seconds, low 40 bits)"),
        ("level", 72, "i", "RAID level"),
        ("layout", 76, "I", "layout"),
        ("size", 80, "Q", "sectors used on each device"),
        ("chunksize", 88, "I", "chunk size in sectors"),
        ("raid_disks", 92, "I", "devices in the array"),
        ("data_offset", 128, "Q", "first sector of data"),
        ("data_size", 136, "Q", "sectors of data"),
        ("super_offset", 144, "Q", "this superblock's own sector"),
        ("dev_number", 160, "I", "this device's index in dev_roles"),
        ("device_uuid", 168, "16x", "this device's UUID (blkid UUID_SUB)"),
        ("utime", 192, "Q", "last update time"),
        ("events", 200, "Q", "event count"),
        ("resync_offset", 208, "Q", "resync checkpoint (sectors)"),
        ("sb_csum", 216, "I", "checksum of the superblock"),
        ("max_dev", 220, "I", "entries in dev_roles"),
    )
)


def sb_csum(sb: bytes) -> int:
    """The checksum ``sb_csum`` should hold for superblock bytes ``sb`` (as long as it
    is: 256 + 2 * max_dev)."""
    data = bytes(sb[:216]) + bytes(4) + bytes(sb[220:])
    n = len(data) // 4
    total = sum(struct.unpack_from(f"<{n}I", data))
    if len(data) % 4 >= 2:
        total += struct.unpack_from("<H", data, 4 * n)[0]
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def _uuid(raw: bytes) -> str:
    h = bytes(raw).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" if any(raw) else ""


def probe(offset: int, size: int) -> ProbePlan:
    """The MD member whose 1.1 or 1.2 superblock is at ``offset`` or 4 KiB into it; or
    the one whose superblock (any 1.x, a 1.0 at the end of its device included) is
    itself at ``offset``: its ``super_offset`` then says where the device starts (a
    scan looks at each superblock it finds this way)."""
    for rel in (0, 4096):
        if rel + SB_SIZE > size:
            return None
        sb = yield (offset + rel, SB_SIZE)
        if sb[:4] != MAGIC:
            continue
        own = struct.unpack_from("<Q", sb, 144)[0] * 512
        if own == rel:
            return decode(offset, offset + rel, sb)
        if rel == 0 and 0 < own <= offset:
            return decode(offset - own, offset, sb)
    return None


def decode(offset: int, at: int, sb: bytes) -> Structure:
    """The superblock ``sb`` found at ``at``, of the device that starts at ``offset``."""
    fields, v = decoded(ROWS, sb, at)
    max_dev = int(v["max_dev"])
    length = 256 + 2 * min(max_dev, MAX_DEV)
    stored, computed = int(v["sb_csum"]), sb_csum(sb[:length])
    checks = (
        Check("magic", sb[:4] == MAGIC, sb[:4].hex(), MAGIC.hex()),
        Check("major_version", v["major_version"] == 1, str(v["major_version"]), "1"),
        Check(
            "max_dev",
            max_dev <= MAX_DEV,
            str(max_dev),
            f"<= {MAX_DEV}",
            "more device roles than a superblock holds",
        ),
        Check(
            "sb_csum",
            stored == computed,
            f"{stored:08x}",
            f"{computed:08x}",
            "the superblock's checksum does not match its bytes",
        ),
    )
    super_offset = int(v["super_offset"])
    version = {0: "1.1", 8: "1.2"}.get(super_offset, "1.0")
    level = int(v["level"])
    targets = {
        "data_offset": ("sector", offset + int(v["data_offset"]) * 512),
        "super_offset": ("sector", at),
    }
    fields = tuple(
        f
        if f.name != "level"
        else type(f)(f.name, f.at, f.size, LEVELS.get(level, str(level)), f.meaning)
        for f in with_targets(fields, targets)
    )
    size = max(int(v["data_offset"]) + int(v["data_size"]), super_offset + 8) * 512
    return Structure(
        type="linux_raid_member",
        offset=offset,
        at=at,
        length=length,
        size=size,
        label=text(sb[32:64]),
        uuid=_uuid(sb[16:32]),
        version=version,
        name=f"MD RAID {version} superblock ({LEVELS.get(level, level)})",
        fields=fields,
        checks=checks,
        problems=tuple(c.detail or c.name for c in checks if not c.ok),
    )


# ---- repairs (no backup copy: restore_plan refuses) ---------------------------------

restore_plan = no_repair


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Store the computed ``sb_csum``."""
    sb = bytes((yield (structure.at, structure.length)))
    if sb[:4] != MAGIC or len(sb) != structure.length:
        return []
    new = bytearray(sb)
    struct.pack_into("<I", new, 216, sb_csum(sb))
    return [Patch(structure.at, sb, bytes(new))] if bytes(new) != sb else []
