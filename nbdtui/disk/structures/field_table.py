"""Decode a structure's fields from a table of rows, and compare two copies.

A row is ``(name, offset in the structure, format, meaning)``. The format is a
:mod:`struct` code (``"I"``, ``"Q"``, ``"H"``, ``"B"``, ``"i"``; the byte order is the
table's), or ``"<n>s"`` text (NUL-terminated, stripped), ``"<n>x"`` raw bytes shown as
hex, ``"uuid"`` 16 bytes shown as blkid prints a UUID. Used by the volume decoders
(xfs, btrfs, luks, swap, lvm, mdraid).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence

from nbdtui.disk.structures.model import Field

__all__ = ["Row", "Values", "decode_rows", "differences", "text", "uuid_text", "with_targets"]

Row = tuple[str, int, str, str]
#: The decoded values by field name: int, str (text, UUID) or bytes.
Values = dict[str, int | str | bytes]


def text(raw: bytes) -> str:
    """NUL-terminated text, as blkid prints a label."""
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()


def uuid_text(raw: bytes) -> str:
    """16 bytes as a UUID the way blkid prints one; "" when all zero."""
    return str(uuid.UUID(bytes=bytes(raw))) if any(raw) else ""


def _size(fmt: str) -> int:
    if fmt == "uuid":
        return 16
    if fmt[-1] in "sx":
        return int(fmt[:-1])
    return struct.calcsize("<" + fmt)


def decode_rows(
    data: bytes, at: int, rows: Sequence[Row], order: str = "<"
) -> tuple[tuple[Field, ...], Values]:
    """The fields of ``rows`` in ``data`` (which lies at absolute offset ``at``), and
    their values by name. A row past the end of ``data`` is left out."""
    fields: list[Field] = []
    values: Values = {}
    for name, rel, fmt, meaning in rows:
        n = _size(fmt)
        raw = bytes(data[rel : rel + n])
        if len(raw) < n:
            continue
        value: int | str | bytes
        if fmt == "uuid":
            value = shown = uuid_text(raw)
        elif fmt[-1] == "s":
            value = text(raw)
            shown = repr(value)
        elif fmt[-1] == "x":
            value, shown = raw, raw.hex()
        else:
            value = struct.unpack(order + fmt, raw)[0]
            shown = str(value)
        values[name] = value
        fields.append(Field(name, at + rel, n, shown, meaning))
    return tuple(fields), values


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
