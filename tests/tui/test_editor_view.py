"""Pilot tests of the hex editor against real servers: size, navigation, goto, search,
inspector, partition overlay, block-status jumps.

The harness (:class:`EditorHarness`, ``settle``, ``press``...) is in ``tests/support/pilot.py``.
"""

from __future__ import annotations

import time

from textual import events
from textual.widgets import Input, Label, OptionList, Static

from nbdtui.disk.demo_image import HELLO_OFFSET
from tests.support.oracles import nbdsh_write
from tests.support.pilot import EditorHarness, notes, option_prompts, press, rows, settle, status

TIB = 1 << 40


# ---- size ---------------------------------------------------------------------------


async def test_end_jumps_to_the_last_sector_of_a_terabyte(nbdkit):
    server = nbdkit("memory", "1T")
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 44)) as pilot:
        await settle(pilot)
        began = time.monotonic()
        await press(pilot, "end")
        assert time.monotonic() - began < 3
        view = app.editor.view
        assert view.cursor == TIB - 1
        shown = rows(app)
        assert any(r.startswith("── sector 2147483647 ── 0xfffffffe00") for r in shown)
        assert shown[-1].startswith("fffffffff0  00 00 00")
        assert "sector 2147483647" in status(app)
        # Bounded memory: only the blocks on screen were read.
        assert len(view.cache) <= 2
        await press(pilot, "home")
        assert view.cursor == 0 and rows(app)[0].startswith("── sector 0 ── 0x0 ")


async def test_fetches_show_placeholders_then_bytes(nbdkit):
    """A slow server: the rows show ┄┄ (not a hole's ·) until the block lands."""
    server = nbdkit("pattern", "1G", filters=("delay",), extra_options=("rdelay=1",))
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        assert "┄┄" in rows(app)[1] and "·" not in rows(app)[1] and "loading" in status(app)
        await settle(pilot)
        # nbdkit's pattern plugin: each 8-byte word holds its own offset, big-endian.
        assert rows(app)[1].startswith("00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 08")


# ---- navigation and goto ------------------------------------------------------------


