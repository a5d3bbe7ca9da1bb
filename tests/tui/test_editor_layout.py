"""Pilot tests of the editor's layout at 80x24 and 120x40: what is on screen, read from
the rendered screen (the inspector, the dialogs' text and buttons, the footer)."""

from __future__ import annotations

import re

import pytest
from textual.containers import VerticalScroll
from textual.widgets import Label

from tests.support.pilot import EditorHarness, press, settle

SIZES = [(80, 24), (120, 40)]


def screen_lines(app) -> list[str]:
    """The text of every row of the terminal, as drawn."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def dialog_text(app) -> str:
    """The words inside the dialog's box (between its side borders), one line."""
    inside = []
    for line in screen_lines(app):
        if line.count("█") >= 2:
            inside.append(line[line.index("█") + 1 : line.rindex("█")])
    return re.sub(r"\s+", " ", " ".join(inside))


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


async def goto(pilot, text: str) -> None:
    await press(pilot, "ctrl+g")
    await pilot.press(*text, "enter")
    await settle(pilot)


# ---- dialogs wrap their text ---------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_goto_errors_wrap_inside_the_dialog(demo_uri, size):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for typed in ("2T", "s-1"):
            await press(pilot, "ctrl+g")
            await pilot.press(*typed, "enter")
            await pilot.pause()
            error = flat(str(app.screen.query_one("#goto-error", Label).render()))
            assert len(error) > 70  # longer than the dialog is wide
            assert error in dialog_text(app)
            await press(pilot, "escape")


async def make_ranges(pilot, count: int) -> None:
    await press(pilot, "e", "y")
    for _ in range(count):
        await press(pilot, "1", "right", "right")


@pytest.mark.parametrize("size", SIZES)
async def test_review_of_many_ranges_scrolls_and_keeps_its_buttons(demo_uri, tmp_path, size):
    app = EditorHarness(demo_uri, journal=tmp_path / "journal.sqlite3")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await make_ranges(pilot, 25)
        await press(pilot, "ctrl+s")
        await pilot.pause()
        text = dialog_text(app)
        assert "Write 25 bytes in 25 ranges?" in text
        assert "Write (y)" in text and "Cancel (n)" in text
        assert "The old bytes go to the undo journal first; J reverts later." in text
        box = app.screen.query_one("#review-ranges", VerticalScroll)
        assert box.max_scroll_y > 0  # the ranges scroll inside the box
        await press(pilot, "y")  # the buttons' keys still work
        assert not app.editor.edits

        await press(pilot, "J")
        await press(pilot, "enter")
        await pilot.pause()
        text = dialog_text(app)
        target = flat(str(app.screen.query_one(".hint", Label).render()))
        assert target.startswith("to disk at")
        # the socket's path is longer than a line: it is folded, no character lost
        assert target.replace(" ", "") in text.replace(" ", "")
        assert "Ranges that no longer hold these 'old' bytes stop the revert; " in text
        assert "the revert is journaled too." in text
        assert "Write (y)" in text and "Cancel (n)" in text


# ---- the inspector -------------------------------------------------------------------


@pytest.mark.parametrize("size", [*SIZES, (90, 30)])
async def test_inspector_shows_labels_and_values(demo_uri, size):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await press(pilot, "i")
        await goto(pilot, "0x1fe")  # the MBR signature 55 aa
        await pilot.pause()
        lines = screen_lines(app)
        assert any("at 0x1fe" in line for line in lines)
        for name, value in [("u16 LE", "43605"), ("i16 LE", "-21931"), ("u8", "85")]:
            shown = [line for line in lines if re.search(rf"\b{name}\s+{value}\b", line)]
            assert shown, f"{name} {value} not on screen"
        inspector = app.editor.query_one("#inspector")
        assert inspector.region.width >= 30 and inspector.region.right <= size[0]
        # the hex view keeps its rows, the cursor's among them
        assert any(line.startswith("000001f0  ") for line in lines)
        await press(pilot, "i")
        assert not any("at 0x1fe" in line for line in screen_lines(app))
