"""The data inspector: the bytes at the hex editor's cursor read as many types.

``inspect(data)`` takes up to 16 bytes starting at the cursor and returns the same
list of rows every time, in the same order, so that the panel does not jump about.
A row whose type needs more bytes than were given shows ``"—"`` (:data:`MISSING`).

Conventions:

- Integers and floats come in little-endian ("LE") and big-endian ("BE") rows.
- Text rows show the characters that decode from the cursor on (up to the first
  undecodable byte), quoted with Python escapes for control characters, followed by
  the code point of the first character; ``"invalid"`` when the very first character
  does not decode.
- Times are UTC, ISO-8601 with a ``Z``; ``"out of range"`` when the year would be
  outside 1…9999.
- DOS date/time is the FAT/ZIP packed 32-bit little-endian value with the *time in
  the low 16 bits* (bits 0–4 seconds/2, 5–10 minutes, 11–15 hours) and the *date in
  the high 16 bits* (bits 0–4 day, 5–8 month, 9–15 years since 1980), which is how a
  FAT directory entry stores them (time at 0x16, date at 0x18). Local time, no zone.
  ``"invalid"`` when a field is out of range.
- FILETIME is a u64 LE count of 100 ns since 1601-01-01 UTC.
- GUID is mixed-endian as on GPT disks and in Windows (``uuid.UUID(bytes_le=…)``);
  the "GPT type" row names it when it is a known partition type GUID.
- Unsigned integer rows also carry the value itself (``Field.number``) for the editor
  to show in hex and to follow as an offset or a sector.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from nbdtui.disk.partition_types import GPT_TYPES

__all__ = ["MISSING", "Field", "inspect"]

MISSING = "—"

_UTC = dt.UTC
_EPOCH_1601 = dt.datetime(1601, 1, 1, tzinfo=_UTC)


@dataclass(frozen=True)
class Field:
    name: str
    value: str
    size: int = 0  # bytes the row needs from the cursor on (text rows: at least)
    number: int | None = None  # unsigned integer rows: the value (shown in hex, followed)


def _float_text(value: float, packed: bytes, fmt: str) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if fmt[1] == "d":
        return repr(value)
    # Shortest decimal that reads back as the same float32.
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.pack(fmt, float(text)) == packed:
            return text
    return repr(value)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def unix_time(seconds: int) -> str:
    try:
        return _iso(dt.datetime.fromtimestamp(seconds, _UTC))
    except (OverflowError, OSError, ValueError):
        return "out of range"


def filetime(ticks: int) -> str:
    try:
        return _iso(_EPOCH_1601 + dt.timedelta(microseconds=ticks // 10))
    except OverflowError:
        return "out of range"


def dos_datetime(value: int) -> str:
    time, date = value & 0xFFFF, value >> 16
    try:
        moment = dt.datetime(
            1980 + (date >> 9),
            (date >> 5) & 0x0F,
            date & 0x1F,
            time >> 11,
            (time >> 5) & 0x3F,
            (time & 0x1F) * 2,
        )
    except ValueError:
        return "invalid"
    return moment.isoformat(sep=" ")


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


def _quote(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _text(data: bytes, encoding: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start == 0:
            # Truncated first character: we were not given enough bytes to tell.
            return MISSING if exc.reason == "unexpected end of data" else "invalid"
        text = data[: exc.start].decode(encoding)
    if not text:
        return MISSING
    return f"{_quote(text)} (U+{ord(text[0]):04X})"


_INTS = (
    ("u16", "H", 2),
    ("i16", "h", 2),
    ("u32", "I", 4),
    ("i32", "i", 4),
    ("u64", "Q", 8),
    ("i64", "q", 8),
)


def _unpacked(fmt: str, data: bytes) -> str:
    return str(struct.unpack_from(fmt, data)[0])


def inspect(data: bytes) -> list[Field]:
    """The rows of the inspector for the (up to 16) bytes at the cursor."""
    data = bytes(data[:16])
    n = len(data)
    rows: list[Field] = []

    def add(name: str, size: int, make: Callable[[], str]) -> None:
        rows.append(Field(name, make() if n >= max(size, 1) else MISSING, size))

    def add_unsigned(name: str, size: int, fmt: str) -> None:
        number = struct.unpack_from(fmt, data)[0] if n >= size else None
        rows.append(Field(name, MISSING if number is None else str(number), size, number))

    add_unsigned("u8", 1, "B")
    add("i8", 1, lambda: str(struct.unpack_from("b", data)[0]))
    for name, code, size in _INTS:
        for order, prefix in (("LE", "<"), ("BE", ">")):
            if name.startswith("u"):
                add_unsigned(f"{name} {order}", size, prefix + code)
            else:
                add(f"{name} {order}", size, functools.partial(_unpacked, prefix + code, data))
    for name, code, size in (("float32", "f", 4), ("float64", "d", 8)):
        for order, prefix in (("LE", "<"), ("BE", ">")):
            fmt = prefix + code

            def make(fmt: str = fmt, size: int = size) -> str:
                value = struct.unpack_from(fmt, data)[0]
                return _float_text(value, data[:size], fmt)

            add(f"{name} {order}", size, make)
    add("UTF-8", 1, lambda: _text(data, "utf-8"))
    add("UTF-16LE", 2, lambda: _text(data[: n - n % 2], "utf-16-le"))
    add("UNIX time u32 LE", 4, lambda: unix_time(struct.unpack_from("<I", data)[0]))
    add("UNIX time i64 LE", 8, lambda: unix_time(struct.unpack_from("<q", data)[0]))
    add("DOS date/time", 4, lambda: dos_datetime(struct.unpack_from("<I", data)[0]))
    add("FILETIME", 8, lambda: filetime(struct.unpack_from("<Q", data)[0]))
    guid = str(uuid.UUID(bytes_le=data[:16])).upper() if n >= 16 else MISSING
    rows.append(Field("GUID", guid, 16))
    known = GPT_TYPES.get(guid, "unknown") if guid != MISSING else MISSING
    rows.append(Field("GPT type", known, 16))
    return rows
