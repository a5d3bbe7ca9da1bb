"""The inspector's rows as lines of text for a panel ``room`` columns wide.

Beside the hex view (narrow): one field a line, a long value on a line of its own.
Below it (60 columns or more): two fields a line when both fit, the names of the short
ones (``u16 LE``, ``float32 BE``) in one column so that the values line up, long names
(``UNIX time u32 LE``) and long values alone on their line. Unsigned integers of 10 and
more show their hex value too (``43605 0xaa55``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nbdtui.disk.inspect import Field

WIDE = 60  # columns from which two fields share a line
SHORT_NAME = 10  # "float32 LE": names up to this long share the name column when wide


def shown_value(field: Field) -> str:
    if field.number is None or field.number < 10:
        return field.value
    return f"{field.value} 0x{field.number:x}"


def inspector_lines(
    fields: Sequence[Field], room: int, width: Callable[[str], int] = len
) -> list[str]:
    """The lines of ``fields`` for ``room`` columns (``width`` measures a string's cells)."""
    if not fields:
        return []
    half = (room - 2) // 2 if room >= WIDE else 0
    lengths = [len(f.name) for f in fields]
    if half:
        lengths = [n for n in lengths if n <= SHORT_NAME] or lengths
    names = min(max(lengths), room // 2)
    lines: list[str] = []
    pending = ""  # a short field waiting for a second one on its line
    for f in fields:
        value = shown_value(f)
        row = f"{f.name:<{names}}  {value}"
        if half and width(row) <= half:
            if pending:
                lines.append(f"{pending}{' ' * (half - width(pending))}  {row}")
                pending = ""
            else:
                pending = row
            continue
        if pending:
            lines.append(pending)
            pending = ""
        if width(row) <= room:
            lines.append(row)
        else:  # a long value goes on a line of its own
            lines += [f.name, f"  {value}"]
    if pending:
        lines.append(pending)
    return lines
