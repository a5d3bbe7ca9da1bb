"""Bookmarks (Ctrl+B, kept per export across runs in the recent-endpoints database) and
the jump list (Ctrl+O back, Ctrl+K forward) fed by goto, search, follow and bookmarks."""

from __future__ import annotations

import sqlite3
import stat

from textual.widgets import Static

from nbdtui.editor.bookmarks import Bookmarks
from nbdtui.tui.dialogs.bookmark_dialog import BookmarkDialog
from nbdtui.tui.history import History
from nbdtui.tui.screens.help import HelpScreen
from nbdtui.tui.screens.sector_editor import EditorScreen
from tests.support.pilot import EditorHarness, notes, press, settle, text_of, wait_for


async def _goto(pilot, where: str) -> None:
    await press(pilot, "ctrl+g")
    await pilot.press(*where, "enter")
    await settle(pilot)


async def _open_editor(app, pilot) -> EditorScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
    editor = app.screen
    await wait_for(pilot, lambda: not editor.view.in_flight)
    return editor


async def test_bookmarks_survive_a_restart_of_the_app(make_app, demo_uri, tmp_path):
    """Two runs of the real app on one database: the second finds the first's bookmark,
    and only on the export it was set on."""
    db = tmp_path / "history.sqlite3"
    app = make_app(demo_uri, history=History(db))
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await _open_editor(app, pilot)
        await pilot.press("ctrl+g", *"0x400", "enter")
        await wait_for(pilot, lambda: editor.view.cursor == 0x400)
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, BookmarkDialog))
        await pilot.press(*"gpt entries", "enter")
        await pilot.pause()
        assert "Bookmark 'gpt entries' at 0x400." in notes(app)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is editor and editor.view.cursor == 0x400
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    rows = sqlite3.connect(db).execute("SELECT endpoint, name, offset FROM bookmarks").fetchall()
    assert rows == [(demo_uri, "gpt entries", 0x400)]
    assert sqlite3.connect(db).execute("SELECT count(*) FROM endpoints").fetchone() == (1,)

    app = make_app(demo_uri, history=History(db))
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await _open_editor(app, pilot)
        assert editor.view.cursor == 0
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, BookmarkDialog))
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.screen is editor)
        assert editor.view.cursor == 0x400
        await pilot.press("ctrl+o")  # the bookmark was a jump: back to where it started
        await pilot.pause()
        assert editor.view.cursor == 0


async def test_a_bookmark_is_deleted_with_del(demo_uri, tmp_path):
    app = EditorHarness(demo_uri, bookmarks=tmp_path / "b.sqlite3")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await _goto(pilot, "0x200")
        await pilot.press("ctrl+b", *"one", "enter")
        await _pause(pilot)
        await pilot.press("escape")
        await _goto(pilot, "0x1000")
        await pilot.press("ctrl+b", *"two", "enter")
        await _pause(pilot)
        assert [m.name for m in app.screen.marks] == ["one", "two"]
        await pilot.press("down", "delete")
        await _pause(pilot)
        assert [m.name for m in app.screen.marks] == ["two"]
        assert "Bookmark 'one' deleted." in notes(app)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is app.editor and app.editor.view.cursor == 0x1000
    assert [m.name for m in Bookmarks(tmp_path / "b.sqlite3").list(demo_uri)] == ["two"]


async def _pause(pilot) -> None:
    await pilot.pause()
    await pilot.pause()


async def test_back_and_forward_walk_the_jumps_of_goto_and_search(nbdkit):
    """Goto and a search hit are jumps; arrows are not. Ctrl+O/Ctrl+K walk them."""
    server = nbdkit("pattern", "1M")  # each 8 bytes: its own offset, big-endian u64
    app = EditorHarness(server.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await _goto(pilot, "0x8000")
        await press(pilot, "right", "right")  # a move, not a jump
        await press(pilot, "slash")
        await pilot.press(*"00 00 00 00 00 01 00 00", "enter")
        await settle(pilot)
        view = app.editor.view
        assert view.cursor == 0x10000
        await press(pilot, "ctrl+o")
        assert view.cursor == 0x8002
        await press(pilot, "ctrl+o")
        assert view.cursor == 0
        await press(pilot, "ctrl+o")
        assert view.cursor == 0 and notes(app)[-1].startswith("No earlier place")
        await press(pilot, "ctrl+k")
        assert view.cursor == 0x8002
        await press(pilot, "ctrl+k")
        assert view.cursor == 0x10000
        await press(pilot, "ctrl+k")
        assert view.cursor == 0x10000 and notes(app)[-1] == "Nothing to go forward to."


class _HelpHarness(EditorHarness):
    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))

    BINDINGS = (("f1", "help", "Help"),)


async def test_f1_lists_the_bookmark_jump_and_follow_keys(nbdkit, tmp_path):
    app = _HelpHarness(nbdkit("memory", "1M").uri, bookmarks=tmp_path / "b.sqlite3")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "f1")
        text = text_of(app.screen.query_one("#help-text", Static))
        lines = {" ".join(line.split()) for line in text.splitlines()}
        assert "Ctrl+B Bookmarks" in lines
        assert "o Follow the value at the cursor" in lines
        assert any(line.startswith("Ctrl+O / ") and line.endswith("Jump back") for line in lines)
        assert any(line.startswith("Ctrl+K / ") and "Jump forward" in line for line in lines)
        await press(pilot, "escape", "e", "y", "tab", "f1")  # text pane: o types
        text = text_of(app.screen.query_one("#help-text", Static))
        assert "Follow the value" not in text and "Jump back" in text and "Bookmarks" in text
