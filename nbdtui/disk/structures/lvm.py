"""LVM2 physical volume label (blkid: LVM2_member).

Little-endian. The label header (``LABELONE``) lies in one of the first four 512-byte
sectors and records that sector's number; ``crc_xl`` covers the rest of the sector
from ``offset_xl`` on (LVM's CRC-32: reflected polynomial 0xEDB88320, initial value
0xF597A6CF, no final XOR). The PV header follows at ``offset_xl``: the PV UUID (32
characters, which blkid prints 6-4-4-4-4-4-6 with dashes), the device size, then the
data areas and the metadata areas, each list ended by an all-zero entry.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Generator

from nbdtui.disk.structures.field_specs import decoded, no_repair, table
from nbdtui.disk.structures.model import Check, Field, Patch, ProbePlan, Request, Structure

TYPES = ("LVM2_member",)
MAGIC = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
SECTOR = 512
INITIAL_CRC = 0xF597A6CF
MAX_AREAS = 8  # of each kind listed

ROWS = table(
    (
        ("id", 0, "8s", "magic 'LABELONE'"),
        ("sector_xl", 8, "Q", "this label's sector"),
        ("crc_xl", 16, "I", "CRC of the sector from offset_xl on"),
        ("offset_xl", 20, "I", "offset of the PV header in the sector"),
        ("type", 24, "8s", "label type 'LVM2 001'"),
    )
)


def lvm_crc(data: bytes, crc: int = INITIAL_CRC) -> int:
    """LVM's CRC-32 of ``data`` (zlib's CRC without its pre- and post-inversion)."""
    return zlib.crc32(data, crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def pv_uuid_text(raw: bytes) -> str:
    """The 32-character PV UUID with dashes, as blkid and pvs print it."""
    s = bytes(raw).decode("ascii", errors="replace")
    cuts = (0, 6, 10, 14, 18, 22, 26, 32)
    return "-".join(s[a:b] for a, b in itertools.pairwise(cuts))


def probe(offset: int, size: int) -> ProbePlan:
    """The LVM2 PV label of the device that starts at ``offset``, or None."""
    if size < 4 * SECTOR:
        return None
    head = yield (offset, 4 * SECTOR)
    for n in range(4):
        sector = bytes(head[n * SECTOR : (n + 1) * SECTOR])
        if sector[:8] == MAGIC and sector[24:32] == LABEL_TYPE:
            return _decode(offset, size, n, sector)
    return None


def _areas(sector: bytes, rel: int, label_at: int, base: int, kind: str) -> tuple[list[Field], int]:
    """The (offset, size) list at ``rel`` in the label's sector (which lies at
    ``label_at``; the device at ``base``), as fields, and where the list ends."""
    fields = []
    for i in range(MAX_AREAS + 1):
        if rel + 16 > SECTOR:
            break
        off, n = struct.unpack_from("<QQ", sector, rel)
        at, rel = label_at + rel, rel + 16
        if off == 0 and n == 0:
            break
        start, what = f"{kind}[{i}].offset", f"{kind} area"
        fields.append(Field(start, at, 8, str(off), f"{what} start", "offset", base + off))
        fields.append(
            Field(f"{kind}[{i}].size", at + 8, 8, str(n), f"{what} bytes (0: to the end)")
        )
    return fields, rel


def _decode(offset: int, size: int, n: int, sector: bytes) -> Structure:
    at = offset + n * SECTOR
    fields, v = decoded(ROWS, sector, at)
    pv = int(v["offset_xl"])
    stored = int(v["crc_xl"])
    computed = lvm_crc(sector[20:])
    checks = [
        Check(
            "sector_xl",
            v["sector_xl"] == n,
            str(v["sector_xl"]),
            str(n),
            "the label does not record the sector it is in",
        ),
        Check(
            "crc",
            stored == computed,
            f"{stored:08x}",
            f"{computed:08x}",
            "the label's CRC does not match its bytes",
        ),
        Check(
            "offset_xl",
            32 <= pv <= SECTOR - 40,
            str(pv),
            "32",
            "the PV header would lie outside the label's sector",
        ),
    ]
    uuid, device_size = "", 0
    extra: list[Field] = []
    if checks[2].ok:
        uuid = pv_uuid_text(sector[pv : pv + 32])
        device_size = struct.unpack_from("<Q", sector, pv + 32)[0]
        extra = [
            Field("pv_uuid", at + pv, 32, uuid, "PV UUID"),
            Field("device_size_xl", at + pv + 32, 8, str(device_size), "device size in bytes"),
        ]
        data_areas, end = _areas(sector, pv + 40, at, offset, "data")
        meta_areas, _ = _areas(sector, end, at, offset, "metadata")
        extra += data_areas + meta_areas
    return Structure(
        type="LVM2_member",
        offset=offset,
        at=at,
        length=SECTOR,
        size=device_size or None,
        uuid=uuid,
        version="LVM2 001",
        name="LVM2 PV label",
        fields=fields + tuple(extra),
        checks=tuple(checks),
        problems=tuple(c.detail for c in checks if not c.ok),
    )


# ---- repairs (no backup copy: restore_plan refuses) ---------------------------------

restore_plan = no_repair


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Store the computed CRC of the label's sector (``crc_xl``)."""
    sector = bytes((yield (structure.at, SECTOR)))
    if sector[:8] != MAGIC or len(sector) != SECTOR:
        return []
    new = bytearray(sector)
    struct.pack_into("<I", new, 16, lvm_crc(sector[20:]))
    return [Patch(structure.at, sector, bytes(new))] if bytes(new) != sector else []
