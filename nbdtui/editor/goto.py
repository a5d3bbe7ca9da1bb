"""Goto expressions of the hex editor (Ctrl+G).

=================  ===================================================
``4096``           byte offset (decimal; ``_`` may separate digits)
``0x1000``         byte offset in hex
``64K`` ``1M``     suffixes K M G T P E are powers of 1024 (``64K`` = 65536);
                   fractions (``1.5M``) are refused
``s2048``          sector 2048 (of the editor's sector size); ``s0x800`` too
``+16`` ``-0x10``  relative to the cursor; ``+s1`` is one sector on
``end`` ``$``      the last byte of the export
=================  ===================================================

``parse_goto`` returns the absolute offset or raises :class:`GotoError` with a message
for the dialog to show under the input.
"""

from __future__ import annotations

import re

from nbdtui.errors import GotoError

_UNITS = "kmgtpe"
_NUMBER = re.compile(
    r"(?P<sector>s)?\s*(?:0x(?P<hex>[0-9a-f]+(?:_[0-9a-f]+)*)|(?P<dec>\d+(?:_\d+)*))"
    r"\s*(?P<suffix>[kmgtpe](?:i?b?)?)?"
)
HELP = "e.g. 4096, 0x1000, 64K, s2048, +s1, -0x10, end"


def parse_goto(text: str, *, cursor: int, size: int, sector_size: int = 512) -> int:
    """The offset ``text`` designates (see the module docstring)."""
    raw = text
    text = text.strip().lower()
    if not text:
        raise GotoError(f"type an offset: {HELP}")
    if text in ("end", "$"):
        if size == 0:
            raise GotoError("the export is empty")
        return size - 1
    sign = 0
    if text[0] in "+-":
        sign = 1 if text[0] == "+" else -1
        text = text[1:].lstrip()
    match = _NUMBER.fullmatch(text)
    if match is None:
        if re.fullmatch(r"s?\s*[\d.,]+\s*[a-z]*", text) and any(c in ".," for c in text):
            raise GotoError(f"{raw.strip()!r}: fractions are not allowed ({HELP})")
        raise GotoError(f"cannot read {raw.strip()!r} as an offset ({HELP})")
    if match["hex"] is not None:
        value = int(match["hex"].replace("_", ""), 16)
    else:
        value = int(match["dec"].replace("_", ""))
    if match["suffix"]:
        value *= 1024 ** (_UNITS.index(match["suffix"][0]) + 1)
    if match["sector"]:
        value *= sector_size
    target = cursor + sign * value if sign else value
    if target < 0:
        raise GotoError(f"{raw.strip()!r} is before the start of the export ({target})")
    if target >= size:
        where = f"{target} (0x{target:x})"
        raise GotoError(f"{where} is past the end of the export ({size} bytes)")
    return target
