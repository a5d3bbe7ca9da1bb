"""The ways the editor copies bytes to the clipboard (Ctrl+C, ``y`` "copy as")."""

from __future__ import annotations

from collections.abc import Callable

PER_LINE = 12  # bytes per line of a C array


def as_hex(data: bytes) -> str:
    """``45 46 49``."""
    return data.hex(" ")


def as_text(data: bytes) -> str:
    """Printable ASCII as is, every other byte as ``.`` (what the text pane shows)."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)


def as_c_array(data: bytes, name: str = "data", offset: int | None = None) -> str:
    """``unsigned char data[3] = { 0x45, 0x46, 0x49 };``, twelve bytes a line, with the
    offset the bytes come from in a comment."""
    lines = []
    if offset is not None:
        lines.append(f"/* {len(data)} bytes from offset 0x{offset:x} */")
    lines.append(f"unsigned char {name}[{len(data)}] = {{")
    for i in range(0, len(data), PER_LINE):
        piece = data[i : i + PER_LINE]
        comma = "," if i + PER_LINE < len(data) else ""
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in piece) + comma)
    lines.append("};")
    return "\n".join(lines) + "\n"


# (key, label, formatter(data, offset)) in the order "copy as" offers them.
FORMATS: tuple[tuple[str, str, Callable[[bytes, int], str]], ...] = (
    ("hex", "hex bytes (45 46 49)", lambda data, offset: as_hex(data)),
    ("text", "raw text, . for other bytes (EFI)", lambda data, offset: as_text(data)),
    ("c", "C array (unsigned char data[] = { 0x45, … })", lambda d, o: as_c_array(d, offset=o)),
)


def render(kind: str, data: bytes, offset: int) -> str:
    """``data`` (read at ``offset``) in the format ``kind`` (``hex``, ``text`` or ``c``)."""
    for key, _label, formatter in FORMATS:
        if key == kind:
            return formatter(data, offset)
    raise ValueError(f"unknown copy format {kind!r}")
