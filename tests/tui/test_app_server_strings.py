"""Strings from a server never act on the terminal or as markup in the UI: export names,
descriptions and meta context names are shown with their control characters escaped
(as ``nbdinfo`` and ``nbdtui list`` show them) and their ``[...]`` literally."""

from __future__ import annotations

from textual.widgets import DataTable

from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.tui.screens.remote_exports import ServerScreen
from tests.support.pilot import screen_lines, wait_for
from tests.support.servers import only_exports

CLEAR = "a\x1b[2Jb"
MARKUP = "[red]x[/red]"
DESCRIPTION = "[b]bold[/b] \x1b]0;title\x07 \u202eevil\nline2"
SHOWN_DESCRIPTION = "[b]bold[/b] \\u001b]0;title\\u0007 \\u202eevil\\u000aline2"


def hostile_server(nbdkit):
    return nbdkit(
        "memory",
        "1M",
        filters=("exportname",),
        extra_options=(*only_exports(CLEAR, MARKUP), f"exportdesc=fixed:{DESCRIPTION}"),
    )


def assert_nothing_raw(lines: list[str]) -> None:
    text = "\n".join(lines)
    for ch in ("\x1b", "\x07", "\u202e"):
        assert ch not in text, (ch, text)


async def test_the_server_screen_shows_names_and_descriptions_escaped(make_app, nbdkit):
    server = hostile_server(nbdkit)
    app = make_app(server.uri_for(""))
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, ServerScreen)
                and app.screen.query_one("#exports", DataTable).row_count == 2
            ),
        )
        await pilot.pause()
        lines = screen_lines(app)
        assert_nothing_raw(lines)
        rows = [line for line in lines if "1.0 MiB" in line]
        assert len(rows) == 2, lines
        assert "a\\u001b[2Jb" in rows[0] and SHOWN_DESCRIPTION in rows[0]
        assert MARKUP in rows[1] and SHOWN_DESCRIPTION in rows[1]

        # Open the export named like markup: its screen's title and details are literal.
        table = app.screen.query_one("#exports", DataTable)
        table.move_cursor(row=table.get_row_index(MARKUP))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
        await pilot.pause()
        lines = screen_lines(app)
        assert_nothing_raw(lines)
        assert f"nbdtui — {MARKUP} on 127.0.0.1:{server.port}" in lines[0]
        description = next(line for line in lines if "Description" in line)
        assert SHOWN_DESCRIPTION in description


async def test_notifications_are_plain_text(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.notify(f"{MARKUP}: refused \x1b[2J", title="[b]Open failed")
        await pilot.pause()
        (note,) = app._notifications
        assert note.message == f"{MARKUP}: refused \\u001b[2J"
        assert note.title == "[b]Open failed"
        assert note.markup is False
