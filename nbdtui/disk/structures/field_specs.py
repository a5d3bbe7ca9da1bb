"""What every decoder shares: reading inside a plan, tables of fields (name, place,
format, meaning) that decode into :class:`Field` rows and into values, comparing two
copies field by field, and choosing the copy a repair restores from.

A table is a tuple of :class:`Spec`; :func:`table` writes one compactly from rows
``(name, offset, format, meaning)`` in one byte order, where the format is a
:mod:`struct` code (``"I"``, ``"Q"``, ``"H"``, ``"B"``, ``"i"``), ``"<n>s"`` text
(NUL-terminated, stripped), ``"<n>x"`` raw bytes shown as hex, or ``"uuid"`` (16 bytes
shown as blkid prints a UUID)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nbdtui.disk.structures.model import Backup, Check, Field, Patch, Request, Structure
from nbdtui.errors import RepairError, RequestError

__all__ = [
    "Spec",
    "Values",
    "compare",
    "decode",
    "decoded",
    "differences",
    "fetch",
    "fields",
    "first_sound_backup",
    "hex32",
    "hexnum",
    "magic_check",
    "no_repair",
    "quoted",
    "read_backup",
    "restore_source",
    "shown_label",
    "table",
    "text",
    "unreadable",
    "uuid_text",
    "with_targets",
]

#: Decoded values by field name: int, str (text, UUID) or bytes.
Values = dict[str, int | str | bytes]


def fetch(offset: int, length: int) -> Generator[Request, bytes, bytes]:
    """Read ``length`` bytes at ``offset`` inside a plan (short only at the export's end)."""
    if length <= 0 or offset < 0:
        return b""
    data = yield (offset, length)
    return bytes(data or b"")[:length]


def read_backup(at: int, length: int) -> Generator[Request, bytes, bytes | None]:
    """The bytes of a backup copy inside a plan, or None when the server failed to read
    them (a driver that throws read errors into the plan, as the scan's does): the copy
    is then reported unreadable instead of the whole structure being lost."""
    try:
        data: bytes = yield (at, length)
    except RequestError:
        return None
    return data


def unreadable(at: int, length: int, label: str) -> Backup:
    """A backup copy the server could not read."""
    return Backup(at, length, matches=False, sound=False, differences=("unreadable",), label=label)


def text(raw: bytes, encoding: str = "utf-8") -> str:
    """A NUL-terminated string, trailing blanks stripped."""
    return raw.split(b"\0", 1)[0].decode(encoding, errors="replace").rstrip()


def hexnum(value: int, digits: int = 8) -> str:
    return f"0x{value:0{digits}x}"


def show_uuid(raw: bytes) -> str:
    return str(uuid.UUID(bytes=bytes(raw)))


def uuid_text(raw: object) -> str:
    """16 bytes as a UUID the way blkid prints one; "" when all zero."""
    assert isinstance(raw, bytes)
    return show_uuid(raw) if any(raw) else ""


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
    #: The value :func:`decode` gives (a label's text, say) instead of the raw one.
    convert: Callable[[object], int | str | bytes] | None = None

    @property
    def size(self) -> int:
        return struct.calcsize(self.fmt)


def decode(specs: Iterable[Spec], data: bytes) -> dict[str, object]:
    """Each field's value (an int, or bytes for an ``s`` format, unless the spec
    converts it); a field past the end of ``data`` is left out."""
    out: dict[str, object] = {}
    for s in specs:
        if s.rel + s.size <= len(data):
            value = struct.unpack_from(s.fmt, data, s.rel)[0]
            out[s.name] = s.convert(value) if s.convert else value
    return out


def _label(raw: object) -> str:
    assert isinstance(raw, bytes)
    return text(raw).strip()


def shown_label(raw: object) -> str:
    """A text field for a person: its text, quoted."""
    return repr(_label(raw))


def _hex(raw: object) -> str:
    assert isinstance(raw, bytes)
    return raw.hex()


def _raw(raw: object) -> bytes:
    assert isinstance(raw, bytes)
    return raw


def table(rows: Iterable[tuple[str, int, str, str]], order: str = "<") -> tuple[Spec, ...]:
    """The specs of compact rows ``(name, offset, format, meaning)`` in byte order
    ``order`` (see the module's doc for the formats)."""
    out = []
    for name, rel, fmt, meaning in rows:
        if fmt == "uuid":
            out.append(Spec(name, rel, "16s", meaning, uuid_text, convert=uuid_text))
        elif fmt[-1] == "s":
            out.append(Spec(name, rel, fmt, meaning, shown_label, convert=_label))
        elif fmt[-1] == "x":
            out.append(Spec(name, rel, fmt[:-1] + "s", meaning, _hex, convert=_raw))
        else:
            out.append(Spec(name, rel, order + fmt, meaning))
    return tuple(out)


def decoded(specs: Iterable[Spec], data: bytes, at: int) -> tuple[tuple[Field, ...], Values]:
    """The fields of ``specs`` over ``data`` (which lies at absolute offset ``at``) and
    their values by name (as :func:`decode`)."""
    specs = tuple(specs)
    values: Values = {}
    for name, value in decode(specs, data).items():
        assert isinstance(value, int | str | bytes)
        values[name] = value
    return fields(specs, data, at), values


def differences(
    a: Mapping[str, object], b: Mapping[str, object], names: Iterable[str]
) -> tuple[str, ...]:
    """The names among ``names`` whose values differ between two copies."""
    return tuple(name for name in names if a.get(name) != b.get(name))


def with_targets(
    fields: Iterable[Field], targets: Mapping[str, tuple[str, int]]
) -> tuple[Field, ...]:
    """``fields`` with ``kind`` and ``target`` set on those named in ``targets``
    (name -> (kind, absolute offset)), so that the editor can follow them."""
    out = []
    for f in fields:
        if f.name in targets:
            kind, target = targets[f.name]
            f = Field(f.name, f.at, f.size, f.value, f.meaning, kind, target)
        out.append(f)
    return tuple(out)


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


def restore_source(structure: Structure, primary_at: int) -> Backup:
    """The copy to restore the primary at ``primary_at`` from: the copy the structure was
    decoded from when its primary is gone (a scan or a repair found it that way), if
    that copy's own checks pass, else the first sound backup. RepairError if none."""
    if structure.at != primary_at:
        if not all(c.ok for c in structure.checks if c.name != "primary"):
            raise RepairError(
                f"the {structure.name} at {structure.at} fails its own checks: nothing was written"
            )
        return Backup(structure.at, structure.length, True, True, label=structure.name)
    return first_sound_backup(structure)


def no_repair(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """A repair with nothing to change (a family without checksums, say)."""
    if False:  # a generator that reads nothing
        yield (0, 0)
    return []


def quoted(value: object) -> str:
    """Bytes shown as quoted Latin-1 text (a name or label field)."""
    assert isinstance(value, bytes)
    return repr(value.decode("latin-1"))


def hex32(value: object) -> str:
    assert isinstance(value, int)
    return hexnum(value)
