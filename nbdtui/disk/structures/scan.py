"""Find filesystems and volumes anywhere on an export, by their magic numbers.

Two steps. :func:`candidates` looks through a piece of the export for each format's
magic at the place the format puts it, relative to a start on a 512-byte boundary
(a partition starts on a sector), and says where that filesystem would start:
sixteen strided looks per 4 MiB piece, one byte in each sector, so a piece costs
little more than reading it. :func:`verify_plan` then hands each candidate, lowest
first, to the decoders of its family in the registry; a candidate inside a
filesystem already found (a backup superblock, a file holding an image) is skipped.
A FAT32 whose boot sector is gone is found by its backup (sector 6), an ext
filesystem whose primary superblock is gone by a backup superblock (its group number
and the group size say where the filesystem starts).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

from nbdtui.disk.structures.model import ProbePlan, Request, Structure
from nbdtui.disk.structures.registry import PROBES
from nbdtui.errors import NbdError, RequestError

__all__ = ["SECTOR", "Mark", "candidates", "merge", "verify_plan"]

SECTOR = 512
#: Structures that hold other filesystems (whose contents are then scanned too).
CONTAINERS = frozenset({"crypto_LUKS", "LVM2_member", "linux_raid_member"})
EXT = ("ext4", "ext3", "ext2")

Buffer = bytes | bytearray | memoryview
#: (piece, absolute offset of the piece, absolute offset of the magic) -> starts.
Locate = Callable[[memoryview, int, int], Iterable[int]]


@dataclass(frozen=True)
class Mark:
    types: tuple[str, ...]  # blkid names of the family
    magic: bytes
    column: int  # the magic's offset inside its sector
    locate: Locate  # where the structure would start, given the magic's offset


def _at(rel: int) -> Locate:
    return lambda piece, base, pos: (pos - rel,)


def _u(piece: memoryview, base: int, at: int, fmt: str) -> int | None:
    """An integer in the piece at absolute ``at``, or None when it is not in the piece."""
    i = at - base
    n = struct.calcsize(fmt)
    if i < 0 or i + n > len(piece):
        return None
    value: int = struct.unpack_from(fmt, piece, i)[0]
    return value


def _swap(piece: memoryview, base: int, pos: int) -> Iterable[int]:
    for page in (4096, 8192, 16384, 65536):  # the first whose header says version 1
        start = pos + 10 - page
        if start < 0:
            return
        if _u(piece, base, start + 1024, "<I") in (1, 1 << 24, None):
            yield start
            return


def _lvm(piece: memoryview, base: int, pos: int) -> Iterable[int]:
    sector = _u(piece, base, pos + 8, "<Q")
    kind = bytes(piece[pos - base + 24 : pos - base + 32])  # (the label is in one sector)
    if sector is not None and sector < 4 and kind == b"LVM2 001":
        yield pos - sector * SECTOR


def _md(piece: memoryview, base: int, pos: int) -> Iterable[int]:
    """The superblock itself: the decoder finds the device's start from it (a 1.0
    superblock lies at the end of its device, whose size a scan does not know)."""
    major, super_offset = _u(piece, base, pos + 4, "<I"), _u(piece, base, pos + 144, "<Q")
    if major == 1 and super_offset is not None and super_offset * SECTOR <= pos:
        yield pos


def _ext(piece: memoryview, base: int, pos: int) -> Iterable[int]:
    """An ext superblock's magic: the filesystem starts 1 KiB before the primary; a
    backup (``s_block_group_nr`` > 0) says which group it is in, hence the start. The
    backup's own place is a candidate too: the decoder, given it, finds the start from
    the backup even when the geometry is not mke2fs's default."""
    sb = pos - 0x38
    log_block = _u(piece, base, sb + 0x18, "<I")
    rev = _u(piece, base, sb + 0x4C, "<I")
    if (log_block is not None and log_block > 6) or (rev is not None and rev > 1):
        return
    first_block = _u(piece, base, sb + 0x14, "<I")
    per_group = _u(piece, base, sb + 0x20, "<I")
    group = _u(piece, base, sb + 0x5A, "<H")
    if group and log_block is not None and first_block is not None and per_group:
        yield sb - ((first_block + group * per_group) << (10 + log_block))
    yield sb - 1024  # (a backup there: the decoder finds the start from it)


_OWN_MARKS = (b"NTFS    ", b"EXFAT   ")  # boot sectors with marks of their own


