"""The fleet screen (`nbdtui --inventory FILE`) against real servers: live rows, sorting,
refresh on demand and on a timer, Enter opens the export."""

from __future__ import annotations

import socket

from textual.widgets import DataTable, Static

from nbdtui.tui.screens import fleet as fleet_screen
from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.tui.screens.fleet import CHECKING, FleetScreen
from tests.support.cli_helpers import assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_nbdtui
from tests.support.pilot import notes, text_of, wait_for

MIB = 1024 * 1024


def cells(screen: FleetScreen) -> dict[str, list[str]]:
    """endpoint label -> [status, size, mode, latency, problem] as shown."""
    table = screen.query_one("#fleet", DataTable)
    out = {}
    for row in table.ordered_rows:
        values = [str(c).strip() for c in table.get_row(row.key)]
        out[values[1]] = [values[0], *values[2:]]
    return out


def checked(screen: FleetScreen) -> bool:
    return all(row[0] != CHECKING for row in cells(screen).values())


async def test_fleet_rows_sorting_refresh_and_open(make_app, nbdkit, tmp_path, monkeypatch):
    monkeypatch.setattr(fleet_screen, "REFRESH_SECONDS", 0.5)
    fast = nbdkit("memory", "1M")
    slow = nbdkit("memory", "2M", filters=("delay",), extra_options=("delay-read=80ms", "-r"))
    with socket.socket() as held:  # bound, not listening: refused
        held.bind(("127.0.0.1", 0))
        down = f"nbd://127.0.0.1:{held.getsockname()[1]}/gone"
        inventory = tmp_path / "fleet.txt"
        inventory.write_text(f"{fast.uri}\n{down}\nnot a uri\n{slow.uri}\n")
        app = make_app(inventory=str(inventory))
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, FleetScreen))
            screen = app.screen
            await wait_for(pilot, lambda: checked(screen))
            rows = cells(screen)
            assert rows[fast.uri][:3] == ["up", "1.0 MiB", "rw"]
            assert rows[slow.uri][:3] == ["up", "2.0 MiB", "ro"]
            assert float(rows[slow.uri][3].split()[0]) >= 80
            assert rows[down][:4] == ["DOWN", "-", "-", "-"]
            assert rows[down][4].startswith("connect: connection refused")
            summary = text_of(screen.query_one("#fleet-summary", Static))
            assert "3 endpoints" in summary and "2 up" in summary and "1 down" in summary
            assert "1 unreadable line" in summary and "lines" not in summary
            assert any(f"{inventory}:3:" in note for note in notes(app))

            await pilot.press("s")
            assert screen.row_order() == [down, fast.uri, slow.uri]
            await pilot.press("l")
            assert screen.row_order() == [slow.uri, fast.uri, down]

            rounds = screen.rounds
            await wait_for(pilot, lambda: screen.rounds >= rounds + 2)  # the timer

            fast.stop()
            await pilot.press("r")
            await wait_for(pilot, lambda: cells(screen)[fast.uri][0] == "DOWN")

            table = screen.query_one("#fleet", DataTable)
            table.move_cursor(row=screen.row_order().index(slow.uri))
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
            assert app.screen.export.size == 2 * MIB
            assert app.screen.export.info.read_only
            await pilot.press("escape")  # back to the fleet, the export still open
            await wait_for(pilot, lambda: app.screen is screen)
            assert len(app.sessions) == 1


def test_cli_inventory_that_cannot_be_read(tmp_path):
    missing = tmp_path / "nope.txt"
    assert_one_line_error(run_nbdtui("--inventory", str(missing)), 1, str(missing))
