"""The range arithmetic of `nbdtui copy` (what to read, what to zero), a file's holes,
and the side-by-side rows of `map --context`."""

from __future__ import annotations

import os

from nbdtui.cli.context_map import describe, side_by_side
from nbdtui.cli.copy_sides import _holes, merge, subtract
from nbdtui.client.export import Extent


def test_merge_and_subtract():
    assert merge([(5, 7), (0, 2), (2, 3), (6, 9), (10, 10)]) == [(0, 3), (5, 9)]
    assert subtract([(0, 100)], [(10, 20), (30, 40)]) == [(0, 10), (20, 30), (40, 100)]
    assert subtract([(0, 10), (20, 30)], [(5, 25)]) == [(0, 5), (25, 30)]
    assert subtract([(0, 10)], [(0, 10)]) == []
    assert subtract([(0, 10)], []) == [(0, 10)]
    assert subtract([(10, 20)], [(0, 5), (25, 30)]) == [(10, 20)]


def test_holes_of_a_sparse_file(tmp_path):
    path = tmp_path / "sparse.img"
    block = 1 << 20
    with open(path, "wb") as f:
        f.truncate(8 * block)
        f.seek(2 * block)
        f.write(b"x" * block)
    fd = os.open(path, os.O_RDONLY)
    try:
        holes = _holes(fd, 0, 10 * block)  # past the end of the file reads as zero too
        assert holes == [(0, 2 * block), (3 * block, 10 * block)]
        assert _holes(fd, 2 * block + 5, 3 * block) == []
    finally:
        os.close(fd)


def test_side_by_side_cuts_where_any_context_changes():
    a = [Extent(0, 10, 0), Extent(10, 30, 3)]
    b = [Extent(0, 5, 1), Extent(5, 20, 0), Extent(25, 15, 1)]
    assert side_by_side([a, b]) == [
        (0, 5, [0, 1]),
        (5, 5, [0, 0]),
        (10, 15, [3, 0]),
        (25, 15, [3, 1]),
    ]
    assert describe("qemu:dirty-bitmap:x", 1) == "dirty"
    assert describe("qemu:allocation-depth", 3) == "backing depth 3"
    assert describe("base:allocation", 3) == "hole,zero"
