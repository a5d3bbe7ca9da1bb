"""The allocation bar's arithmetic: cells cover every byte once; data is never hidden."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nbdtui.client.export import Extent
from nbdtui.tui.widgets.allocation import (
    DATA,
    HOLE,
    UNMAPPED,
    ZERO,
    AllocationBar,
    Run,
    cell_range,
    classify,
)


def test_strongest_kind_wins_within_a_cell():
    runs = [Run(0, 100, HOLE), Run(100, 1, DATA), Run(101, 99, HOLE), Run(200, 200, ZERO)]
    assert classify(runs, 400, 4) == [HOLE, DATA, ZERO, ZERO]
    assert classify(runs[:2], 400, 4) == [HOLE, DATA, UNMAPPED, UNMAPPED]
    assert classify([Run(99, 1, DATA)], 400, 4) == [DATA, UNMAPPED, UNMAPPED, UNMAPPED]


def test_more_cells_than_bytes():
    assert classify([Run(0, 1, DATA), Run(1, 2, HOLE)], 3, 6) == [DATA] * 2 + [HOLE] * 4
    assert [cell_range(c, 6, 3) for c in range(6)] == [
        (0, 1),
        (0, 1),
        (1, 2),
        (1, 2),
        (2, 3),
        (2, 3),
    ]


@given(
    size=st.integers(1, 5000),
    cells=st.integers(1, 300),
    runs=st.lists(
        st.tuples(st.integers(0, 5000), st.integers(1, 2000), st.sampled_from([1, 2, 3]))
    ),
)
def test_classify_matches_overlap_by_brute_force(size, cells, runs):
    runs = [Run(offset, length, kind) for offset, length, kind in runs]
    expected = []
    for cell in range(cells):
        start, end = cell_range(cell, cells, size)
        kinds = [r.kind for r in runs if r.offset < end and start < r.offset + r.length]
        expected.append(max(kinds, default=UNMAPPED))
    assert classify(runs, size, cells) == expected


@given(size=st.integers(1, 1 << 50), cells=st.integers(1, 5000))
def test_cells_tile_the_export(size, cells):
    assert cell_range(0, cells, size)[0] == 0
    assert cell_range(cells - 1, cells, size)[1] == size
    for cell in (cells // 3, cells // 2, cells - 2):
        if 0 <= cell < cells - 1:
            start, end = cell_range(cell, cells, size)
            assert 0 <= start < end <= size
            assert cell_range(cell + 1, cells, size)[0] in (start, end)


@st.composite
def extents(draw):
    size = draw(st.integers(1, 1 << 40))
    cuts = sorted(set(draw(st.lists(st.integers(1, size - 1), max_size=30)) if size > 1 else []))
    bounds = [0, *cuts, size]
    flags = draw(
        st.lists(st.sampled_from([0, 1, 2, 3]), min_size=len(bounds) - 1, max_size=len(bounds) - 1)
    )
    return size, [
        Extent(a, b - a, f) for a, b, f in zip(bounds[:-1], bounds[1:], flags, strict=True)
    ]


@given(extents(), st.integers(1, 3000), st.integers(1, 5))
def test_adding_extents_piece_by_piece_equals_classifying_them_at_once(data, cells, pieces):
    size, exts = data
    bar = AllocationBar(size)
    bar._cells = [UNMAPPED] * cells  # as after a first render at this size
    step = max(1, len(exts) // pieces)
    for i in range(0, len(exts), step):
        bar.add_extents(exts[i : i + step])
    full = classify(bar.runs, size, cells)
    assert bar._cells == full
    for cell, kind in enumerate(full):
        start, end = cell_range(cell, cells, size)
        overlapping = [e for e in exts if e.offset < end and start < e.offset + e.length]
        if any(not e.hole and not e.zero for e in overlapping):
            assert kind == DATA
    assert bar.mapped == size


def test_runs_past_max_runs_fold_into_fine_cells(monkeypatch):
    """A server reporting 1-byte extents: the bar keeps at most FINE_CELLS runs, and a
    bar of fewer cells (here dividing the fine ones) shows what it showed before."""
    from nbdtui.tui.widgets import allocation

    monkeypatch.setattr(allocation, "MAX_RUNS", 100)
    monkeypatch.setattr(allocation, "FINE_CELLS", 64)
    size = 64 * 50
    tiny = [Extent(i, 1, 3 if (i // 7) % 2 else 0) for i in range(size)]
    tiny[size // 2 :] = [Extent(i, 1, 3) for i in range(size // 2, size)]  # holes after
    bar = AllocationBar(size)
    for i in range(0, size * 3 // 4, 10):  # three quarters mapped, ten at a time
        bar.add_extents(tiny[i : i + 10])
        assert len(bar.runs) <= 100 + 10
    assert bar.mapped == size * 3 // 4
    mapped = [r for r in bar.runs if r.offset + r.length <= bar.mapped]
    assert mapped == bar.runs  # nothing past what is mapped
    exact = [allocation.Run(e.offset, e.length, allocation.extent_kind(e)) for e in tiny]
    exact = exact[: size * 3 // 4]
    assert classify(bar.runs, size, 16) == classify(exact, size, 16)
    assert classify(bar.runs, size, 16)[:8] == [DATA] * 8
    assert classify(bar.runs, size, 16)[8:12] == [HOLE] * 4
    assert classify(bar.runs, size, 16)[12:] == [UNMAPPED] * 4
