"""The editor core against real servers with the real client (no Textual).

Search over nbdkit's memory plugin (holes skipped, matches across block boundaries),
commit and revert checked with nbdcopy, unreadable sectors read around.
"""

from __future__ import annotations

import time

import nbdtui
from nbdtui.client.pool import Pool
from nbdtui.editor.cache import read_block
from nbdtui.editor.commit import commit, revert, zero_range
from nbdtui.editor.edits import PendingEdits
from nbdtui.editor.extents import next_data, previous_data
from nbdtui.editor.journal import Journal
from nbdtui.editor.search import find
from tests.support.oracles import nbdcopy_out, nbdsh_write

TIB = 1 << 40


async def test_search_a_terabyte_memory_export(nbdkit):
    server = nbdkit("memory", "1T")
    needle = b"\x13\x37NEEDLE\x42"
    places = [65536 - 4, (1 << 30) + (1 << 20) - 1, TIB - len(needle)]
    for place in places:
        nbdsh_write(server.uri, place, needle)
    pool = Pool()
    try:
        async with nbdtui.open(server.uri, pool=pool) as export:
            began = time.monotonic()
            assert await find(export, needle, 0) == places[0]
            assert await find(export, needle, places[0] + 1) == places[1]
            assert await find(export, needle, places[1] + 1) == places[2]
            assert await find(export, needle, places[2] + 1) is None
            assert await find(export, needle, TIB - 1, backward=True) == places[2]
            assert await find(export, needle, places[2] - 1, backward=True) == places[1]
            assert await find(export, needle, places[1] - 1, backward=True) == places[0]
            assert time.monotonic() - began < 20
            # ]/[ over the same export: nbdkit allocates 32 KiB pages
            page = 32768
            assert await next_data(export, 0, export.size) == page
            second = places[1] - places[1] % page
            assert await next_data(export, page, export.size) == second
            assert await next_data(export, second, export.size) == TIB - page
            assert await previous_data(export, TIB - 1) == TIB - page
            assert await previous_data(export, TIB - page) == second
    finally:
        await pool.close()


async def test_commit_and_revert_on_a_real_server(nbdkit, tmp_path):
    server = nbdkit("memory", "1M")
    nbdsh_write(server.uri, 0, b"0123456789")
    pool = Pool()
    try:
        with Journal(tmp_path / "j.sqlite3") as journal:
            async with nbdtui.open(server.uri, pool=pool) as export:
                edits = PendingEdits()
                edits.write(2, b"AB", b"23")
                edits.set_byte(9000, 0xEE, 0)
                entry = await commit(export, edits, journal)
                data = nbdcopy_out(server.uri)
                assert data[:10] == b"01AB456789" and data[9000] == 0xEE
                assert journal.get(entry).state == "written"
                assert journal.get(entry).endpoint == server.uri
                await revert(export, journal, entry)
                data = nbdcopy_out(server.uri)
                assert data[:10] == b"0123456789" and data[9000] == 0
                zeroed = await zero_range(export, journal, 1, 3)
                assert nbdcopy_out(server.uri)[:5] == b"0\0\0\x004"
                await revert(export, journal, zeroed)
                assert nbdcopy_out(server.uri)[:5] == b"01234"
    finally:
        await pool.close()


async def test_unreadable_blocks_become_bad_sectors(nbdkit):
    server = nbdkit(
        "memory",
        "1M",
        filters=("error",),
        extra_options=("error-pread=EIO", "error-pread-rate=100%"),
    )
    pool = Pool()
    try:
        async with nbdtui.open(server.uri, pool=pool) as export:
            block = await read_block(export.read, 0, 4096, 512)
            assert sorted(block.bad) == list(range(0, 4096, 512))
            assert "EIO" in block.bad[0]
    finally:
        await pool.close()
