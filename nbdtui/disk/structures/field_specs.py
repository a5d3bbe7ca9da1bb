"""What the filesystem decoders (ext, FAT, exFAT, NTFS, the partition table) share:
reading inside a plan, tables of fields (name, place, format, meaning) that decode into
:class:`Field` rows and compare two copies field by field."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass

from nbdtui.disk.structures.model import Backup, Check, Field, Request, Structure
from nbdtui.errors import RepairError

__all__ = [
    "Spec",
    "compare",
    "decode",
    "fetch",
    "fields",
    "first_sound_backup",
    "hex32",
    "hexnum",
    "magic_check",
    "quoted",
    "text",
]


def fetch(offset: int, length: int) -> Generator[Request, bytes, bytes]:
    """Read ``length`` bytes at ``offset`` inside a plan (short only at the export's end)."""
    if length <= 0 or offset < 0:
        return b""
    data = yield (offset, length)
    return bytes(data or b"")[:length]


def text(raw: bytes, encoding: str = "utf-8") -> str:
    """A NUL-terminated string, trailing blanks stripped."""
    return raw.split(b"\0", 1)[0].decode(encoding, errors="replace").rstrip()


def hexnum(value: int, digits: int = 8) -> str:
    return f"0x{value:0{digits}x}"


def show_uuid(raw: bytes) -> str:
    return str(uuid.UUID(bytes=bytes(raw)))


@dataclass(frozen=True)
class Spec:
    """One field of an on-disk layout."""

    name: str
    rel: int  # offset from the start of the decoded bytes
    fmt: str  # struct format of the field ("<I", "16s"…)
    meaning: str = ""
    show: Callable[[object], str] | None = None
    #: "offset" | "sector" | "block" | "lba": ``unit`` bytes per unit from ``origin``.
    kind: str = ""

    @property
    def size(self) -> int:
        return struct.calcsize(self.fmt)


def decode(specs: Iterable[Spec], data: bytes) -> dict[str, object]:
    """Each field's raw value (an int, or bytes for an ``s`` format)."""
    out: dict[str, object] = {}
    for s in specs:
        if s.rel + s.size <= len(data):
            out[s.name] = struct.unpack_from(s.fmt, data, s.rel)[0]
    return out


def _default_show(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex(" ") if any(value) else "(zero)"
    return str(value)


def fields(
    specs: Iterable[Spec],
    data: bytes,
    at: int,
    *,
    unit: int = 1,
    origin: int = 0,
) -> tuple[Field, ...]:
    """The rows of ``specs`` over ``data`` that lies at absolute offset ``at``; a field of a
    ``kind`` points at ``origin + value * unit``."""
    out = []
    for s in specs:
        if s.rel + s.size > len(data):
            continue
        value = struct.unpack_from(s.fmt, data, s.rel)[0]
        shown = (s.show or _default_show)(value)
        target = None
        if s.kind and isinstance(value, int):
            target = value if s.kind == "offset" else origin + value * unit
        out.append(Field(s.name, at + s.rel, s.size, shown, s.meaning, s.kind, target))
    return tuple(out)


def compare(
    specs: Iterable[Spec], primary: bytes, backup: bytes, ignore: Sequence[str] = ()
) -> tuple[str, ...]:
    """The names of the fields whose bytes differ between two copies (``ignore``: those
    that differ by design)."""
    out = []
    for s in specs:
        if s.name in ignore:
            continue
        if primary[s.rel : s.rel + s.size] != backup[s.rel : s.rel + s.size]:
            out.append(s.name)
    return tuple(out)


def magic_check(name: str, found: bytes, wanted: bytes, where: str) -> Check:
    ok = found == wanted
    detail = "" if ok else f"{where} holds {found.hex(' ')} instead of {wanted.hex(' ')}"
    return Check(name, ok, found.hex(" "), wanted.hex(" "), detail)


def first_sound_backup(structure: Structure) -> Backup:
    """The first backup whose own checks pass; RepairError when there is none."""
    for backup in structure.backups:
        if backup.sound:
            return backup
    if not structure.backups:
        raise RepairError(f"the {structure.name} at {structure.offset} has no backup copy")
    first = structure.backups[0]
    raise RepairError(
        f"the {structure.name} backup in {first.label} at {first.at} fails its own checks"
        " (and so does every other): nothing was written"
    )


def quoted(value: object) -> str:
    """Bytes shown as quoted Latin-1 text (a name or label field)."""
    assert isinstance(value, bytes)
    return repr(value.decode("latin-1"))


def hex32(value: object) -> str:
    assert isinstance(value, int)
    return hexnum(value)
