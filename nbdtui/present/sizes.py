"""Sizes and offsets on the command line, and short human sizes for the UI.

``parse_size`` accepts:

- plain bytes: ``4096``; a ``B`` suffix is allowed (``4096B``);
- binary multiples ``K M G T P E``, case-insensitive, optionally written ``Ki``/``KiB``
  or ``KB``: **all of them are powers of 1024** (``1MB`` is 1048576, like ``1M`` and
  ``1MiB``), because block devices are counted in powers of two and an offset that is
  off by 4.6 % is never what anyone wanted;
- ``0x`` hexadecimal bytes: ``0x1000`` (no suffix);
- ``s`` for 512-byte sectors, after or before the number: ``8s`` and ``s8`` are 4096
  (the editor's goto reads the same syntax, with its own sector size);
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

# A number with its unit: ``s`` before it, or ``s``/``B``/``K``…``E`` after it.
_AMOUNT = (
    r"(?P<sector>s)?\s*(?:0x(?P<hex>[0-9a-f]+(?:_[0-9a-f]+)*)|(?P<dec>\d+(?:_\d+)*))"
    r"\s*(?P<suffix>[a-z]*)"
)


def _multiplier(suffix: str, sector_size: int) -> int | None:
    if suffix in ("", "b"):
        return 1
    if suffix == "s":
        return sector_size
    unit, rest = suffix[0], suffix[1:]
    if unit in _UNITS.lower() and rest in ("", "b", "i", "ib"):
        return 1 << (10 * (_UNITS.lower().index(unit) + 1))
    return None


def read_amount(text: str, sector_size: int = SECTOR) -> int | None:
    """The bytes of one unsigned amount, the syntax the CLI and the editor's goto share:
    ``4096``, ``0x1000``, ``64K`` (powers of 1024; ``KiB``, ``KB`` too), ``2048s`` or
    ``s2048`` (sectors of ``sector_size`` bytes), ``s0x800``, ``s 4K``, ``1_048_576``.
    ``text`` is stripped and lower case; ``None``: it is not an amount."""
    if text.isascii() and text.isdigit():
        return int(text)  # plain bytes, without compiling _AMOUNT (1.4 M instructions)
    match = re.fullmatch(_AMOUNT, text, re.ASCII)  # compiled at the first use, then cached
    if match is None:
        return None
    suffix = match["suffix"]
    if match["hex"] is not None:
        value = int(match["hex"].replace("_", ""), 16)
        if suffix not in ("", "s"):
            return None  # 0x10K: a hex number takes no unit
    else:
        value = int(match["dec"].replace("_", ""))
    if match["sector"] and suffix == "s":
        return None
    multiplier = _multiplier(suffix, sector_size)
    if multiplier is None:
        return None
    return value * multiplier * (sector_size if match["sector"] else 1)


def is_fraction(text: str) -> bool:
    """Whether ``text`` (stripped, lower case) is a number with a fraction (``1.5M``)."""
    return bool(
        re.fullmatch(r"s?\s*\d*[.,]\d*\s*[a-z]*", text, re.ASCII)
        and re.search(r"\d", text, re.ASCII)
    )


def parse_size(text: str) -> int:
    """The number of bytes ``text`` stands for (see the module docstring)."""
    raw = text
    text = text.strip().lower()
    if not text:
        raise ValueError(f"empty size: {_HELP}")
    if text.startswith("-"):
        raise ValueError(f"invalid size {raw!r}: a size cannot be negative")
    value = read_amount(text)
    if value is not None:
        return value
    if is_fraction(text):
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
