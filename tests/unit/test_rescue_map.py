"""The ddrescue mapfile: parsing, marking, writing, and the errors of a torn or foreign
map (ddrescuelog itself checks nbdtui's maps in tests/integration/test_cli_rescue.py)."""

from __future__ import annotations

import os

import pytest

from nbdtui.cli.rescue_map import RescueMap, load
from nbdtui.errors import UsageError

DDRESCUE_MAP = """\
# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue /dev/sdb disk.img disk.map
# Start time:   2024-01-01 10:00:00
# current_pos  current_status  current_pass
0x00200000     *               2
#      pos        size  status
0x00000000  0x00100000  +
0x00100000  0x00000200  -
0x00100200  0x0000FE00  /
0x00110000  0x00010000  *
0x00120000  0x00010000  +
"""


def test_parse_a_ddrescue_map_and_write_it_back():
    m = RescueMap.parse(DDRESCUE_MAP, 0x200000, "disk.map")
    assert list(m.blocks()) == [
        (0, 0x100000, "+"),
        (0x100000, 0x100200, "-"),
        (0x100200, 0x110000, "/"),
        (0x110000, 0x120000, "*"),
        (0x120000, 0x130000, "+"),
        (0x130000, 0x200000, "?"),  # past the map's last block: not tried
    ]
    assert (m.position, m.phase, m.pass_) == (0x200000, "*", 2)
    again = RescueMap.parse(m.text("cmd"), 0x200000, "again")
    assert list(again.blocks()) == list(m.blocks())
    assert m.ranges("-*/?", 0x100100, 0x180000) == [(0x100100, 0x120000), (0x130000, 0x180000)]
    assert m.total("+") == 0x110000


def test_mark_splits_and_merges():
    m = RescueMap(100)
    m.mark(10, 20, "+")
    m.mark(30, 40, "+")
    m.mark(20, 30, "+")
    assert list(m.blocks()) == [(0, 10, "?"), (10, 40, "+"), (40, 100, "?")]
    m.mark(15, 16, "-")
    m.mark(0, 10, "+")
    m.mark(90, 100, "-")
    assert list(m.blocks()) == [
        (0, 15, "+"),
        (15, 16, "-"),
        (16, 40, "+"),
        (40, 90, "?"),
        (90, 100, "-"),
    ]
    m.mark(0, 100, "+")
    assert list(m.blocks()) == [(0, 100, "+")]


def test_old_format_without_pass_and_decimal_numbers():
    m = RescueMap.parse("1024 ?\n0 1024 +\n1024 1024 -\n", 4096, "m")
    assert list(m.blocks()) == [(0, 1024, "+"), (1024, 2048, "-"), (2048, 4096, "?")]
    assert m.pass_ == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no current position line"),
        ("hello world\n", "not a ddrescue mapfile"),
        ("0x0 ?\n0x0 0x100 +\n0x200 0x100 -\n", "does not start where the one before ended"),
        ("0x0 ?\n0x0 0x100 +\n0x100 0x1", "line 3: expected 'POS SIZE STATUS'"),  # torn
        ("0x0 ?\n0x0 0x100 x\n", "status one of"),
        ("0x0 ?\n0x0 zz +\n", "'zz' is not a number"),
        ("0x0 ?\n0x0 0x0 +\n", "size 0"),
        ("0x0 ?\n0x0 0x100000 +\n", "map of a larger device"),
    ],
)
def test_torn_or_foreign_maps_are_refused(text, needle):
    with pytest.raises(UsageError, match=needle) as info:
        RescueMap.parse(text, 4096, "disk.map")
    assert "\n" not in str(info.value)


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "disk.map"
    m = RescueMap(1 << 20)
    m.mark(0, 4096, "+")
    m.save(str(path), "nbdtui copy x y")
    path.write_text(path.read_text())  # (a regular file, replaced by the next save)
    inode = os.stat(path).st_ino
    m.mark(4096, 8192, "-")
    m.save(str(path))
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one
    assert os.listdir(tmp_path) == ["disk.map"]
    loaded = load(str(path), 1 << 20)
    assert loaded is not None
    assert list(loaded.blocks()) == [(0, 4096, "+"), (4096, 8192, "-"), (8192, 1 << 20, "?")]
    assert load(str(tmp_path / "none.map"), 10) is None
    (tmp_path / "binary.map").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not text"):
        load(str(tmp_path / "binary.map"), 10)
