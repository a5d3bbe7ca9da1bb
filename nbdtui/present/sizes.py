"""Sizes and offsets on the command line, and short human sizes for the UI.

``parse_size`` accepts:

- plain bytes: ``4096``; a ``B`` suffix is allowed (``4096B``);
- binary multiples ``K M G T P E``, case-insensitive, optionally written ``Ki``/``KiB``
  or ``KB``: **all of them are powers of 1024** (``1MB`` is 1048576, like ``1M`` and
  ``1MiB``), because block devices are counted in powers of two and an offset that is
  off by 4.6 % is never what anyone wanted;
- ``0x`` hexadecimal bytes: ``0x1000`` (no suffix);
- ``s`` for 512-byte sectors: ``8s`` is 4096;
- ``_`` between digits as a separator: ``1_048_576``, ``0xffff_0000``;
- blanks around the text and between the number and its suffix (``4 KiB``).

Anything else (negative, fractional, empty, unknown suffix) raises ``ValueError``
with a one-line message.
"""

from __future__ import annotations

import re

SECTOR = 512

_UNITS = "KMGTPE"
_HELP = "use bytes, K/M/G/T, 0x hex or Ns for 512-byte sectors"

_DECIMAL = re.compile(r"(\d+(?:_\d+)*)\s*([a-z]*)", re.ASCII)
_HEX = re.compile(r"0x([0-9a-f]+(?:_[0-9a-f]+)*)", re.ASCII)


def _multiplier(suffix: str) -> int | None:
    if suffix in ("", "b"):
        return 1
    if suffix == "s":
        return SECTOR
    unit, rest = suffix[0], suffix[1:]
    if unit in _UNITS.lower() and rest in ("", "b", "i", "ib"):
        return 1 << (10 * (_UNITS.lower().index(unit) + 1))
    return None


def parse_size(text: str) -> int:
    """The number of bytes ``text`` stands for (see the module docstring)."""
    raw = text
    text = text.strip().lower()
    if not text:
        raise ValueError(f"empty size: {_HELP}")
    if text.startswith("-"):
        raise ValueError(f"invalid size {raw!r}: a size cannot be negative")
    match = _HEX.fullmatch(text)
    if match:
        return int(match[1].replace("_", ""), 16)
    match = _DECIMAL.fullmatch(text)
    if match:
        multiplier = _multiplier(match[2])
        if multiplier is not None:
            return int(match[1].replace("_", "")) * multiplier
    if re.fullmatch(r"\d*[.,]\d*\s*[a-z]*", text, re.ASCII) and re.search(r"\d", text, re.ASCII):
        raise ValueError(f"invalid size {raw!r}: fractions are not allowed, {_HELP}")
    raise ValueError(f"invalid size {raw!r}: {_HELP}")


def format_size(n: int) -> str:
    """A short human size: ``512 B``, ``1.5 MiB``, ``1.0 GiB`` (powers of 1024)."""
    if n < 0:
        return "-" + format_size(-n)
    if n < 1024:
        return f"{n} B"
    exponent = 1
    while exponent < len(_UNITS) and n >= 1024 ** (exponent + 1):
        exponent += 1
    value = n / 1024**exponent
    # 1023.96 KiB would round to "1024.0 KiB": say "1.0 MiB" instead.
    if round(value, 1) >= 1024 and exponent < len(_UNITS):
        exponent += 1
        value = n / 1024**exponent
    return f"{value:.1f} {_UNITS[exponent - 1]}iB"
