"""Allocation bar, editor hand-off, pool screen, help and the demo, against real servers."""

from __future__ import annotations

from textual.command import CommandList
from textual.screen import Screen
from textual.widgets import DataTable, Static

from nbdtui.tui.dialogs.confirm import ConfirmDialog
from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.tui.screens.help import HelpScreen
from nbdtui.tui.screens.pool_monitor import PoolScreen
from nbdtui.tui.screens.remote_exports import ServerScreen
from nbdtui.tui.screens.sector_editor import EditorScreen
from nbdtui.tui.widgets.allocation import DATA, HOLE, KIND_CHARS, AllocationBar, cell_range
from nbdtui.uri import parse
from tests.support.fakes import FakeExport
from tests.support.oracles import nbdinfo_json
from tests.support.pilot import option_prompts, text_of, wait_for

MIB = 1024 * 1024
SIZE = 16 * MIB


def sparse_disk(nbdkit):
    """16 MiB: 1 MiB of data at 0, 64 KiB at 8 MiB, 4 KiB at the last MiB, holes elsewhere."""
    return nbdkit(
        "data",
        "data=@0 0x55*1048576 @0x800000 0xaa*65536 @0xf00000 0x01*4096",
        f"size={SIZE}",
    )


async def open_export_screen(app, pilot, uri: str) -> ExportScreen:
    endpoint = parse(uri)
    app.open_exports(endpoint, [endpoint.export])
    await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
    screen: ExportScreen = app.screen
    bar = screen.query_one(AllocationBar)
    await wait_for(pilot, lambda: bar.mapped == screen.export.size)
    await pilot.pause()
    return screen


async def test_allocation_bar_reflects_block_status(make_app, nbdkit):
    server = sparse_disk(nbdkit)
    oracle = nbdinfo_json(server.uri_for(""), "--map")
    data = [(e["offset"], e["offset"] + e["length"]) for e in oracle if not e["type"] & 1]
    assert data  # nbdkit reports the populated pages as data, the rest as holes

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_export_screen(app, pilot, server.uri_for(""))
        bar = screen.query_one(AllocationBar)
        cells = "".join(bar.text_rows())
        assert len(cells) == bar.cell_count > 100
        for cell, char in enumerate(cells):
            start, end = cell_range(cell, bar.cell_count, SIZE)
            has_data = any(s < end and start < e for s, e in data)
            assert char == KIND_CHARS[DATA if has_data else HOLE], (cell, start, end)
        assert cells[0] == "█" and cells[-1] == "·"
        assert "·" in cells[: bar.cell_count // 2] and "█" in cells[bar.cell_count // 2 :]

        # Step through the bar: End, then Tab to the next change from the first cell.
        await pilot.press("end")
        assert bar.cursor == bar.cell_count - 1
        await pilot.press("home", "tab")
        first_hole = cells.index("·")
        assert bar.cursor == first_hole
        info = text_of(screen.query_one("#cursor-info", Static))
        start, _ = cell_range(first_hole, bar.cell_count, SIZE)
        assert f"{start:#x}" in info and "hole" in info

        # Enter opens the editor at the cursor's offset (sector aligned).
        await pilot.press("tab")  # the data at 8 MiB
        offset = screen.cursor_offset
        assert offset % 512 == 0 and 0 < offset <= 0x800000
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ExportScreen))
        editor = app.screen
        assert editor.export is screen.export
        await pilot.pause()
        view = getattr(editor, "view", None)  # the hex editor (absent: the placeholder)
        assert (view.cursor if view is not None else editor.offset) == offset
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)


async def test_click_on_the_bar_moves_the_cursor(make_app, nbdkit):
    server = sparse_disk(nbdkit)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_export_screen(app, pilot, server.uri_for(""))
        bar = screen.query_one(AllocationBar)
        await pilot.click(AllocationBar, offset=(5, 1))
        width = bar.content_size.width
        assert bar.cursor == width + 5


