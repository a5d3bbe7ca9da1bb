"""The inspector's lines beside the hex view (narrow) and below it (wide)."""

from __future__ import annotations

import uuid

from nbdtui.disk.inspect import inspect
from nbdtui.editor.inspector_layout import inspector_lines

ESP = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").bytes_le


def test_wide_pairs_short_fields_and_aligns_their_values():
    lines = inspector_lines(inspect(bytes.fromhex("55aa") + bytes(14)), 78)
    assert lines[0] == f"{'u8          85 0x55':<38}  i8          85"
    assert lines[1] == f"{'u16 LE      43605 0xaa55':<38}  u16 BE      21930 0x55aa"
    assert "u64 BE      6172746239264686080 0x55aa000000000000" in lines  # too long: alone
    assert "DOS date/time  invalid" in lines  # a long name: its own width
    assert lines[-1] == "GPT type    unknown"
    assert all(len(line) <= 78 for line in lines)


def test_narrow_puts_long_values_on_their_own_line():
    lines = inspector_lines(inspect(ESP), 30)
    assert lines[lines.index("GUID") + 1] == "  C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert lines[lines.index("u32 LE") + 1] == "  3240784680 0xc12a7328"
    assert "u16 LE           29480 0x7328" in lines
    assert lines[-1] == "GPT type         EFI System"
    assert inspector_lines([], 30) == []