async def test_arrows_pages_tab_and_goto(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        view = app.editor.view
        await press(pilot, "right", "right", "down")
        assert view.cursor == 18
        await press(pilot, "pagedown")
        assert view.cursor == 512 + 18
        assert rows(app)[0].startswith("── sector 1 ── 0x200 ")
        assert "EFI PART" in rows(app)[1]
        await press(pilot, "pageup", "left")
        assert view.cursor == 17
        await press(pilot, "tab")
        assert view.pane == "text"
        await press(pilot, "ctrl+g")
        await pilot.press(*"s2048", "enter")
        await settle(pilot)
        assert view.cursor == 2048 * 512
        assert rows(app)[0].startswith("── sector 2048 ── 0x100000 ── start of p1 EFI System")
        assert "p1 EFI System Partition" in status(app)
        await press(pilot, "ctrl+g")
        await pilot.press(*"+0x10", "enter")
        await settle(pilot)
        assert view.cursor == 2048 * 512 + 16


async def test_goto_errors_stay_in_the_dialog(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "ctrl+g")
        await pilot.press(*"0xZZ", "enter")
        await pilot.pause()
        error = app.screen.query_one("#goto-error", Label)
        assert "cannot read '0xZZ'" in str(error.render())
        field = app.screen.query_one(Input)
        field.value = ""
        await pilot.press(*"1G", "enter")
        await pilot.pause()
        assert "past the end of the export (67108864 bytes)" in str(error.render())
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is app.editor and app.editor.view.cursor == 0


async def test_block_status_jumps_between_data_extents(nbdkit):
    server = nbdkit("memory", "4G")
    nbdsh_write(server.uri, 1 << 30, b"data")
    nbdsh_write(server.uri, 3 << 30, b"more")
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        await press(pilot, "right_square_bracket")
        assert view.cursor == 1 << 30
        assert "64 61 74 61" in rows(app)[1]
        await press(pilot, "right_square_bracket")
        assert view.cursor == 3 << 30
        await press(pilot, "right_square_bracket")
        assert view.cursor == 3 << 30 and "No allocated data after" in notes(app)[-1]
        await press(pilot, "left_square_bracket")
        assert view.cursor == 1 << 30


# ---- search -------------------------------------------------------------------------


async def test_search_forward_backward_and_repeat(demo_uri, demo_image):
    size = demo_image.stat().st_size
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        view = app.editor.view
        await press(pilot, "slash")
        await pilot.press(*'"EFI PART"', "enter")
        await settle(pilot)
        assert view.cursor == 512 and view.selection == (512, 519)
        await press(pilot, "n")  # the backup GPT header, in the last sector
        assert view.cursor == size - 512
        assert any(r.startswith("── sector 131071 ") for r in rows(app))
        await press(pilot, "N")
        assert view.cursor == 512
        await press(pilot, "question_mark")
        app.screen.query_one(Input).value = "Edit me"  # not hex: text, no quotes needed
        await pilot.press("enter")
        await settle(pilot)
        assert view.cursor == 512
        assert notes(app)[-1] == 'Not found before 0x200: text "Edit me" (7 bytes).'
        await press(pilot, "end", "question_mark")
        await pilot.press("enter")
        await settle(pilot)
        data = demo_image.read_bytes()
        assert view.cursor == data.rfind(b"Edit me")
        assert view.cursor >= HELLO_OFFSET


async def test_search_finds_a_match_across_a_block_boundary(nbdkit):
    server = nbdkit("memory", "1T")
    needle = bytes.fromhex("deadbeefcafe")
    nbdsh_write(server.uri, (1 << 39) - 3, needle)  # astride 64 KiB blocks and 1 MiB chunks
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        began = time.monotonic()
        await press(pilot, "slash")
        await pilot.press(*"de ad be ef ca fe", "enter")
        await settle(pilot)
        assert app.editor.view.cursor == (1 << 39) - 3
        assert time.monotonic() - began < 10  # holes are skipped, not read


async def test_escape_stops_a_running_search(nbdkit):
    server = nbdkit("pattern", "1T")  # all data: a search for a missing pattern never ends
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "slash")
        await pilot.press(*'"not in there"', "enter")
        await pilot.pause(0.5)
        assert "searching" in status(app) and "Esc stops" in status(app)
        await pilot.press("escape")
        await settle(pilot)
        assert "searching" not in status(app)
        assert "Search stopped." in notes(app)
        assert app.editor.view.cursor == 0 and not app.closed


# ---- inspector and partitions ---------------------------------------------------------


async def test_inspector_decodes_the_bytes_at_the_cursor(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "i", "ctrl+g")
        await pilot.press(*"0x1fe", "enter")
        await settle(pilot)
        text = str(app.editor.query_one("#inspector-fields", Static).render())
        assert "at 0x1fe" in text
        assert [line.split()[2:] for line in text.splitlines() if line.startswith("u16 LE")] == [
            [str(0xAA55), "0xaa55"]  # decimal and hex
        ]
        await press(pilot, "i")
        assert not app.editor.query_one("#inspector").has_class("shown")


async def test_partition_overlay_lists_and_jumps(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "p")
        options = app.screen.query_one(OptionList)
        labels = option_prompts(options)
        assert len(labels) == 4 and "Linux filesystem" in labels[1]
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.screen is app.editor
        assert app.editor.view.cursor == 69632 * 512
        assert "start of p2 nbdtui-root" in rows(app)[0]


async def test_gpt_problems_are_listed(tmp_path, qemu_nbd, demo_image):
    """A corrupted primary GPT header: the overlay says so (CRC mismatch)."""
    data = bytearray(demo_image.read_bytes())
    data[512 + 24] ^= 0xFF  # my_lba of the primary header: its CRC no longer matches
    demo_image.write_bytes(bytes(data))
    app = EditorHarness(qemu_nbd(demo_image, unix=True).uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "p")
        problems = [str(w.render()) for w in app.screen.query(".problem")]
        assert problems and any("CRC" in p for p in problems)


