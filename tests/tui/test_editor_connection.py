"""The editor on a lost connection: a real qemu-nbd on a Unix socket, killed and
started again (``ServerFactory.restart``).

The status line says the connection is down and what nbdtui does about it, unread bytes
are drawn with their own glyph (not the hole's ``·``), the view fetches again once the
connection is back, and a commit waiting on the lost connection can be cancelled.
"""

from __future__ import annotations

import asyncio
import time

from nbdtui.disk.demo_image import HELLO_OFFSET
from nbdtui.editor.journal import Journal
from nbdtui.tui.widgets.hexview import UNLOADED_HEX
from tests.support.oracles import nbdcopy_out
from tests.support.pilot import EditorHarness, notes, press, rows, settle, status, wait_for


def _restart_after(servers, server, delay: float = 1.0):
    time.sleep(delay)
    return servers.restart(server)


async def test_a_lost_connection_is_shown_until_the_reconnect_then_fetched_again(
    servers, qemu_nbd, demo_image
):
    server = qemu_nbd(demo_image, unix=True)
    app = EditorHarness(server.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.export.reconnect_delay = 30.0
        shown = rows(app)
        server.kill()
        app.editor.view.invalidate()  # what a write or `r` does: read it all again
        await wait_for(pilot, lambda: "connection lost: reconnecting…" in status(app))
        assert "loading…" not in status(app) and "of 30 s" in status(app)
        # Not yet read: a glyph of its own, not the hole's "·".
        assert UNLOADED_HEX in rows(app)[1] and "·" not in "".join(rows(app))
        await asyncio.to_thread(_restart_after, servers, server, 0.5)
        await wait_for(pilot, lambda: "connection lost" not in status(app), timeout=20)
        await settle(pilot)
        assert rows(app) == shown and "loading…" not in status(app)


async def test_without_reconnecting_the_error_is_shown_and_r_reconnects(
    servers, qemu_nbd, demo_image
):
    server = qemu_nbd(demo_image, unix=True)
    app = EditorHarness(server.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.export.reconnect_delay == 0  # the library's default: fail at once
        shown = rows(app)
        server.kill()
        await asyncio.sleep(0.3)  # the client sees the socket close
        await press(pilot, "r")
        line = status(app)
        assert "connection lost: " in line and "(r: reconnect)" in line, line
        assert "loading…" not in line and "read error" not in line
        assert UNLOADED_HEX in rows(app)[1]
        await asyncio.to_thread(servers.restart, server)
        await press(pilot, "r")
        await wait_for(pilot, lambda: "connection lost" not in status(app))
        await settle(pilot)
        assert rows(app) == shown


async def test_a_commit_waiting_on_a_lost_connection_can_be_cancelled(
    servers, qemu_nbd, demo_image, tmp_path
):
    server = qemu_nbd(demo_image, unix=True)
    journal_path = tmp_path / "journal.sqlite3"
    before = None
    app = EditorHarness(server.uri, journal=journal_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        before = nbdcopy_out(server.uri)
        app.export.reconnect_delay = 30.0
        await press(pilot, "ctrl+g", *hex(HELLO_OFFSET), "enter")
        await press(pilot, "e", "y", "4", "1", "ctrl+s")
        server.kill()
        await pilot.press("y")  # confirm the review: the write waits for the connection
        await wait_for(pilot, lambda: "Esc cancels the write" in status(app))
        assert "connection lost: reconnecting…" in status(app) and "writing…" in status(app)
        await pilot.press("escape")
        # The write stops (the view's fetch still waits for the connection).
        await wait_for(pilot, lambda: not app.editor._writing())
        assert "Write cancelled" in [n.title for n in app._notifications]
        assert not any(n.startswith("Wrote") for n in notes(app))
        assert app.editor.has_pending_edits() and app.editor.writable
        assert app.screen is app.editor
    with Journal(journal_path) as journal:
        assert all(e.state == "failed" for e in journal.entries())
    servers.restart(server)
    assert nbdcopy_out(server.uri) == before
