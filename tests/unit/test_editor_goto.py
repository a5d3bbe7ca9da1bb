"""Goto expressions: every form, and the errors the dialog shows."""

from __future__ import annotations

import pytest

from nbdtui.editor.goto import parse_goto
from nbdtui.errors import GotoError

SIZE = 1 << 30


def go(text: str, cursor: int = 1000, size: int = SIZE, sector_size: int = 512) -> int:
    return parse_goto(text, cursor=cursor, size=size, sector_size=sector_size)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("4096", 4096),
        ("1_048_576", 1 << 20),
        ("0x1000", 4096),
        ("0X1fe", 0x1FE),
        ("0x3fff_0000", 0x3FFF0000),
        ("64K", 65536),
        ("64k", 65536),
        ("1M", 1 << 20),
        ("2 MiB", 2 << 20),
        ("1023m", 1023 << 20),
        ("s0", 0),
        ("s1", 512),
        ("s2048", 2048 * 512),
        ("S0x10", 16 * 512),
        ("s 4K", 4096 * 512),
        ("+16", 1016),
        ("-0x10", 984),
        ("+s1", 1512),
        ("- 1000", 0),
        ("  123  ", 123),
        ("end", SIZE - 1),
        ("$", SIZE - 1),
    ],
)
def test_forms(text, expected):
    assert go(text) == expected


def test_sector_uses_the_editor_sector_size():
    assert go("s3", sector_size=4096) == 3 * 4096
    assert go("+s1", cursor=0, sector_size=4096) == 4096


def test_huge_exports_are_exact():
    size = 2**63 - 1
    assert go("end", size=size) == size - 1
    assert go("0x7ffffffffffffffe", size=size) == size - 1
    assert go("s1", size=size) == 512


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "type an offset"),
        ("   ", "type an offset"),
        ("abc", "cannot read 'abc'"),
        ("0xZZ", "cannot read"),
        ("12Q", "cannot read"),
        ("1.5M", "fractions"),
        ("s", "cannot read"),
        ("-2000", "before the start"),
        ("1073741824", "past the end of the export (1073741824 bytes)"),
        ("+1G", "past the end"),
        ("s2097152", "past the end"),
    ],
)
def test_errors_are_one_line_messages(text, message):
    with pytest.raises(GotoError, match=message.replace("(", r"\(").replace(")", r"\)")):
        go(text)


def test_empty_export_has_nowhere_to_go():
    with pytest.raises(GotoError, match="empty"):
        go("end", size=0)
    with pytest.raises(GotoError, match="past the end"):
        go("0", size=0)
