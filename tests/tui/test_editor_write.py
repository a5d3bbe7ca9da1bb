"""Pilot tests of writing with the hex editor, checked with libnbd's nbdcopy.

Write mode, typed bytes, review, commit, revert from the journal, server errors,
zero/trim of a selection, flush, and leaving with pending edits.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Static

from nbdtui.disk.demo_image import HELLO_OFFSET
from nbdtui.editor.journal import Journal
from tests.support.oracles import nbdcopy_out, nbdsh_write
from tests.support.pilot import (
    EditorHarness,
    notes,
    press,
    settle,
    status,
)


async def enter_write_mode(pilot) -> None:
    await press(pilot, "e")
    assert "Enter write mode?" in str(pilot.app.screen.query_one(".title").render())
    await press(pilot, "y")
    assert pilot.app.editor.writable


async def goto(pilot, text: str) -> None:
    await press(pilot, "ctrl+g")
    await pilot.press(*text, "enter")
    await settle(pilot)


async def test_write_mode_is_refused_on_a_read_only_export(nbdkit, demo_image, qemu_nbd):
    for uri in (
        nbdkit("memory", "1M", readonly=True).uri,
        qemu_nbd(demo_image, unix=True, readonly=True).uri,
    ):
        app = EditorHarness(uri)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await press(pilot, "e")
            assert app.screen is app.editor and not app.editor.writable
            assert "cannot be changed" in notes(app)[-1]
            await press(pilot, "4", "1", "ctrl+s")
            assert not app.editor.has_pending_edits()
            assert "READ-ONLY" in status(app)


async def test_edit_review_commit_then_revert(demo_uri, tmp_path):
    journal_path = tmp_path / "journal.sqlite3"
    before = nbdcopy_out(demo_uri)
    app = EditorHarness(demo_uri, journal=journal_path)
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        await goto(pilot, hex(HELLO_OFFSET))
        await enter_write_mode(pilot)
        await press(pilot, "4", "1", "tab", "H", "i")
        editor = app.editor
        assert [(r.offset, r.old, r.new) for r in editor.edits.ranges()] == [
            (HELLO_OFFSET, b"Hel", b"AHi")
        ]
        assert "WRITE" in status(app) and "pending" in status(app)
        assert nbdcopy_out(demo_uri) == before  # nothing written yet
        await press(pilot, "ctrl+s")
        review = str(app.screen.query_one("#review-ranges Static", Static).render())
        assert f"0x{HELLO_OFFSET:x} ({HELLO_OFFSET}), sector 64 +0: 3 bytes" in review
        assert "old 48 65 6c" in review and "new 41 48 69" in review
        await press(pilot, "y")
        assert notes(app)[-1].startswith("Wrote 3 byte(s) in 1 range(s); journal entry #1")
        assert not editor.has_pending_edits()
        after = nbdcopy_out(demo_uri)
        assert after[HELLO_OFFSET : HELLO_OFFSET + 5] == b"AHilo"
        assert after[:HELLO_OFFSET] == before[:HELLO_OFFSET]
        assert after[HELLO_OFFSET + 3 :] == before[HELLO_OFFSET + 3 :]

        await press(pilot, "tab", "J")  # in the text pane, J would be typed
        await press(pilot, "enter")  # entry #1
        assert "Revert journal entry #1 (written)?" in str(app.screen.query_one(".title").render())
        await press(pilot, "y")
        assert notes(app)[-1] == "Reverted journal entry #1."
        assert nbdcopy_out(demo_uri) == before
    with Journal(journal_path) as journal:
        assert journal.get(1).state == "reverted"
        assert journal.get(2).note == "revert of #1" and journal.get(2).state == "written"


async def test_a_server_error_on_commit_keeps_the_edits(nbdkit, tmp_path):
    server = nbdkit(
        "memory",
        "1M",
        filters=("error",),
        extra_options=("error-pwrite=EIO", "error-pwrite-rate=100%"),
    )
    app = EditorHarness(server.uri, journal=tmp_path / "journal.sqlite3")
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        await enter_write_mode(pilot)
        await press(pilot, "c", "a", "f", "e", "ctrl+s", "y")
        assert app.screen is app.editor and not app.closed
        message = notes(app)[-1]
        assert "EIO" in message and "journal entry #1 marked failed" in message
        assert "still pending" in message
        assert len(app.editor.edits) == 2
        assert app.journal.get(1).state == "failed"
    assert nbdcopy_out(server.uri)[:2] == b"\0\0"


async def test_fast_typing_lands_where_the_cursor_was(nbdkit):
    """Keys delivered in one burst (a fast typist, a terminal paste) keep their order."""
    server = nbdkit("memory", "1M")
    app = EditorHarness(server.uri)
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        await enter_write_mode(pilot)
        burst = ["4", "1", "right", "4", "2", "tab", "H", "i", "down", "x"]
        for key in burst:
            char = key if len(key) == 1 else ("\t" if key == "tab" else None)
            app.post_message(events.Key(key, char))
        await settle(pilot)
        changes = [(r.offset, r.new) for r in app.editor.edits.ranges()]
        assert changes == [(0, b"A"), (2, b"BHi"), (21, b"x")]


async def test_undo_and_redo(nbdkit):
    app = EditorHarness(nbdkit("memory", "1M").uri)
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        await enter_write_mode(pilot)
        await press(pilot, "a", "b", "c", "d")
        editor = app.editor
        assert editor.edits.value(0) == 0xAB and editor.edits.value(1) == 0xCD
        await press(pilot, "u")  # one typed byte is one step, not one per hex digit
        assert editor.edits.value(1) is None and editor.edits.value(0) == 0xAB
        await press(pilot, "ctrl+z")
        assert not editor.has_pending_edits()
        await press(pilot, "ctrl+y")
        assert editor.edits.value(0) == 0xAB and editor.view.cursor == 0


async def test_zero_and_trim_a_selection_behind_a_confirmation(nbdkit, tmp_path):
    server = nbdkit("memory", "1M")
    nbdsh_write(server.uri, 0, b"\xff" * 4096)
    app = EditorHarness(server.uri, journal=tmp_path / "journal.sqlite3")
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "Z")
        assert "Enter write mode (e) first." in notes(app)
        await enter_write_mode(pilot)
        await press(pilot, "right", "shift+right", "shift+right", "shift+down")
        assert app.editor.view.selection == (1, 19)
        await press(pilot, "Z")
        question = str(app.screen.query_one("#confirm-text", Static).render())
        assert "Zero 19 bytes (19 B): 0x1–0x13 (1–19), sectors 0–0" in question
        await press(pilot, "n")
        assert nbdcopy_out(server.uri)[:32] == b"\xff" * 32
        await press(pilot, "Z", "y")
        assert notes(app)[-1] == "Zeroed 19 byte(s); journal entry #1."
        data = nbdcopy_out(server.uri)
        assert data[:1] == b"\xff" and data[1:20] == bytes(19) and data[20:4096] == b"\xff" * 4076
        # v marks the start, moving extends, v fixes the end
        await press(pilot, "pagedown", "v")
        await press(pilot, *["right"] * 9, "v", "T", "y")
        assert notes(app)[-1] == "Trimmed 10 byte(s); journal entry #2."
        assert app.journal.get(2).note == "trim"
        assert app.journal.get(2).ranges[0].old == b"\xff" * 10
        await press(pilot, "f")  # a hex digit in write mode: typed, not a command
        assert app.editor.has_pending_edits()
        await press(pilot, "ctrl+z", "escape", "f5")
        assert notes(app)[-1].startswith("Flushed")


async def test_leaving_with_pending_edits_asks_first(nbdkit):
    app = EditorHarness(nbdkit("memory", "1M").uri)
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        await enter_write_mode(pilot)
        await press(pilot, "7", "7")
        await press(pilot, "escape")
        assert "Leave write mode?" in str(app.screen.query_one(".title").render())
        await press(pilot, "n")
        assert app.editor.writable and app.editor.has_pending_edits()
        app.editor.leave()
        await settle(pilot)
        assert "Close the editor?" in str(app.screen.query_one(".title").render())
        await press(pilot, "n")
        assert not app.closed and app.screen is app.editor
        await press(pilot, "escape", "y")
        assert not app.editor.writable and not app.editor.has_pending_edits()
        await press(pilot, "escape")
        assert app.closed
