"""The pool screen shows a stalled connection (its oldest request's age) and a
reconnecting one, and its cancel key closes and reopens the selected connection."""

from __future__ import annotations

import asyncio
import time

from rich.text import Text
from textual.app import App
from textual.widgets import DataTable, Static

import nbdtui
from nbdtui.client import Pool
from nbdtui.client.group import PooledConnectionStats
from nbdtui.tui.screens.pool_monitor import PoolScreen, state_text
from tests.support.servers import ONE_THREAD


class Host(App):
    def __init__(self, stats, **kwargs) -> None:
        super().__init__()
        self.pool_screen = PoolScreen(stats, interval=0.1, **kwargs)

    def on_mount(self) -> None:
        self.push_screen(self.pool_screen)


def _row(**fields) -> PooledConnectionStats:
    values = dict(
        state="ready",
        endpoint="h:1",
        export="x",
        in_flight=1,
        window=16,
        requests=1,
        errors=0,
        bytes_read=0,
        bytes_written=0,
    )
    values.update(fields)
    return PooledConnectionStats(**values)


def test_state_cell():
    assert str(state_text(_row())) == "ready"
    assert str(state_text(_row(oldest_age=4.25, stalled=True))) == "stalled 4.2 s"
    assert str(state_text(_row(state="reconnecting", oldest_age=7.4))) == "reconnecting 7 s"
    # stats from elsewhere (a mapping with only the age) still show the stall
    assert str(state_text({"state": "ready", "oldest_age": 5.0})) == "stalled 5.0 s"
    assert isinstance(state_text({}), Text)


async def _wait(pilot, condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


async def test_a_stalled_connection_is_shown_and_cancelled(nbdkit, monkeypatch):
    # A connection is stalled after STALL_SECONDS (3 s) without a reply; 1 s here, and the
    # server's delay shortened to match (still longer than the stall).
    monkeypatch.setattr("nbdtui.client.group.STALL_SECONDS", 1.0)
    server = nbdkit("pattern", "4M", filters=("delay",), extra_options=(*ONE_THREAD, "rdelay=2"))
    pool = Pool()
    async with nbdtui.open(server.uri, pool=pool) as export:

        def stats():
            return [(f"row{i}", s) for i, s in enumerate(export.connection_stats())]

        app = Host(stats)
        async with app.run_test(size=(140, 30)) as pilot:
            screen = app.pool_screen
            table = screen.query_one("#connections", DataTable)
            read = asyncio.create_task(export.read(8, 8))
            [before] = export.connection_stats()
            await _wait(pilot, lambda: str(table.get_row_at(0)[2]).startswith("stalled 1"))
            summary = screen.query_one("#pool-summary", Static)
            assert "1 stalled" in str(summary.render())
            await pilot.press("c")
            await _wait(pilot, lambda: export.connection_stats()[0].conn_id != before.conn_id)
            await _wait(pilot, lambda: str(table.get_row_at(0)[2]) == "ready")
            # the read was sent again on the new connection and gives the right bytes
            assert await asyncio.wait_for(read, 10) == (8).to_bytes(8, "big")
            assert export._group.reconnects == 1


async def test_cancel_on_a_row_without_a_connection_only_warns():
    rows = [("r", {"state": "connecting", "endpoint": "h:1"})]
    cancelled = []
    app = Host(lambda: rows, cancel=lambda conn_id: cancelled.append(conn_id) or True)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert cancelled == []
    rows = [("r", _row(conn_id=42))]
    app = Host(lambda: rows, cancel=lambda conn_id: cancelled.append(conn_id) or True)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert cancelled == [42]
