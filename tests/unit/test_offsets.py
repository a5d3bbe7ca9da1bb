"""Offsets typed in the editor (goto, ranges, alignments): every form, the syntax it
shares with the command line, and the errors the dialogs show."""

from __future__ import annotations

import pytest

from nbdtui.errors import GotoError
from nbdtui.present.offsets import parse_alignment, parse_goto, parse_range
from nbdtui.present.sizes import parse_size

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


# ---- one syntax with the command line; end-N, s-N; ranges; alignments -----------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2048s", 2048 * 512),
        ("0x10s", 16 * 512),
        ("end-1", SIZE - 1),
        ("end-s1", SIZE - 512),
        ("end - 0x10", SIZE - 16),
        ("$-1K", SIZE - 1024),
        ("s-1", SIZE - 512),
        ("s-2", SIZE - 1024),
        ("-s1", 1000 - 512),
    ],
)
def test_forms_shared_with_the_command_line_and_from_the_end(text, expected):
    assert go(text) == expected


def test_the_last_sector_of_an_export_that_ends_in_a_partial_sector():
    assert go("s-1", size=1000) == 512
    assert go("end-s1", size=1000) == 1000 - 512


def test_the_command_line_reads_the_same_sectors():
    assert parse_size("s2048") == parse_size("2048s") == go("s2048") == go("2048s")
    assert parse_size("s0x10") == go("0x10s") == 8192


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("end+1", "cannot read 'end\\+1'"),
        ("end-0x0K", "cannot read"),
        ("s-0", "s-1 is the last sector"),
        ("end-2G", "before the start"),
        ("s-9999999", "before the start"),
    ],
)
def test_end_forms_errors(text, message):
    with pytest.raises(GotoError, match=message):
        go(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s2+s1", (1024, 512)),
        ("0x200..0x3ff", (512, 512)),
        ("end-s1+512", (SIZE - 512, 512)),
        ("+0..+15", (1000, 16)),
    ],
)
def test_ranges(text, expected):
    assert parse_range(text, cursor=1000, size=SIZE) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0x200", "type a range"),
        ("5..2", "the end comes before the start"),
        ("0+0", "the length is zero"),
        ("end-1+2", "ends past the end"),
    ],
)
def test_range_errors(text, message):
    with pytest.raises(GotoError, match=message):
        parse_range(text, cursor=0, size=SIZE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("0x438 mod 1024", (1024, 0x38)),
        ("0x438 % 1K", (1024, 0x38)),
        ("s1", (512, 0)),
        ("4096", (4096, 0)),
    ],
)
def test_alignments(text, expected):
    assert parse_alignment(text) == expected


def test_alignment_errors():
    with pytest.raises(GotoError, match="at least 1 byte"):
        parse_alignment("0 mod 0")
    with pytest.raises(GotoError, match="cannot read"):
        parse_alignment("mod 4")
