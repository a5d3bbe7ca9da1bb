"""The compare screen (F4 in the hex editor) against a real export and a local image:
differences found and highlighted, `}`/`{`, the list, and a difference copied from the
other side as pending edits, reviewed, journaled and written; checked with nbdcopy."""

from __future__ import annotations

import random
import time

from textual.widgets import OptionList, Static

from nbdtui.editor.journal import Journal
from nbdtui.tui.screens.diff_view import CompareScreen
from tests.support.oracles import nbdcopy_out, oracle
from tests.support.pilot import EditorHarness, notes, press, settle

KiB = 1024
SIZE = 1024 * KiB
CHANGES = [(0x10, 4), (0x1000, 1), (0x80000, 16)]


def sides(nbdkit, tmp_path):
    """A: a 1 MiB nbdkit memory export of random bytes (its second half a hole); B: a
    local image of the same bytes with CHANGES."""
    data = bytearray(random.Random(3).randbytes(SIZE // 2)) + bytes(SIZE // 2)
    server = nbdkit("memory", "1M")
    oracle("nbdcopy", "--destination-is-zero", "-", server.uri, input=bytes(data[: SIZE // 2]))
    other = bytearray(data)
    for offset, length in CHANGES:
        for i in range(offset, offset + length):
            other[i] ^= 0xA5
    image = tmp_path / "other.img"
    image.write_bytes(bytes(other))
    return server, bytes(data), image, bytes(other)


async def open_compare(pilot, image) -> CompareScreen:
    app = pilot.app
    await pilot.press("f4")
    await pilot.pause()
    await pilot.press(*str(image), "enter")
    deadline = time.monotonic() + 20
    while True:
        screen = app.screen
        if isinstance(screen, CompareScreen) and screen.is_mounted and screen.diffs.complete:
            views = (screen.view_a, screen.view_b)
            if not any(v.in_flight for v in views):
                break
        assert time.monotonic() < deadline, "the comparison did not finish"
        await pilot.pause(0.02)
    await pilot.pause()
    return screen


async def keys(pilot, *names: str) -> None:
    for name in names:
        await pilot.press(name)
        await pilot.pause(0.05)


async def test_differences_found_and_navigated(nbdkit, tmp_path):
    server, data, image, other = sides(nbdkit, tmp_path)
    app = EditorHarness(server.uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = await open_compare(pilot, image)
        assert [(r.offset, r.length) for r in screen.diffs.runs] == CHANGES
        status = str(screen.query_one("#compare-status", Static).render())
        assert status.startswith("3 differences (done)")
        view = screen.view_a
        await keys(pilot, "right_curly_bracket")
        assert view.cursor == 0x10 and screen.view_b.cursor == 0x10
        await keys(pilot, "right_curly_bracket", "right_curly_bracket")
        assert view.cursor == 0x80000 and screen.view_b.cursor == 0x80000
        await keys(pilot, "right_curly_bracket")
        assert view.cursor == 0x80000
        assert notes(app)[-1] == "No next difference."
        await keys(pilot, "left_curly_bracket")
        assert view.cursor == 0x1000
        # The differing bytes (and only they) are drawn in the "differ" style.
        await keys(pilot, "home")
        differ = view.get_component_rich_style("hexview--differ").bgcolor
        line = view.render_line(view.layout_rows.row_of(0x10) - view.top)
        marked = [seg.text for seg in line if seg.style and seg.style.bgcolor == differ]
        expected = data[0x10:0x14]
        assert [t for t in marked if len(t) == 2] == [f"{b:02x}" for b in expected]
        assert len([t for t in marked if len(t) == 1]) == 4  # the text pane's characters
        line_b = screen.view_b.render_line(screen.view_b.layout_rows.row_of(0x10) - view.top)
        marked_b = [seg.text for seg in line_b if seg.style and seg.style.bgcolor == differ]
        assert [t for t in marked_b if len(t) == 2] == [f"{b:02x}" for b in other[0x10:0x14]]
        # The list: every run; choosing one goes there.
        await keys(pilot, "l")
        listing = screen.query_one("#compare-list", OptionList)
        assert listing.option_count == 3
        assert str(listing.get_option_at_index(2).prompt) == "0x80000 16"
        await keys(pilot, "end", "enter")
        assert view.cursor == 0x80000
        # Not in write mode: copying is refused, nothing is staged.
        await keys(pilot, "c")
        assert "write mode" in notes(app)[-1]
        assert not app.editor.has_pending_edits()
        await keys(pilot, "escape")
        assert app.screen is app.editor


async def test_copy_from_the_other_side_is_reviewed_journaled_and_written(nbdkit, tmp_path):
    server, data, image, other = sides(nbdkit, tmp_path)
    journal_path = tmp_path / "journal.sqlite3"
    app = EditorHarness(server.uri, journal=journal_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "e", "y")
        assert app.editor.writable
        screen = await open_compare(pilot, image)
        await keys(pilot, "right_curly_bracket", "c")
        for _ in range(50):
            if app.editor.has_pending_edits():
                break
            await pilot.pause(0.02)
        ranges = [(r.offset, r.old, r.new) for r in app.editor.edits.ranges()]
        assert ranges == [(0x10, data[0x10:0x14], other[0x10:0x14])]
        assert nbdcopy_out(server.uri) == data  # staged, not written
        await keys(pilot, "escape")
        assert app.screen is app.editor
        await press(pilot, "ctrl+s")
        review = str(app.screen.query_one("#review-ranges Static", Static).render())
        assert "0x10 (16)" in review and "4 bytes" in review
        await press(pilot, "y")
        assert notes(app)[-1].startswith("Wrote 4 byte(s) in 1 range(s); journal entry #1")
        after = nbdcopy_out(server.uri)
        assert after[0x10:0x14] == other[0x10:0x14]
        assert after[:0x10] == data[:0x10] and after[0x14:] == data[0x14:]
        del screen
    with Journal(journal_path) as journal:
        assert journal.get(1).state == "written"


async def test_f1_lists_the_compare_keys(nbdkit, tmp_path):
    from nbdtui.tui.screens.help import HelpScreen

    server, _, image, _ = sides(nbdkit, tmp_path)
    app = EditorHarness(server.uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = await open_compare(pilot, image)
        await app.push_screen(HelpScreen(screen))
        await pilot.pause()
        text = "\n".join(str(s.render()) for s in app.screen.query(Static))
        for needle in ("Next diff", "Prev diff", "Copy B→A", "List"):
            assert needle in text, text
        app.pop_screen()
        await pilot.pause()
        await keys(pilot, "escape")
        help_editor = HelpScreen(app.editor)
        await app.push_screen(help_editor)
        await pilot.pause()
        text = "\n".join(str(s.render()) for s in app.screen.query(Static))
        assert "F4" in text and "Compare with another export or image" in text, text
