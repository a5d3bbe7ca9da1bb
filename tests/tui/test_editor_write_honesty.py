"""What the editor says about writing matches what it does: typed bytes wait for a
reviewed Ctrl+S; zero, trim and a journal revert write once their own question is
answered, and their questions say so."""

from __future__ import annotations

from textual.widgets import Button, Static

from nbdtui.tui.dialogs.confirm import ConfirmDialog
from tests.support.oracles import nbdcopy_in, nbdcopy_out
from tests.support.pilot import EditorHarness, notes, press, settle, text_of


async def test_write_mode_and_zero_say_what_writes_when(nbdkit, tmp_path):
    server = nbdkit("memory", "64K")
    image = tmp_path / "ones.bin"
    image.write_bytes(b"\x11" * 65536)
    nbdcopy_in(server.uri, image.read_bytes())
    app = EditorHarness(server.uri, journal=tmp_path / "journal.sqlite3")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "e")
        question = text_of(app.screen.query_one("#confirm-text", Static))
        assert "nothing you type is written" in question and "Ctrl+S" in question
        assert "Z (zero), T (trim) and J (revert a journal entry) are not staged" in question
        await press(pilot, "y", "v", "right", "right", "right", "v")
        await press(pilot, "Z")
        assert isinstance(app.screen, ConfirmDialog)
        assert text_of(app.screen.query_one(".title", Static)) == "Zero 4 bytes now?"
        assert "writes to the export as soon as you confirm" in text_of(
            app.screen.query_one("#confirm-text", Static)
        )
        assert str(app.screen.query_one("#yes", Button).label) == "Zero now (y)"
        assert nbdcopy_out(server.uri)[:5] == b"\x11" * 5  # asked, not yet written
        await press(pilot, "y")
        assert notes(app)[-1].startswith("Zeroed 4 byte(s); journal entry #")
        assert not app.editor.has_pending_edits()
    assert nbdcopy_out(server.uri)[:5] == b"\0\0\0\0\x11"  # written, with no Ctrl+S
