"""The editor's backward walks and the cursor's block status over an export in more
pieces than they keep (KEEP_SPANS, MAX_SPANS): same answers, bounded lists."""

from __future__ import annotations

from nbdtui.editor import block_status, extents
from nbdtui.editor.block_status import BlockStatus, describe
from nbdtui.editor.extents import previous_data, spans_before
from nbdtui.editor.search import find
from tests.support.fakes import PAGE, MemoryExport

PAGES = 3 * 4096  # every other page holds data: 6144 data runs, 6144 holes


def _striped() -> MemoryExport:
    mem = MemoryExport(PAGES * PAGE)
    for page in range(0, PAGES, 2):
        mem.put(page * PAGE, b"\x01")
    return mem


async def test_spans_before_keeps_the_last_ones():
    mem = _striped()
    found, start = await spans_before(mem, 0, mem.size)
    assert len(found) == extents.KEEP_SPANS
    assert start == (PAGES - extents.KEEP_SPANS) * PAGE == found[0].offset
    assert found[-1].end == mem.size and not found[-1].allocated


async def test_previous_data_and_a_backward_search_walk_past_what_they_keep(monkeypatch):
    mem = _striped()
    mem.put(PAGE + 100, b"NEEDLE")  # in the first hole... now data: pages 0-1 one run
    monkeypatch.setattr(extents, "KEEP_SPANS", 64)
    assert await previous_data(mem, 2 * PAGE + 5) == 0  # the run holding the cursor
    assert await previous_data(mem, 4 * PAGE) == 0  # the run before
    assert await previous_data(mem, mem.size) == (PAGES - 2) * PAGE
    at = await find(mem, b"NEEDLE", mem.size - 1, backward=True, chunk=PAGE)
    assert at == PAGE + 100


async def test_block_status_keeps_max_spans_from_the_cursor(monkeypatch):
    monkeypatch.setattr(block_status, "MAX_SPANS", 16)
    mem = _striped()
    status = BlockStatus(mem.size)
    span = await status.load(mem, 40 * PAGE + 7)
    assert describe(span) == "data" and span.offset == 40 * PAGE
    assert describe(status.at(41 * PAGE)) == "hole"
    kept = status._windows[0]
    assert len(kept) <= 16 and kept[0].offset <= 40 * PAGE < kept[-1].end
    assert status.at(0) is None  # (dropped: asked again when the cursor goes there)
    assert describe(await status.load(mem, 0)) == "data"
