"""Offsets typed in the editor: goto (Ctrl+G), ranges (save, load) and the search's
alignment. Numbers read as on the command line (:func:`nbdtui.present.sizes.read_amount`),
with the editor's sector size.

=================  ===================================================
``4096``           byte offset (decimal; ``_`` may separate digits)
``0x1000``         byte offset in hex
``64K`` ``1M``     suffixes K M G T P E are powers of 1024 (``64K`` = 65536);
                   fractions (``1.5M``) are refused
``s2048``          sector 2048 (of the editor's sector size); ``2048s`` and
                   ``s0x800`` too
``+16`` ``-0x10``  relative to the cursor; ``+s1`` is one sector on, ``-s1`` back
``end`` ``$``      the last byte of the export
``end-N``          ``N`` bytes before the end: ``end-1`` is the last byte,
                   ``end-s1`` the start of the last whole sector
``s-1`` ``s-N``    the last sector (partial or not), the N-th from the end
=================  ===================================================

``parse_goto`` returns the absolute offset or raises :class:`GotoError` with a message
for the dialog to show under the input.
"""

from __future__ import annotations

import re

from nbdtui.errors import GotoError
from nbdtui.present.sizes import is_fraction, read_amount

HELP = "e.g. 4096, 0x1000, 64K, s2048, 2048s, +s1, -0x10, end, end-s1, s-1"


def _amount(text: str, raw: str, sector_size: int) -> int:
    value = read_amount(text.strip(), sector_size)
    if value is not None:
        return value
    if is_fraction(text.strip()):
        raise GotoError(f"{raw.strip()!r}: fractions are not allowed ({HELP})")
    raise GotoError(f"cannot read {raw.strip()!r} as an offset ({HELP})")


def _absolute(text: str, raw: str, *, cursor: int, size: int, sector_size: int) -> int:
    """The offset of a goto expression, not yet checked against the export."""
    if text in ("end", "$"):
        return size - 1
    if text.startswith(("end", "$")):
        rest = text[3 if text.startswith("end") else 1 :].lstrip()
        if rest[:1] == "-":
            return size - _amount(rest[1:], raw, sector_size)
        raise GotoError(f"cannot read {raw.strip()!r} as an offset ({HELP})")
    last_sector = re.fullmatch(r"s\s*-\s*(\d+(?:_\d+)*)", text)
    if last_sector:
        count = int(last_sector[1].replace("_", ""))
        if count == 0:
            raise GotoError(f"{raw.strip()!r}: s-1 is the last sector, s-2 the one before")
        return ((size - 1) // sector_size - count + 1) * sector_size
    if text[0] in "+-":
        sign = 1 if text[0] == "+" else -1
        return cursor + sign * _amount(text[1:], raw, sector_size)
    return _amount(text, raw, sector_size)


def parse_goto(text: str, *, cursor: int, size: int, sector_size: int = 512) -> int:
    """The offset ``text`` designates (see the module docstring)."""
    raw = text
    text = text.strip().lower()
    if not text:
        raise GotoError(f"type an offset: {HELP}")
    if size == 0 and (text.startswith(("end", "$")) or re.match(r"s\s*-", text)):
        raise GotoError("the export is empty")
    target = _absolute(text, raw, cursor=cursor, size=size, sector_size=sector_size)
    if target < 0:
        raise GotoError(f"{raw.strip()!r} is before the start of the export ({target})")
    if target >= size:
        where = f"{target} (0x{target:x})"
        raise GotoError(f"{where} is past the end of the export ({size} bytes)")
    return target


def parse_range(text: str, *, cursor: int, size: int, sector_size: int = 512) -> tuple[int, int]:
    """``START..END`` (``END`` included, as the selection) or ``START+LENGTH``:
    ``(offset, length)``. Each end reads as a goto offset; ``LENGTH`` as an amount."""
    raw = text.strip()
    if ".." in raw:
        head, _, tail = raw.partition("..")
        lo = parse_goto(head, cursor=cursor, size=size, sector_size=sector_size)
        hi = parse_goto(tail, cursor=cursor, size=size, sector_size=sector_size)
        if hi < lo:
            raise GotoError(f"{raw!r}: the end comes before the start")
        return lo, hi - lo + 1
    if "+" in raw[1:]:
        head, _, tail = raw.rpartition("+")
        lo = parse_goto(head, cursor=cursor, size=size, sector_size=sector_size)
        length = _amount(tail.lower(), tail, sector_size)
        if length == 0:
            raise GotoError(f"{raw!r}: the length is zero")
        if lo + length > size:
            raise GotoError(
                f"{raw!r} ends past the end of the export ({lo + length} > {size} bytes)"
            )
        return lo, length
    raise GotoError("type a range: START..END (END included) or START+LENGTH, e.g. s2+s1")


def parse_alignment(text: str, *, sector_size: int = 512) -> tuple[int, int] | None:
    """``R mod M`` (or ``R % M``), or ``M`` alone (offsets that are multiples of M):
    ``(modulus, remainder)``; ``None`` for blank text."""
    raw = text
    text = text.strip().lower()
    if not text:
        return None
    head, sep, tail = [*re.split(r"\s*(mod|%)\s*", text, maxsplit=1), "", ""][:3]
    if sep:
        remainder = _amount(head, raw, sector_size)
        modulus = _amount(tail, raw, sector_size)
    else:
        remainder, modulus = 0, _amount(text, raw, sector_size)
    if modulus == 0:
        raise GotoError(f"{raw.strip()!r}: the alignment must be at least 1 byte")
    return modulus, remainder % modulus