def _fat(piece: memoryview, base: int, pos: int) -> Iterable[int]:
    start = pos - 510
    i = start - base
    if i < 0:
        return
    bps = _u(piece, base, start + 11, "<H")
    oem = bytes(piece[i + 3 : i + 11])
    if piece[i] in (0xEB, 0xE9) and bps in (512, 1024, 2048, 4096) and oem not in _OWN_MARKS:
        backup_sector = _u(piece, base, start + 0x32, "<H")
        fat16_size = _u(piece, base, start + 0x16, "<H")
        if fat16_size == 0 and backup_sector == 6 and start >= 6 * bps:
            # Maybe a FAT32 backup boot sector: the volume would start 6 sectors
            # earlier (the decoder tells, from the FAT behind the reserved sectors).
            yield start - 6 * bps
        yield start


MARKS: tuple[Mark, ...] = (
    Mark(("xfs",), b"XFSB", 0, _at(0)),
    Mark(("btrfs",), b"_BHRfS_M", 0x40, _at(0x10040)),
    Mark(("crypto_LUKS",), b"LUKS\xba\xbe", 0, _at(0)),
    Mark(("crypto_LUKS",), b"SKUL\xba\xbe", 0, _at(0)),  # a LUKS2 secondary header
    Mark(("swap",), b"SWAPSPACE2", SECTOR - 10, _swap),
    Mark(("swap",), b"SWAP-SPACE", SECTOR - 10, _swap),
    Mark(("LVM2_member",), b"LABELONE", 0, _lvm),
    Mark(("linux_raid_member",), b"\xfc\x4e\x2b\xa9", 0, _md),
    Mark(EXT, b"\x53\xef", 0x38, _ext),
    Mark(("vfat",), b"\x55\xaa", 510, _fat),
    Mark(("ntfs",), b"NTFS    ", 3, _at(3)),
    Mark(("exfat",), b"EXFAT   ", 3, _at(3)),
)
_COLUMNS = sorted({m.column for m in MARKS})


def candidates(piece: Buffer, base: int, length: int | None = None) -> dict[int, set[str]]:
    """Where a structure may start (absolute offset -> blkid types), from the magic
    numbers in the first ``length`` bytes (default: all) of ``piece``, which lies at
    absolute offset ``base`` (a multiple of 512). A bytearray or bytes is searched in
    place (taking every 512th byte of one is six times faster than of a memoryview);
    anything else is copied first."""
    data = piece if isinstance(piece, bytes | bytearray) else bytes(piece)
    n = len(data) if length is None else min(length, len(data))
    view = memoryview(data)[:n]
    found: dict[int, set[str]] = {}
    for column in _COLUMNS:
        col = data[column:n:SECTOR]  # one byte a sector
        for mark in MARKS:
            if mark.column != column:
                continue
            first, size = mark.magic[0], len(mark.magic)
            i = col.find(first)
            while i >= 0:
                at = i * SECTOR + column
                if view[at : at + size] == mark.magic:
                    for start in mark.locate(view, base, base + at):
                        if start >= 0 and start % SECTOR == 0:
                            found.setdefault(start, set()).update(mark.types)
                i = col.find(first, i + 1)
    return found


def merge(into: dict[int, set[str]], more: dict[int, set[str]]) -> None:
    for start, types in more.items():
        into.setdefault(start, set()).update(types)


def verify_plan(
    found: dict[int, set[str]], size: int
) -> Generator[Request, bytes, list[Structure]]:
    """The structures at the candidate starts ``found`` on an export of ``size`` bytes,
    in order of offset (a plan: see :mod:`nbdtui.disk.structures.model`)."""
    out: list[Structure] = []
    covered: list[tuple[int, int]] = []
    for start in sorted(found):
        if start >= size or any(lo <= start < hi for lo, hi in covered):
            continue
        s = yield from _identify(start, found[start], size)
        if s is None or any((s.type, s.offset) == (o.type, o.offset) for o in out):
            continue
        out.append(s)
        if s.type in CONTAINERS or not s.size:  # only its own header is taken
            covered.append((s.at, s.at + s.length))
        else:
            covered.append((s.offset, s.offset + s.size))
        covered.extend((b.at, b.at + b.length) for b in s.backups)
    return sorted(out, key=lambda s: s.offset)


def _identify(start: int, types: set[str], size: int) -> ProbePlan:
    for names, probe in PROBES:
        if types.intersection(names):
            try:
                s = yield from probe(start, size - start)
            except RequestError:  # the server could not read it: not found
                return None
            except NbdError:  # the reader's: a scan stops there
                raise
            except (struct.error, ValueError, LookupError, RecursionError):
                continue  # a decoder's slip on garbage: not this family
            if s is not None:
                return s
    return None