async def test_unreadable_sectors_are_marked_not_hidden(nbdkit):
    """Every read fails with EIO: the view shows !! and says why, and nothing crashes."""
    server = nbdkit(
        "memory",
        "1M",
        filters=("error",),
        extra_options=("error-pread=EIO", "error-pread-rate=100%"),
    )
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert rows(app)[1].startswith("00000000  !! !! !! !!")
        assert "UNREADABLE sector" in status(app) and "EIO" in status(app)
        await press(pilot, "e", "y", "4")
        assert not app.editor.has_pending_edits()
        assert "unreadable: nothing typed" in notes(app)[-1]


async def test_latest_request_wins_on_a_slow_server(nbdkit):
    """Jump to the end and straight back: the fetch for the end is dropped, the view
    shows the start without waiting for it."""
    server = nbdkit("pattern", "1T", filters=("delay",), extra_options=("rdelay=2",))
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        await pilot.press("end")
        await pilot.pause(0.2)
        assert view.in_flight == {(TIB - 1) // view.cache.block_size}
        await pilot.press("home")
        await settle(pilot)
        assert (TIB - 1) // view.cache.block_size not in view.cache
        assert rows(app)[2].startswith("0000000010  00 00 00 00 00 00 00 10")


async def test_the_cache_stays_bounded_while_jumping_around(nbdkit):
    server = nbdkit("pattern", "1T")
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        for i in range(100):
            app.editor.goto(i * 7 * (1 << 30))
            await settle(pilot)
            assert len(view.cache) <= view.cache.capacity
        offset = 99 * 7 * (1 << 30)  # nbdkit's pattern: each 8-byte word is its offset
        assert rows(app)[1].startswith(f"{offset:010x}  {offset.to_bytes(8, 'big').hex(' ')}")


async def test_mouse_click_and_wheel(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        view = app.editor.view
        # Row 2 is 0x10; the hex cell of byte 5 starts at 8 + 2 + 3 * 5.
        await pilot.click(view, offset=(8 + 2 + 15, 2))
        await settle(pilot)
        assert view.cursor == 0x15 and view.pane == "hex"
        await pilot.click(view, offset=(8 + 2 + 49 + 1 + 3, 3))  # text cell of byte 3
        await settle(pilot)
        assert view.cursor == 0x23 and view.pane == "text"
        view.post_message(events.MouseScrollDown(view, 5, 5, 0, 1, 0, False, False, False))
        await settle(pilot)
        assert view.top == 3 and view.cursor == 0x23
        # The position column: a click halfway down jumps halfway into the export.
        await pilot.click(view, offset=(view.size.width - 1, view.size.height // 2))
        await settle(pilot)
        total = view.layout_rows.total_rows
        assert abs(view.top - total // 2) < total // view.size.height


async def test_sector_size_follows_the_request(nbdkit):
    """Ctrl+T: 512 -> 4096 -> the server's minimum block (here 1024) -> 512."""
    server = nbdkit(
        "memory",
        "1M",
        filters=("blocksize-policy",),
        extra_options=(
            "blocksize-minimum=1024",
            "blocksize-preferred=4096",
            "blocksize-maximum=65536",
        ),
    )
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.export.info.block_minimum == 1024
        await press(pilot, "pagedown")
        assert app.editor.view.cursor == 512
        await press(pilot, "ctrl+t")
        assert app.editor.view.sector_size == 4096
        await press(pilot, "pagedown")
        assert app.editor.view.cursor == 4096 + 512
        assert "sector 1" in status(app)
        assert any(r.startswith("00001200  ") for r in rows(app))
        await press(pilot, "ctrl+t")
        assert app.editor.view.sector_size == 1024 and "sector 4" in status(app)
        await press(pilot, "ctrl+t")
        assert app.editor.view.sector_size == 512
