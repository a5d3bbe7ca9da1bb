"""MBR and GPT partition table decoders.

Pure functions over bytes. Reading is abstracted so that a caller can fetch sectors
over the network: the decoder is a *plan*, a generator that yields ``(offset,
length)`` requests and receives the bytes with ``gen.send(data)``; its return value
is the result. :func:`read_partition_table` drives it with a synchronous
``read(offset, length)`` and :func:`read_partition_table_async` with an awaitable one.

The decoders never raise on garbage and never loop forever: a table they cannot make
sense of is ``None`` or comes back with ``problems`` (one line each, for a person).
Every request lies inside the disk and the total read is bounded (a few MiB at most).

GUIDs are upper-case strings, as sfdisk and gdisk print them. LBAs are inclusive.
I/O errors raised by the ``read`` callable propagate unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import NotRequired, TypedDict, TypeGuard, TypeVar

from nbdtui.disk.partition_types import (
    EXTENDED_TYPES,
    GPT_TYPES,
    MBR_TYPES,
    gpt_type_name,
    mbr_type_name,
)

__all__ = [
    "GPT_TYPES",
    "MBR_TYPES",
    "Partition",
    "PartitionTable",
    "decode_gpt_entry",
    "decode_gpt_header",
    "decode_mbr",
    "gpt_type_name",
    "mbr_type_name",
    "partition_table_plan",
    "read_partition_table",
    "read_partition_table_async",
    "run_plan",
    "run_plan_async",
]

#: Upper bounds that keep a decoder's reads small on a hostile disk.
MAX_GPT_ENTRIES_BYTES = 1024 * 1024
MAX_GPT_ENTRY_SIZE = 4096
MAX_LOGICAL_PARTITIONS = 128

_MBR_ENTRY = struct.Struct("<B3sB3sII")
_GPT_HEADER = struct.Struct("<8sIIII QQQQ 16s QIII")
_GPT_ENTRY = struct.Struct("<16s16sQQQ72s")


@dataclass(frozen=True)
class Partition:
    index: int  # 1-based; MBR logical partitions are numbered from 5 as Linux does
    scheme: str  # "mbr" | "gpt"
    first_lba: int
    last_lba: int  # inclusive
    sector_size: int
    type_id: str  # "0x83" for MBR, a GUID string for GPT
    type_name: str
    name: str = ""
    bootable: bool = False  # MBR boot flag 0x80; GPT attribute bit 2 (legacy BIOS bootable)
    logical: bool = False
    guid: str | None = None
    attributes: int = 0

    @property
    def start(self) -> int:
        """Byte offset of the first byte."""
        return self.first_lba * self.sector_size

    @property
    def size(self) -> int:
        """Size in bytes."""
        return (self.last_lba - self.first_lba + 1) * self.sector_size

    @property
    def sectors(self) -> int:
        return self.last_lba - self.first_lba + 1

    @property
    def is_extended(self) -> bool:
        return self.scheme == "mbr" and int(self.type_id, 16) in EXTENDED_TYPES


class GptHeader(TypedDict):
    """The fields of a GPT header as :func:`decode_gpt_header` returns them."""

    signature: str
    revision: str
    header_size: int
    header_crc32: int
    computed_crc32: int | None
    crc_ok: bool
    my_lba: int
    alternate_lba: int
    first_usable_lba: int
    last_usable_lba: int
    disk_guid: str
    entries_lba: int
    entry_count: int
    entry_size: int
    entries_crc32: int
    # In decode_gpt_header's result; PartitionTable.header leaves it out (the table's
    # problems say it all).
    problems: NotRequired[list[str]]


@dataclass(frozen=True)
class PartitionTable:
    scheme: str  # "mbr" | "gpt"
    sector_size: int
    partitions: tuple[Partition, ...]
    disk_guid: str | None = None  # GPT disk GUID
    problems: tuple[str, ...] = ()
    header: GptHeader | None = None  # decoded GPT header fields, for display
    disk_signature: int | None = None  # MBR disk identifier at 0x1B8

    @property
    def disk_id(self) -> str | None:
        """The identifier sfdisk prints: the GPT disk GUID or ``0x%08x`` for MBR."""
        if self.disk_guid is not None:
            return self.disk_guid
        if self.disk_signature is not None:
            return f"0x{self.disk_signature:08x}"
        return None


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=bytes(raw))).upper()


def _utf16_name(raw: bytes) -> str:
    for i in range(0, len(raw) - 1, 2):
        if raw[i] == 0 and raw[i + 1] == 0:
            raw = raw[:i]
            break
    return raw.decode("utf-16-le", errors="replace")


# ---------------------------------------------------------------- MBR


def _mbr_entries(sector0: bytes) -> list[tuple[int, int, int, int, int]] | None:
    """(slot, boot flag, type, start LBA, count) of the four slots, or None if not an MBR."""
    if len(sector0) < 512 or sector0[510:512] != b"\x55\xaa":
        return None
    out = []
    for slot in range(4):
        boot, _, ptype, _, start, count = _MBR_ENTRY.unpack_from(sector0, 0x1BE + 16 * slot)
        if boot not in (0x00, 0x80):
            return None
        out.append((slot + 1, boot, ptype, start, count))
    return out


def _mbr_partition(
    index: int,
    boot: int,
    ptype: int,
    first: int,
    count: int,
    sector_size: int,
    logical: bool = False,
) -> Partition:
    return Partition(
        index=index,
        scheme="mbr",
        first_lba=first,
        last_lba=first + count - 1,
        sector_size=sector_size,
        type_id=f"0x{ptype:02x}",
        type_name=mbr_type_name(ptype),
        bootable=boot == 0x80,
        logical=logical,
    )


def decode_mbr(sector0: bytes, sector_size: int = 512) -> list[Partition]:
    """The used primary entries of an MBR (empty list if there is no valid MBR).

    An entry is used when its type is not 0 and its sector count is not 0. A boot flag
    other than 0x00/0x80 or a missing ``55 AA`` means "not an MBR".
    """
    entries = _mbr_entries(sector0)
    if entries is None:
        return []
    return [
        _mbr_partition(slot, boot, ptype, start, count, sector_size)
        for slot, boot, ptype, start, count in entries
        if ptype != 0 and count != 0
    ]


def _looks_like_boot_sector(sector0: bytes) -> bool:
    """A filesystem boot sector (FAT/NTFS/exFAT) rather than a partitioned disk."""
    return (
        sector0[3:11] in (b"NTFS    ", b"EXFAT   ")
        or sector0[0x36:0x39] == b"FAT"
        or sector0[0x52:0x57] == b"FAT32"
    )


# ---------------------------------------------------------------- GPT


def decode_gpt_header(sector: bytes, *, expected_lba: int | None = None) -> GptHeader | None:
    """Decode a GPT header; None when the "EFI PART" signature is absent.

    The result has every field plus ``crc_ok`` (computed over ``header_size`` bytes with
    the CRC field zeroed), ``computed_crc32`` and ``problems`` (a list of strings).
    """
    if len(sector) < _GPT_HEADER.size or sector[:8] != b"EFI PART":
        return None
    (
        _sig,
        revision,
        header_size,
        header_crc,
        _reserved,
        my_lba,
        alternate_lba,
        first_usable,
        last_usable,
        disk_guid,
        entries_lba,
        entry_count,
        entry_size,
        entries_crc,
    ) = _GPT_HEADER.unpack_from(sector)
    problems: list[str] = []
    computed = None
    if 92 <= header_size <= len(sector):
        raw = bytearray(sector[:header_size])
        raw[16:20] = b"\0\0\0\0"
        computed = zlib.crc32(raw)
    else:
        problems.append(f"header size {header_size} is not between 92 and {len(sector)}")
    crc_ok = computed == header_crc
    if computed is not None and not crc_ok:
        problems.append(f"CRC mismatch: stored 0x{header_crc:08x}, computed 0x{computed:08x}")
    if expected_lba is not None and my_lba != expected_lba:
        problems.append(f"says it is at LBA {my_lba} but was read at LBA {expected_lba}")
    return {
        "signature": "EFI PART",
        "revision": f"{revision >> 16}.{revision & 0xFFFF}",
        "header_size": header_size,
        "header_crc32": header_crc,
        "computed_crc32": computed,
        "crc_ok": crc_ok,
        "my_lba": my_lba,
        "alternate_lba": alternate_lba,
        "first_usable_lba": first_usable,
        "last_usable_lba": last_usable,
        "disk_guid": _guid(disk_guid),
        "entries_lba": entries_lba,
        "entry_count": entry_count,
        "entry_size": entry_size,
        "entries_crc32": entries_crc,
        "problems": problems,
    }


def decode_gpt_entry(raw: bytes, index: int, sector_size: int) -> Partition | None:
    """One 128-byte (or larger) entry; None for an unused entry (all-zero type GUID)."""
    type_raw, unique, first, last, attrs, name = _GPT_ENTRY.unpack_from(raw)
    if type_raw == bytes(16):
        return None
    type_guid = _guid(type_raw)
    return Partition(
        index=index,
        scheme="gpt",
        first_lba=first,
        last_lba=last,
        sector_size=sector_size,
        type_id=type_guid,
        type_name=gpt_type_name(type_guid),
        name=_utf16_name(name),
        bootable=bool(attrs & (1 << 2)),
        guid=_guid(unique),
        attributes=attrs,
    )


def _header_geometry_problems(h: GptHeader, disk_lbas: int, sector_size: int) -> list[str]:
    """Problems that make a header unusable (its entries cannot be read safely)."""
    out = []
    size = h["entry_size"]
    if size < 128 or size > MAX_GPT_ENTRY_SIZE or size % 128 or (size // 128) & (size // 128 - 1):
        out.append(f"entry size {size} is not 128·2ⁿ (≤ {MAX_GPT_ENTRY_SIZE})")
    elif h["entry_count"] * size > MAX_GPT_ENTRIES_BYTES:
        out.append(f"{h['entry_count']} entries of {size} bytes is too large")
    elif h["entry_count"] and (
        h["entries_lba"] >= disk_lbas
        or h["entries_lba"] * sector_size + h["entry_count"] * size > disk_lbas * sector_size
    ):
        out.append(f"entries array at LBA {h['entries_lba']} lies past the end of the disk")
    return out


# ---------------------------------------------------------------- plans

Request = tuple[int, int]
Plan = Generator[Request, bytes, "PartitionTable | None"]


class _Reader:
    """Bounded, cached fetches inside a plan (a generator helper used with yield from)."""

    def __init__(self, disk_size: int):
        self.disk_size = disk_size
        self.chunks: list[tuple[int, bytes]] = []

    def get(self, offset: int, length: int) -> Generator[Request, bytes, bytes]:
        if offset < 0 or length <= 0 or offset >= self.disk_size:
            return b""
        length = min(length, self.disk_size - offset)
        for start, data in self.chunks:
            if start <= offset and offset + length <= start + len(data):
                return data[offset - start : offset - start + length]
        data = yield (offset, length)
        data = bytes(data or b"")[:length]
        self.chunks.append((offset, data))
        return data


def partition_table_plan(disk_size: int, sector_size: int | None = 512) -> Plan:
    """The decoder as a generator: yields (offset, length), receives bytes, returns the table.

    ``sector_size=None`` tries 512 and then 4096 for GPT (an MBR alone assumes 512).
    """
    if disk_size < 512 or (sector_size is not None and sector_size not in (512, 1024, 2048, 4096)):
        return None
    reader = _Reader(disk_size)
    # One request covers the MBR and both possible LBA 1 positions.
    yield from reader.get(0, 8192)
    sizes = (512, 4096) if sector_size is None else (sector_size,)
    best: tuple[int, PartitionTable] | None = None
    for ss in sizes:
        found = yield from _gpt_plan(reader, disk_size, ss)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
        if best is not None and best[0] == 2:
            break
    sector0 = yield from reader.get(0, 512)
    entries = _mbr_entries(sector0)
    protective = entries is not None and any(e[2] == 0xEE for e in entries)
    if best is not None:
        table = best[1]
        if not protective:
            problems = ("no protective MBR (type 0xEE) in front of the GPT", *table.problems)
            table = _replace_problems(table, problems)
        return table
    if entries is None:
        return None
    mbr_ss = sector_size or 512
    table = yield from _mbr_plan(reader, disk_size, mbr_ss, sector0, entries)
    if not table.partitions and _looks_like_boot_sector(sector0):
        return None
    if protective:
        table = _replace_problems(
            table, ("protective MBR but no valid GPT header was found", *table.problems)
        )
    return table


def _replace_problems(table: PartitionTable, problems: Iterable[str]) -> PartitionTable:
    return dataclasses.replace(table, problems=tuple(problems))


def _mbr_plan(
    reader: _Reader,
    disk_size: int,
    ss: int,
    sector0: bytes,
    entries: list[tuple[int, int, int, int, int]],
) -> Generator[Request, bytes, PartitionTable]:
    disk_lbas = disk_size // ss
    problems: list[str] = []
    parts: list[Partition] = []
    extended: tuple[int, int] | None = None
    for slot, boot, ptype, start, count in entries:
        if ptype == 0 or count == 0:
            continue
        parts.append(_mbr_partition(slot, boot, ptype, start, count, ss))
        if ptype in EXTENDED_TYPES:
            if extended is None:
                extended = (start, count)
            else:
                problems.append(f"partition {slot} is a second extended partition (ignored)")
    logicals: list[Partition] = []
    if extended is not None:
        ext_start, ext_count = extended
        ebr_lba, index = ext_start, 5
        visited: set[int] = set()
        while True:
            if ebr_lba in visited:
                problems.append(f"the extended partition chain loops back to LBA {ebr_lba}")
                break
            if len(logicals) >= MAX_LOGICAL_PARTITIONS or len(visited) > MAX_LOGICAL_PARTITIONS:
                problems.append(f"stopped after {MAX_LOGICAL_PARTITIONS} logical partitions")
                break
            if ebr_lba >= disk_lbas:
                problems.append(
                    f"extended boot record at LBA {ebr_lba} is past the end of the disk"
                )
                break
            visited.add(ebr_lba)
            ebr = yield from reader.get(ebr_lba * ss, 512)
            ebr_entries = _mbr_entries(ebr)
            if ebr_entries is None:
                problems.append(f"no valid extended boot record at LBA {ebr_lba}")
                break
            link = None
            for _slot, boot, ptype, start, count in ebr_entries:
                if ptype == 0 or count == 0:
                    continue
                if ptype in EXTENDED_TYPES:
                    if link is None:
                        link = ext_start + start
                    continue
                p = _mbr_partition(index, boot, ptype, ebr_lba + start, count, ss, logical=True)
                if p.first_lba < ext_start or p.last_lba >= ext_start + ext_count:
                    problems.append(f"partition {index} lies outside its extended partition")
                logicals.append(p)
                index += 1
            if link is None:
                break
            ebr_lba = link
    parts.extend(logicals)
    for p in parts:
        if p.type_id != "0xee" and p.last_lba >= disk_lbas:
            problems.append(f"partition {p.index} extends past the end of the disk")
    problems.extend(_overlaps([p for p in parts if not p.is_extended and p.type_id != "0xee"]))
    return PartitionTable(
        scheme="mbr",
        sector_size=ss,
        partitions=tuple(parts),
        problems=tuple(problems),
        disk_signature=struct.unpack_from("<I", sector0, 0x1B8)[0],
    )


def _overlaps(parts: list[Partition]) -> list[str]:
    out = []
    ordered = sorted(parts, key=lambda p: (p.first_lba, p.index))
    for a, b in itertools.pairwise(ordered):
        if b.first_lba <= a.last_lba:
            out.append(f"partition {b.index} overlaps partition {a.index}")
    return out


def _gpt_plan(
    reader: _Reader, disk_size: int, ss: int
) -> Generator[Request, bytes, tuple[int, PartitionTable] | None]:
    """Returns (quality, table): 2 = primary valid, 1 = backup used, 0 = damaged only."""
    disk_lbas = disk_size // ss
    if disk_lbas < 3:
        return None
    last = disk_lbas - 1
    raw = yield from reader.get(ss, ss)
    primary = decode_gpt_header(raw, expected_lba=1)
    backup_lba = last
    if primary is not None and 1 < primary["alternate_lba"] < disk_lbas:
        backup_lba = primary["alternate_lba"]
    raw = yield from reader.get(backup_lba * ss, ss)
    backup = decode_gpt_header(raw, expected_lba=backup_lba)
    if backup is None and backup_lba != last:
        raw = yield from reader.get(last * ss, ss)
        backup = decode_gpt_header(raw, expected_lba=last)
        backup_lba = last if backup is not None else backup_lba
    if primary is None and backup is None:
        return None

    problems: list[str] = []

    def usable(h: GptHeader | None) -> TypeGuard[GptHeader]:
        return h is not None and h["crc_ok"] and not _header_geometry_problems(h, disk_lbas, ss)

    for label, h in (("primary", primary), ("backup", backup)):
        if h is None:
            continue
        for problem in h["problems"]:
            problems.append(f"{label} GPT header {problem}")
        for problem in _header_geometry_problems(h, disk_lbas, ss):
            problems.append(f"{label} GPT header: {problem}")
    if primary is None:
        problems.insert(0, "primary GPT header missing")
    if backup is None:
        problems.append("backup GPT header missing")
    elif primary is not None and backup_lba != last:
        problems.append(
            f"backup GPT header is at LBA {backup_lba}, not at the last LBA {last}"
            " (was the disk resized?)"
        )

    if usable(primary):
        chosen, quality = primary, 2
    elif usable(backup):
        chosen, quality = backup, 1
        problems.append(f"using the backup GPT header at LBA {backup_lba}")
    else:
        found = primary if primary is not None else backup
        if found is None:  # not reached: both missing returned above
            return None
        chosen, quality = found, 0
        problems.append("no intact GPT header; the partitions shown may be wrong")
        if _header_geometry_problems(chosen, disk_lbas, ss):
            return quality, _gpt_table(ss, chosen, (), problems)

    entries_raw = yield from _read_entries(reader, chosen, ss)
    crc_ok = zlib.crc32(entries_raw) == chosen["entries_crc32"]
    other = backup if chosen is primary else primary
    if not crc_ok:
        which = "primary" if chosen is primary else "backup"
        problems.append(
            f"{which} entries CRC mismatch: stored 0x{chosen['entries_crc32']:08x},"
            f" computed 0x{zlib.crc32(entries_raw):08x}"
        )
    if usable(other):
        other_raw = yield from _read_entries(reader, other, ss)
        other_ok = zlib.crc32(other_raw) == other["entries_crc32"]
        which = "primary" if other is primary else "backup"
        if not other_ok:
            problems.append(f"{which} entries CRC mismatch")
        elif not crc_ok:
            problems.append(f"using the {which} partition entries")
            chosen, entries_raw = other, other_raw
            quality = min(quality, 1)
        for key in ("disk_guid", "entry_count", "entry_size", "entries_crc32"):
            if other_ok and crc_ok and other[key] != chosen[key]:
                problems.append(f"backup GPT header disagrees with the primary about {key}")
    elif quality == 2 and not crc_ok:
        quality = 1

    parts: list[Partition] = []
    size = chosen["entry_size"]
    for i in range(len(entries_raw) // size):
        p = decode_gpt_entry(entries_raw[i * size : i * size + 128], i + 1, ss)
        if p is None:
            continue
        if p.last_lba < p.first_lba:
            problems.append(f"partition {p.index} ends (LBA {p.last_lba}) before it starts")
            continue
        parts.append(p)
        if p.last_lba >= disk_lbas:
            problems.append(f"partition {p.index} extends past the end of the disk")
        elif p.first_lba < chosen["first_usable_lba"] or p.last_lba > chosen["last_usable_lba"]:
            problems.append(f"partition {p.index} lies outside the usable LBAs")
    problems.extend(_overlaps(parts))
    return quality, _gpt_table(ss, chosen, tuple(parts), problems)


def _read_entries(reader: _Reader, h: GptHeader, ss: int) -> Generator[Request, bytes, bytes]:
    length = h["entry_count"] * h["entry_size"]
    data = yield from reader.get(h["entries_lba"] * ss, length)
    return data


def _gpt_table(
    ss: int, h: GptHeader, parts: Iterable[Partition], problems: Iterable[str]
) -> PartitionTable:
    header = h.copy()
    header.pop("problems", None)
    return PartitionTable(
        scheme="gpt",
        sector_size=ss,
        partitions=tuple(parts),
        disk_guid=h["disk_guid"],
        problems=tuple(dict.fromkeys(problems)),
        header=header,
    )


# ---------------------------------------------------------------- drivers


_T = TypeVar("_T")


def run_plan(plan: Generator[Request, bytes, _T], read: Callable[[int, int], bytes]) -> _T:
    """Drive a plan with a synchronous ``read(offset, length)``; return its result."""
    try:
        request = next(plan)
        while True:
            request = plan.send(read(*request))
    except StopIteration as stop:
        result: _T = stop.value  # what the plan returned
        return result


async def run_plan_async(
    plan: Generator[Request, bytes, _T], aread: Callable[[int, int], Awaitable[bytes]]
) -> _T:
    """Drive a plan with an awaitable ``aread(offset, length)``; return its result."""
    try:
        request = next(plan)
        while True:
            request = plan.send(await aread(*request))
    except StopIteration as stop:
        result: _T = stop.value  # what the plan returned
        return result


def read_partition_table(
    read: Callable[[int, int], bytes], disk_size: int, sector_size: int | None = 512
) -> PartitionTable | None:
    """Decode the partition table of a disk of ``disk_size`` bytes; None if there is none."""
    return run_plan(partition_table_plan(disk_size, sector_size), read)


async def read_partition_table_async(
    aread: Callable[[int, int], Awaitable[bytes]],
    disk_size: int,
    sector_size: int | None = 512,
) -> PartitionTable | None:
    """:func:`read_partition_table` for an ``async def aread(offset, length)``."""
    return await run_plan_async(partition_table_plan(disk_size, sector_size), aread)
