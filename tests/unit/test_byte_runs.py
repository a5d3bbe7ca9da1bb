"""Runs of differing bytes (editor/byte_runs.py) and the reading plan (editor/compare.py),
checked against a byte-by-byte reference."""

from __future__ import annotations

import random

import pytest

from nbdtui.editor.byte_runs import LEAF, RunJoiner, differing_runs
from nbdtui.editor.compare import Piece, plan


def reference_runs(a: bytes, b: bytes) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
    return runs


@pytest.mark.parametrize("seed", range(6))
def test_runs_match_byte_by_byte_reference(seed):
    rng = random.Random(seed)
    n = rng.choice([1, 100, LEAF, LEAF + 1, 3 * LEAF + 17, 70000])
    a = bytearray(rng.randbytes(n))
    b = bytearray(a)
    for _ in range(rng.randint(0, 40)):
        lo = rng.randrange(n)
        hi = min(n, lo + rng.choice([1, 2, 7, LEAF, 2 * LEAF + 3]))
        for i in range(lo, hi):
            b[i] = (a[i] + rng.randint(1, 255)) % 256  # always differs
    assert differing_runs(a, memoryview(b), 0, n) == reference_runs(a, b)


def test_runs_at_the_edges_and_across_leaves():
    n = 4 * LEAF
    a = bytes(n)
    b = bytearray(n)
    b[0] = b[n - 1] = 1
    b[LEAF - 2 : LEAF + 3] = b"\xff" * 5  # across the first leaf boundary
    assert differing_runs(a, memoryview(b), 0, n) == [
        (0, 1),
        (LEAF - 2, LEAF + 3),
        (n - 1, n),
    ]
    # A sub-range: positions stay those of the buffers.
    assert differing_runs(a, memoryview(b), 1, LEAF) == [(LEAF - 2, LEAF)]
    assert differing_runs(a, memoryview(bytes(n)), 0, n) == []


def test_dense_differences_every_other_byte():
    a = bytes(10000)
    b = bytes([0, 1]) * 5000
    runs = differing_runs(a, memoryview(b), 0, len(a))
    assert runs == [(i, i + 1) for i in range(1, 10000, 2)]


def test_joiner_joins_runs_across_pieces_and_closes_them_early():
    j = RunJoiner()
    assert j.add(0, 10, [(2, 3), (8, 10)]) == [(2, 3)]  # (8, 10) may go on
    assert j.add(10, 20, [(10, 12)]) == [(8, 12)]  # closed: byte 12 is equal
    assert j.add(20, 30, [(25, 30)]) == []
    assert j.add(40, 50, []) == [(25, 30)]  # a gap (equal range) closes it
    assert j.add(50, 60, [(55, 60)]) == []
    assert j.finish() == [(55, 60)]
    assert j.finish() == []


def test_plan_skips_zero_on_both_sides_and_reads_one_side_where_the_other_is_zero():
    zeros_a = [(0, 100), (300, 1000)]
    zeros_b = [(50, 400)]
    pieces = list(plan(zeros_a, zeros_b, 0, 1000, piece=128))
    assert pieces == [
        Piece(0, 50, False, True),  # A zero, B data
        Piece(100, 28, True, False),  # B zero, A data (cut at multiples of 128)
        Piece(128, 128, True, False),
        Piece(256, 44, True, False),
        # 300..400: zero on both sides, left out
        Piece(400, 112, False, True),
        Piece(512, 128, False, True),
        Piece(640, 128, False, True),
        Piece(768, 128, False, True),
        Piece(896, 104, False, True),
    ]


def test_plan_without_zeros_covers_the_range_in_aligned_pieces():
    pieces = list(plan([], [], 10, 300, piece=128))
    assert [(p.offset, p.length) for p in pieces] == [(10, 118), (128, 128), (256, 44)]
    assert all(p.read_a and p.read_b for p in pieces)
    assert list(plan([(0, 300)], [(0, 300)], 10, 300)) == []


def test_difference_list_navigation_and_marks():
    from nbdtui.editor.compare import Run
    from nbdtui.editor.difference_list import DifferenceList

    d = DifferenceList()
    for offset, length in [(10, 2), (100, 1), (4096, 16)]:
        d.add(Run(offset, length))
    assert [r.offset for r in (d.next_after(0), d.next_after(10), d.next_after(100))] == [
        10,
        100,
        4096,
    ]
    assert d.next_after(4096) is None
    assert d.previous_before(4096).offset == 100 and d.previous_before(10) is None
    assert 11 in d and 12 not in d and 4111 in d and 4112 not in d
    assert d.overlaps(0, 11) and not d.overlaps(0, 10) and not d.overlaps(12, 88)
    assert d.overlaps(4100, 1) and d.run_at(4100) == Run(4096, 16)
    with pytest.raises(ValueError):
        d.add(Run(4100, 1))  # out of order


def test_stage_copy_is_one_undoable_pending_edit():
    from nbdtui.editor.difference_list import stage_copy
    from nbdtui.editor.edits import PendingEdits

    edits = PendingEdits()
    stage_copy(edits, 100, b"new!", b"old!")
    assert [(r.offset, r.old, r.new) for r in edits.ranges()] == [(100, b"old", b"new")]
    edits.undo()
    assert not edits
