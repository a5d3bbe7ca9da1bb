"""Snapshots of the bookmark dialog (Ctrl+B) and the follow dialog (o) at 80x24 and
120x40, on the demo disk served by qemu-nbd."""

from __future__ import annotations

import pytest

from tests.support.pilot import EditorHarness, press, settle

SIZES = [(80, 24), (120, 40)]


async def _goto(pilot, where: str) -> None:
    await press(pilot, "ctrl+g")
    await pilot.press(*where, "enter")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_bookmark_dialog(snap_compare, demo_uri, tmp_path, size):
    """Two bookmarks of this export in offset order, and a name being typed for 0x1fe."""

    async def run_before(pilot):
        await settle(pilot)
        pilot.app.editor.sub_title = "demo disk"
        # Set beforehand (no notifications to time): two bookmarks of this export.
        pilot.app.bookmarks.add(demo_uri, "GPT entries", 0x400)
        pilot.app.bookmarks.add(demo_uri, "GPT header", 0x200)
        await _goto(pilot, "0x1fe")
        await pilot.press("ctrl+b", *"MBR sig")
        await pilot.pause()

    app = EditorHarness(demo_uri, bookmarks=tmp_path / "bookmarks.sqlite3")
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_follow_dialog_on_the_gpt_entries_lba(snap_compare, demo_uri, size):
    """The GPT header's "partition entries LBA" (2 at 0x248): offset 0x2 or sector 2."""

    async def run_before(pilot):
        await settle(pilot)
        pilot.app.editor.sub_title = "demo disk"
        await _goto(pilot, "0x248")
        await press(pilot, "i", "o")

    assert snap_compare(EditorHarness(demo_uri), terminal_size=size, run_before=run_before)
