"""Row arithmetic of the hex view: sector headers, short last sectors, huge exports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbdtui.editor.layout import Row, RowLayout


def test_rows_of_a_small_export():
    lay = RowLayout(1024)
    assert lay.rows_per_sector == 33 and lay.total_rows == 66 and lay.sectors == 2
    assert lay.row(0) == Row(0, 0, 0) and lay.row(0).is_header
    assert lay.row(1) == Row(0, 0, 16)
    assert lay.row(32) == Row(0, 496, 16)
    assert lay.row(33) == Row(1, 512, 0)
    assert lay.row(65) == Row(1, 1008, 16)
    assert lay.row(66) is None and lay.row(-1) is None
    assert lay.offset_digits == 8


def test_short_last_sector_and_line():
    lay = RowLayout(512 + 20)
    assert lay.sectors == 2
    assert lay.total_rows == 33 + 1 + 2
    assert lay.row(35) == Row(1, 528, 4)


def test_one_tebibyte_and_the_largest_export():
    lay = RowLayout(1 << 40)
    assert lay.total_rows == (1 << 40) // 512 * 33
    last = lay.row(lay.total_rows - 1)
    assert last == Row((1 << 31) - 1, (1 << 40) - 16, 16)
    assert lay.offset_digits == 10  # 0xffffffffff
    big = RowLayout(2**63 - 1, 4096)
    tail = big.row(big.total_rows - 1)
    assert tail.offset + tail.length == 2**63 - 1
    assert big.row_of(2**63 - 2) == big.total_rows - 1


def test_top_for_shows_the_sector_header_when_it_fits():
    lay = RowLayout(1 << 20)
    assert lay.top_for(512 * 10 + 100, 40) == lay.header_row(10)
    # At the end, no blank rows below the last one.
    assert lay.top_for((1 << 20) - 1, 40) == lay.total_rows - 40
    # A 4096-byte sector is taller than the window: the cursor sits a third down.
    big = RowLayout(1 << 20, 4096)
    top = big.top_for(4096 + 3000, 30)
    assert top <= big.row_of(4096 + 3000) < top + 30
    with pytest.raises(ValueError):
        RowLayout(100, 500)


@given(st.integers(1, 2**63 - 1), st.sampled_from([512, 4096, 16, 65536]), st.data())
def test_row_of_and_row_agree(size, sector_size, data):
    lay = RowLayout(size, sector_size)
    offset = data.draw(st.integers(0, size - 1))
    row = lay.row(lay.row_of(offset))
    assert row is not None and not row.is_header
    assert row.offset <= offset < row.offset + row.length
    assert row.sector == offset // sector_size
