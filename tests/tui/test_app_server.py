"""Server screen and export screen against real servers, checked against nbdinfo."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, OptionList, Static

from nbdtui.tui.dialogs.switcher import SwitcherScreen
from nbdtui.tui.screens.connect import ConnectScreen
from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.tui.screens.remote_exports import ServerScreen
from nbdtui.tui.screens.sector_editor import EditorScreen
from tests.support.oracles import nbdinfo_json
from tests.support.pilot import option_prompts, text_of, wait_for
from tests.support.servers import only_exports

MIB = 1024 * 1024


def table_rows(table: DataTable) -> dict[str, list[str]]:
    """name -> [size, bytes, read-only, description] as shown."""
    rows = {}
    for row_key in table.rows:
        cells = [str(c).strip() for c in table.get_row(row_key)]
        rows[row_key.value] = cells[2:5] + cells[6:]
    return rows


def open_column(table: DataTable) -> dict[str, str]:
    """name -> the "Open" cell as shown."""
    return {key.value: str(table.get_cell(key, "open")) for key in table.rows}


async def open_server(app, pilot) -> ServerScreen:
    await wait_for(
        pilot,
        lambda: (
            isinstance(app.screen, ServerScreen)
            and app.screen.query_one("#exports", DataTable).row_count > 0
        ),
    )
    return app.screen


async def open_switcher(app, pilot) -> OptionList:
    """The switcher (by its action: F3 finds the next match in the editor); its list."""
    await app.run_action("exports")
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, SwitcherScreen) and app.screen.query(OptionList),
    )
    return app.screen.query_one(OptionList)


async def test_server_with_several_exports_lists_each(make_app, nbd_server, tmp_path):
    server = nbd_server(
        {
            "alpha": {"size": MIB},
            "beta": {"size": 3 * MIB, "readonly": True},
            "gamma": {"size": 64 * 1024},
        }
    )
    listed = [e["export-name"] for e in nbdinfo_json(server.uri_for(""), "--list")["exports"]]
    assert sorted(listed) == ["alpha", "beta", "gamma"]
    oracle = {e["export-name"]: e for e in nbdinfo_json(server.uri_for(""), "--list")["exports"]}
    # nbd-server answers NBD_OPT_INFO with size 0 (nbdinfo shows 0): the files are the truth.
    sizes = {name: path.stat().st_size for name, path in server.files.items()}

    app = make_app(server.uri_for(""))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_server(app, pilot)
        rows = table_rows(screen.query_one("#exports", DataTable))
        assert set(rows) == set(oracle)
        for name, (_, size, read_only, _) in rows.items():
            assert int(size) == sizes[name]
            assert read_only == ("yes" if oracle[name]["is_read_only"] else "no")
        summary = text_of(screen.query_one("#server-summary", Static))
        assert "3 exports" in summary and "newstyle-fixed" in summary

        # Open the read-only one: its export screen shows the right size and flags.
        table = screen.query_one("#exports", DataTable)
        table.move_cursor(row=table.get_row_index("beta"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
        details = text_of(app.screen.query_one("#details", Static))
        assert "3.0 MiB (3,145,728 bytes)" in details
        assert "Read-only      yes" in details
        assert "nbd://127.0.0.1:" in details and "/beta" in details
        assert app.screen.export.info.read_only

        # Escape goes back to the server list; the export stays open.
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ServerScreen)
        assert len(app.sessions) == 1


async def test_nbdkit_exportname_filter_and_opening_several(make_app, nbdkit):
    server = nbdkit(
        "memory",
        "2M",
        filters=("exportname",),
        extra_options=(
            "exportname=first",
            "exportname=second",
            "exportname=third",
            "exportname-list=explicit",
            "exportdesc=fixed:scratch disk",
        ),
    )
    oracle = nbdinfo_json(server.uri_for(""), "--list")["exports"]
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_target(server.uri_for(""))
        screen = await open_server(app, pilot)
        rows = table_rows(screen.query_one("#exports", DataTable))
        assert list(rows) == [e["export-name"] for e in oracle] == ["first", "second", "third"]
        for _, size, read_only, description in rows.values():
            assert (int(size), read_only, description) == (2 * MIB, "no", "scratch disk")

        # Mark the first and the third, open both: two sessions, each with its own mode.
        await pilot.press("space", "down", "space")  # first, third
        await pilot.press("o")
        await wait_for(pilot, lambda: len(app.sessions) == 2)
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
        names = sorted(s.export.name for s in app.sessions.values())
        assert names == ["first", "third"]
        assert app.screen.export.name == "first"

        # F3 switches to the other one.
        options = await open_switcher(app, pilot)
        labels = option_prompts(options)
        assert labels[0].endswith("Connect / server") and len(labels) == 3
        assert labels[options.highlighted].lstrip("▸ ").startswith("first")
        target = next(i for i, label in enumerate(labels) if "third" in label)
        await pilot.press(
            *["down" if target > options.highlighted else "up"] * abs(target - options.highlighted),
            "enter",
        )
        await wait_for(
            pilot,
            lambda: (
                getattr(app.screen, "export", None) is not None
                and app.screen.export.name == "third"
            ),
        )
        # Closing an export returns to the server list and closes its connection.
        await pilot.press("w")
        await wait_for(pilot, lambda: len(app.sessions) == 1)
        assert isinstance(app.screen, ServerScreen)


async def test_one_export_opens_the_editor_directly(make_app, nbdkit):
    server = nbdkit(
        "memory",
        "1M",
        filters=("exportname",),
        extra_options=only_exports("only"),
    )
    app = make_app(server.uri_for(""))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.sessions)
        (session,) = app.sessions.values()
        assert session.export.name == "only"
        await wait_for(pilot, lambda: len(app.get_screen_stack(session.mode)) == 2)
        assert app.current_mode == session.mode
        stack = app.get_screen_stack(session.mode)
        assert isinstance(stack[0], ExportScreen)
        assert stack[1].export is session.export  # the editor on top of the export screen
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))


async def test_a_uri_naming_an_export_opens_it(make_app, nbd_server):
    server = nbd_server({"one": {"size": MIB}, "two": {"size": 2 * MIB}})
    app = make_app(server.uri_for("two"))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.sessions)
        (session,) = app.sessions.values()
        assert session.export.name == "two"
        assert session.export.size == 2 * MIB
        assert not any(isinstance(s, ServerScreen) for s in app.get_screen_stack("main"))
        assert isinstance(app.get_screen_stack("main")[0], ConnectScreen)


async def test_a_missing_export_offers_the_list_which_shows_what_is_open(make_app, nbdkit):
    """Opening an export the server does not have shows its exports instead; the list
    and F3 then say which are open and how many edits each has pending."""
    server = nbdkit(
        "memory",
        "1M",
        filters=("exportname",),
        extra_options=only_exports("first", "second"),
    )
    app = make_app(server.uri_for("nosuch"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_server(app, pilot)
        (note,) = [n for n in app._notifications if n.title == "No such export"]
        assert note.message.startswith("export 'nosuch' not found on 127.0.0.1:")
        assert note.message.endswith(": the server has 2 exports, listed here.")
        table = screen.query_one("#exports", DataTable)
        assert open_column(table) == {"first": "", "second": ""}

        await pilot.press("enter")  # first
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
        await pilot.press("e")  # the editor
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor = app.screen
        await wait_for(pilot, lambda: not editor.view.in_flight)
        await pilot.press("e", "y", "4", "1", "4", "2")
        await wait_for(pilot, lambda: len(editor.edits) == 2)

        options = await open_switcher(app, pilot)
        labels = option_prompts(options)
        assert len(labels) == 2 and labels[1].endswith("·  2 pending edits")
        await pilot.press("up", "enter")  # Connect / server: the server list
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.pause()
        assert open_column(table) == {"first": "open, 2 pending", "second": ""}


@pytest.mark.parametrize("listing", ["error", "empty"])
async def test_a_missing_export_on_a_server_that_lists_nothing_is_an_error(
    make_app, nbdkit, listing
):
    server = nbdkit(
        "memory",
        "1M",
        filters=("exportname",),
        extra_options=only_exports("first", listing=listing),
    )
    app = make_app(server.uri_for("nosuch"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: any(n.title for n in app._notifications))
        (note,) = list(app._notifications)
        assert note.title == "Connection failed"
        assert note.message.startswith("export 'nosuch' not found")
        assert isinstance(app.screen, ConnectScreen) and not app.sessions
