"""Block status in 1-byte extents against the UI, the editor, `map --context` and
`copy` (issue 13, item 2, finished): what they hold stays bounded whatever the server
reports. A real socket server plays the hostile part (``tiny_extents`` of
``tests/support/fakes.py``); the peak RSS of a small separate process is measured."""

from __future__ import annotations

import asyncio

from nbdtui.client.api import ExportOptions, OpenExport
from tests.support.cli_helpers import nbdtui_measured, python_measured
from tests.support.fakes import tiny_extents, with_allocation, with_contexts

MiB = 1024 * 1024
BITMAP = "qemu:dirty-bitmap:b0"

# What the editor and the export screen do with an export's allocation, as a program
# of its own: `]` and `[` (next_data, previous_data), the cursor's data/zero/hole
# (BlockStatus), hole skipping in a search (spans) and the allocation bar.
EDITOR = """
import asyncio, sys
import nbdtui
from nbdtui.editor.block_status import BlockStatus, describe
from nbdtui.editor.extents import next_data, previous_data, spans
from nbdtui.tui.widgets.allocation import AllocationBar, FINE_CELLS

MiB = 1 << 20

async def main(uri):
    async with nbdtui.open(uri) as export:
        print("next", await next_data(export, 0, export.size))
        print("previous", await previous_data(export, 3 * MiB + 1))
        status = BlockStatus(export.size)
        span = await status.load(export, MiB // 8 - 2)
        print("at", describe(span), describe(status.at(MiB // 8 - 1)), status.at(5))
        n = 0
        async for span in spans(export, 0, MiB // 16):
            n += 1
        print("spans", n)
        bar = AllocationBar(export.size)
        pos = 0
        while pos < MiB // 2:  # as the export screen's load_map does
            extents = await export.allocation(pos, export.size - pos)
            bar.add_extents(extents)
            pos = extents[-1].offset + extents[-1].length
        print("bar", len(bar.runs) <= FINE_CELLS, bar.mapped == pos, bar.runs[0])

asyncio.run(main(sys.argv[1]))
"""


async def test_the_editor_and_the_allocation_bar_stay_small(fake_server):
    """They asked for 1 GiB windows and kept every extent of them (a 1 MiB window of
    1-byte extents is a million spans): now the extents are taken as they come, at
    most 4096 spans are kept by a backward walk or the cursor's status, and the bar
    folds its runs (into cells of 2 KiB here, each holding data)."""
    uri = await fake_server(tiny_extents(1), handshake=with_allocation(64 * MiB))
    run = await asyncio.to_thread(python_measured, EDITOR, uri, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == [
        "next 2",
        f"previous {3 * MiB}",
        "at data hole None",  # (offset 5 is not kept: 4096 spans from the cursor's)
        f"spans {MiB // 16}",
        f"bar True True Run(offset=0, length={MiB // 2}, kind=3)",  # folded: data
    ]
    assert run.peak_rss < 100 * MiB, run.peak_rss


async def test_extents_with_a_limit_hold_the_first_ones(fake_server):
    ids: list[int] = []
    uri = await fake_server(tiny_extents(1, ids), handshake=with_contexts(64 * MiB, ids))
    options = ExportOptions(meta_contexts=(BITMAP,))
    async with OpenExport(uri, options) as export:
        found = await export.extents(10, limit=5)
        assert [(e.offset, e.length, e.flags) for e in found] == [
            (10, 1, 0),
            (11, 1, 3),
            (12, 1, 0),
            (13, 1, 3),
            (14, 1, 0),
        ]
        found = await export.context_extents(BITMAP, 7, limit=2)
        assert [(e.offset, e.length, e.flags) for e in found] == [(7, 1, 3), (8, 1, 0)]


async def test_map_of_two_contexts_in_1_byte_extents_streams(fake_server, tmp_path):
    """`map --context` kept every extent of every context before printing (a million
    for 1 MiB here); now the rows are printed as the extents come."""
    ids: list[int] = []
    uri = await fake_server(tiny_extents(1, ids), handshake=with_contexts(MiB, ids))
    args = ("map", "--context", "base:allocation", "--context", BITMAP, uri)
    run = await asyncio.to_thread(nbdtui_measured, *args, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.text.splitlines()
    assert len(lines) == MiB
    assert lines[0].split() == ["0", "1", "0", "data", "0", "clean"]
    assert lines[1].split() == ["1", "1", "3", "hole,zero", "3", "unknown", "(0x3)"]
    assert lines[-1].split()[:2] == [str(MiB - 1), "1"]
    assert run.peak_rss < 100 * MiB, run.peak_rss


async def test_copy_of_1_byte_extents_stays_small(fake_server, tmp_path):
    """`copy` kept every zero extent of the source (2 MiB of 1-byte extents: two
    million extents); now at most MAX_ZERO_RANGES, the shortest dropped (and copied)."""
    uri = await fake_server(tiny_extents(1), handshake=with_allocation(2 * MiB))
    out = tmp_path / "out.img"
    run = await asyncio.to_thread(nbdtui_measured, "copy", uri, str(out), timeout=120)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == bytes(2 * MiB)
    assert run.peak_rss < 100 * MiB, run.peak_rss


async def test_incremental_copy_of_1_byte_dirty_extents_stays_small(fake_server, tmp_path):
    """`copy --context qemu:dirty-bitmap:NAME` kept every dirty extent; now at most
    MAX_CONTEXT_RANGES, joined across ever larger gaps (more is copied, never less)."""
    ids: list[int] = []
    uri = await fake_server(tiny_extents(1, ids), handshake=with_contexts(2 * MiB, ids))
    out = tmp_path / "out.img"
    out.write_bytes(b"\xff" * 2 * MiB)
    args = ("copy", "--context", BITMAP, uri, str(out))
    run = await asyncio.to_thread(nbdtui_measured, *args, timeout=120)
    assert run.returncode == 0, run.stderr
    data = out.read_bytes()
    # every dirty byte (the odd ones: flags 3) was copied from the source's zeroes
    assert data[1::2] == bytes(MiB)
    assert run.peak_rss < 100 * MiB, run.peak_rss
