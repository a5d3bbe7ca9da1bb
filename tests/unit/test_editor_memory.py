"""The in-memory stand-in for ``nbdtui.client.api.Export`` (``tests/support/fakes.py``),
used by the UNIT tests of the editor core.

It holds sparse data (a dict of 4 KiB pages: absent pages are holes reading as zeros), so
a 1 TiB export costs nothing; it counts reads and can fail chosen reads. The functional
tests (``tests/integration/test_editor_functional.py``, ``tests/tui/``) use real servers.
"""

from __future__ import annotations

from tests.support.fakes import PAGE, MemoryExport


async def test_fake_reads_holes_as_zeros_and_maps_them():
    mem = MemoryExport(1 << 40)
    mem.put((1 << 40) - 3, b"end")
    assert await mem.read((1 << 40) - 4, 4) == b"\0end"
    extents = await mem.extents(0, 1 << 40)
    assert [(e.offset, e.length, e.flags) for e in extents] == [
        (0, (1 << 40) - PAGE, 3),
        ((1 << 40) - PAGE, PAGE, 0),
    ]
