"""The inspector's hex values, GPT type names and "follow" (o), and the editor's facts:
the export's size in the title and data/zero/hole at the cursor (block status)."""

from __future__ import annotations

import re

from textual.widgets import Static

from nbdtui.tui.dialogs.follow_dialog import FollowDialog
from tests.support.pilot import EditorHarness, notes, press, settle, status, text_of


async def _goto(pilot, where: str) -> None:
    await press(pilot, "ctrl+g")
    await pilot.press(*where, "enter")
    await settle(pilot)


# 1 MiB: at 0x10 the u32 LE 0x3000; data in the first 32 KiB, then a hole (nbdkit data).
DATA = ("data=@0x10 0x00 0x30 0x00 0x00 @0x7fff 1", "size=1M")


async def test_follow_jumps_to_a_value_as_an_offset_and_comes_back(nbdkit):
    app = EditorHarness(nbdkit("data", *DATA).uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await _goto(pilot, "0x10")
        await press(pilot, "i")
        inspector = text_of(app.editor.query_one("#inspector-fields", Static))
        assert re.search(r"\bu16 LE +12288 0x3000 ", inspector)
        assert re.search(r"\bu8 +0 ", inspector)  # under 10: no hex
        assert re.search(r"\bGPT type +unknown", inspector)
        await press(pilot, "o")
        assert isinstance(app.screen, FollowDialog)
        labels = [t.label for t in app.screen.found]
        assert labels[0] == "u16 LE 12288 as offset → 0x3000"
        assert "u16 BE 48 as sector/LBA → 0x6000" in labels
        await press(pilot, "enter")
        assert app.screen is app.editor and app.editor.view.cursor == 0x3000
        await press(pilot, "ctrl+o")
        assert app.editor.view.cursor == 0x10
        await _goto(pilot, "0x20")  # zeros: u16/u32/u64 0 is offset 0, a place too
        await press(pilot, "o")
        assert isinstance(app.screen, FollowDialog)
        assert [t.offset for t in app.screen.found] == [0, 0]
        await press(pilot, "escape")
        assert app.screen is app.editor and app.editor.view.cursor == 0x20


async def test_follow_says_when_nothing_points_inside(nbdkit):
    app = EditorHarness(nbdkit("data", "data=" + " 0xff" * 20, "size=4K").uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await _goto(pilot, "0x2")  # ff ff ..: every integer is out of range
        await press(pilot, "o")
        assert app.screen is app.editor
        assert notes(app)[-1] == "No integer at 0x2 points inside this export."


async def test_status_says_data_or_hole_and_the_title_the_size(nbdkit):
    app = EditorHarness(nbdkit("data", *DATA).uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.editor.title.endswith(" · 1.0 MiB")
        assert " │ data │ " in status(app)
        await _goto(pilot, "0x8000")
        assert " │ hole │ " in status(app)
        await press(pilot, "left")
        assert " │ data │ " in status(app)
        await _goto(pilot, "0xfffff")
        assert " │ hole │ " in status(app)


async def test_at_80x24_the_inspector_scrolls_to_the_gpt_type_name(demo_uri):
    """Below the hex view the inspector has a few lines: Ctrl+↓ brings the rest, down to
    the partition type of the GPT entry at 0x400 (the EFI system partition)."""
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "i")
        await _goto(pilot, "0x400")
        box = app.editor.query_one("#inspector")
        assert app.editor.query_one("#editor-body").has_class("stacked")
        assert box.max_scroll_y > 0 and box.scroll_y == 0
        inspector = text_of(app.editor.query_one("#inspector-fields", Static))
        assert re.search(r"\bGPT type +EFI System$", inspector)
        assert "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in inspector
        for _ in range(10):
            await press(pilot, "ctrl+down")
        assert box.scroll_y == box.max_scroll_y
        await press(pilot, "ctrl+up")
        assert 0 < box.scroll_y < box.max_scroll_y
        assert app.editor.view.cursor == 0x400  # the cursor stayed


async def test_without_block_status_the_status_line_claims_nothing(nbdkit):
    """nbdkit --no-sr negotiates no structured replies, so no base:allocation: the
    editor cannot tell data from holes and says neither."""
    app = EditorHarness(nbdkit("data", *DATA, extra_options=("--no-sr",)).uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.editor.export.negotiated.context_id("base:allocation") is None
        await _goto(pilot, "0x8000")  # a hole with block status
        line = status(app)
        assert line.startswith("0x8000 = 32768 │ sector 64 │ READ-ONLY")
        assert "hole" not in line and "data" not in line
