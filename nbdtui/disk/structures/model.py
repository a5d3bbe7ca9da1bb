"""The shared shape of a decoded structure: fields, checks, backup copies, repairs.

A decoder is pure. It is a *plan* (as in :mod:`nbdtui.disk.partitions`): a generator
that yields ``(offset, length)`` read requests (absolute offsets on the export),
receives the bytes with ``send``, and returns its result. It never raises on
garbage and reads a bounded amount. :func:`nbdtui.disk.partitions.run_plan` and
``run_plan_async`` drive a plan with a synchronous or an awaitable reader.

Every offset in these types is absolute on the export. A structure's ``offset`` is
where the filesystem or volume starts (its partition), not where its superblock lies;
``at`` is where the decoded bytes themselves lie.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Protocol

Request = tuple[int, int]
#: A decoder: yields read requests, receives bytes, returns the structure or None.
ProbePlan = Generator[Request, bytes, "Structure | None"]


@dataclass(frozen=True)
class Field:
    """One field of a structure, for the cursor line and the structure view."""

    name: str  # as the format's documentation names it, e.g. "s_inodes_count"
    at: int  # absolute offset of the field's first byte
    size: int  # bytes
    value: str  # decoded, for a person: "4096", "clean", "'DATA'", a GUID
    meaning: str = ""  # what it is, one short line: "block size in bytes"
    #: "offset" | "sector" | "block" | "lba" when the value locates something the
    #: editor can follow; ``target`` is then the absolute byte offset it points at.
    kind: str = ""
    target: int | None = None


@dataclass(frozen=True)
class Check:
    """One soundness check: a magic number, a checksum, a size that must agree."""

    name: str  # stable, for scripts: "magic", "crc32c", "boot_checksum", "fixups"…
    ok: bool
    stored: str = ""  # as found on disk
    computed: str = ""  # what it should be
    detail: str = ""  # one line for a person when not ok


@dataclass(frozen=True)
class Backup:
    """A backup copy of a structure and how it compares with the primary."""

    at: int  # absolute offset of the backup's bytes
    length: int
    matches: bool  # same facts as the primary (fields that differ by design ignored)
    sound: bool  # the backup's own checks pass
    differences: tuple[str, ...] = ()  # field names that differ
    label: str = ""  # "group 1", "sector 6", "last sector", "secondary header"…


@dataclass(frozen=True)
class Patch:
    """Bytes to write at an absolute offset, with the bytes they replace."""

    at: int
    old: bytes
    new: bytes


@dataclass(frozen=True)
class Structure:
    """A decoded filesystem, volume or table: what ``nbdtui inspect`` reports."""

    type: str  # blkid's name: ext4, vfat, exfat, ntfs, xfs, btrfs, crypto_LUKS, swap…
    offset: int  # where the filesystem (partition) starts
    at: int  # where the decoded primary structure lies
    length: int  # bytes of the primary structure
    size: int | None = None  # the filesystem's size in bytes, when it says
    label: str = ""  # as blkid prints it
    uuid: str = ""  # as blkid prints it
    version: str = ""  # "1.0", "LUKS2", "FAT32"…
    name: str = ""  # the structure, for a person: "ext4 superblock", "FAT32 boot sector"
    fields: tuple[Field, ...] = ()
    checks: tuple[Check, ...] = ()
    backups: tuple[Backup, ...] = ()
    problems: tuple[str, ...] = ()
    #: More structures inside or beside this one (FSInfo, an MFT record header…).
    parts: tuple[Structure, ...] = field(default=())


class Probe(Protocol):
    """A family's decoder (``probe`` in each module): plans the decoding of the
    structure that starts at ``offset``, with ``size`` bytes available from there (the
    partition, or the rest of the export), and returns it, or None when there is none."""

    def __call__(self, offset: int, size: int) -> ProbePlan: ...