async def test_pool_screen_lists_the_open_connection(make_app, nbdkit):
    server = nbdkit("memory", "4M")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_export_screen(app, pilot, server.uri_for(""))
        await screen.export.read_into(0, memoryview(bytearray(MIB)))
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PoolScreen))
        pool: PoolScreen = app.screen
        table = pool.query_one("#connections", DataTable)
        await wait_for(pilot, lambda: table.row_count >= 1)
        rows = [[str(c).strip() for c in table.get_row(k)] for k in table.rows]
        endpoint, export, state, window, _, _, errors, requests, read, _ = rows[0]
        assert export == '""'
        assert endpoint == f"127.0.0.1:{server.port}"
        assert (state, errors) == ("ready", "0")
        assert window.endswith("/16")
        assert read == "1.0 MiB"
        assert int(requests) >= 2  # block status and the read

        # Bytes per second come from the counters of two refreshes.
        await screen.export.read_into(MIB, memoryview(bytearray(2 * MIB)))
        pool.refresh_stats()
        rate = str(table.get_row_at(0)[4]).strip()
        assert rate.endswith("/s") and rate != "—"
        await pilot.press("escape")
        assert app.screen is screen


async def test_help_lists_the_keys_of_the_screen_and_the_app(make_app, nbdkit):
    server = nbdkit("memory", "1M")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_export_screen(app, pilot, server.uri_for(""))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = text_of(app.screen.query_one("#help-text", Static))
        for binding in [*ExportScreen.BINDINGS, *type(app).BINDINGS]:
            assert binding.description in text
        await pilot.press("escape")
        assert app.screen is screen


async def test_the_demo_opens(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+o")
        await wait_for(
            pilot, lambda: (app.demo_uris and app.sessions) or isinstance(app.screen, ServerScreen)
        )
        assert app.demo_uris
        if isinstance(app.screen, ServerScreen):
            table = app.screen.query_one("#exports", DataTable)
            assert [k.value for k in table.rows] == list(app.demo_uris)
            await pilot.press("enter")
        await wait_for(pilot, lambda: app.sessions)
        (session,) = app.sessions.values()
        assert session.export.size > 0


class DirtyScreen(Screen):
    """Stands for any screen with unsaved work (the protocol the app asks)."""

    def has_pending_edits(self) -> bool:
        return True


async def test_quit_asks_first_when_a_screen_has_pending_edits(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(DirtyScreen())
        assert app.pending_edits() == 1
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, DirtyScreen))
        assert not app._exit
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: app._exit)


async def test_quit_without_pending_edits_exits_at_once(make_app, nbdkit):
    server = nbdkit("memory", "1M")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        # An export open but never shown (its mode has no screens yet) must not matter.
        await app.open_session(parse(server.uri_for("")))
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app._exit)
    assert app.return_code == 0


async def test_the_command_palette_offers_the_app_screens(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Connections")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PoolScreen))
        summary = text_of(app.screen.query_one("#pool-summary", Static))
        assert "0 connections" in summary and "No connection is open" in summary


async def test_the_command_palette_lists_each_command_once(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles)) and "Keys" in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Keys")
        await pilot.pause(0.5)
        shown = app.screen.query_one(CommandList)
        prompts = option_prompts(shown)
        keys = [p for p in prompts if p.startswith("Keys")]
        assert len(keys) == 1 and "(F1)" in keys[0]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        switch = [c for c in app.get_system_commands(app.screen) if c.title == "Switch export"]
        assert switch[0].help == "Go to another open export (F3)"
        # In the editor F3 finds the next match: the palette does not promise F3 there.
        editor = EditorScreen(FakeExport())
        switch = [c for c in app.get_system_commands(editor) if c.title == "Switch export"]
        assert switch[0].help == "Go to another open export"


async def test_allocation_bar_of_1_byte_extents_folds_what_it_keeps(make_app, fake_server):
    """A server reporting every byte as its own extent (a fake: no real server does):
    the bar takes one reply at a time and folds its runs into FINE_CELLS cells (it kept
    every extent of 1 GiB windows before), and still shows data everywhere."""
    from nbdtui.tui.widgets import allocation
    from tests.support.fakes import tiny_extents, with_allocation

    uri = await fake_server(tiny_extents(1), handshake=with_allocation(MIB))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_export_screen(app, pilot, uri)
        bar = screen.query_one(AllocationBar)
        assert len(bar.runs) <= allocation.FINE_CELLS
        assert set("".join(bar.text_rows())) == {KIND_CHARS[DATA]}
        assert screen.map_error is None
