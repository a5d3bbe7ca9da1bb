"""Snapshots of the editor's search, matches, copy-as and file dialogs on the demo disk
(qemu-nbd), at 80x24 and 120x40: the dialogs must fit and wrap at both sizes."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.support.pilot import EditorHarness, press, settle

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


async def _open(pilot) -> None:
    await settle(pilot)
    pilot.app.editor.sub_title = "demo disk"


@pytest.mark.parametrize("size", SIZES)
def test_search_dialog_says_how_it_reads_the_text(snap_compare, demo_uri, size):
    async def run_before(pilot):
        await _open(pilot)
        await press(pilot, "ctrl+f")
        await pilot.press(*"NEEDLE", "tab", *"0x438 mod 1024")
        await pilot.pause()

    assert snap_compare(EditorHarness(demo_uri), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_every_match_in_a_list(snap_compare, demo_uri, size):
    async def run_before(pilot):
        await _open(pilot)
        await press(pilot, "slash")
        await pilot.press(*"EFI PART")
        await press(pilot, "ctrl+l")

    assert snap_compare(EditorHarness(demo_uri), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_copy_as(snap_compare, demo_uri, size):
    async def run_before(pilot):
        await _open(pilot)
        await press(pilot, "pagedown", *["shift+right"] * 7, "y")

    assert snap_compare(EditorHarness(demo_uri), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_save_to_a_file_with_an_error(snap_compare, demo_uri, size):
    async def run_before(pilot):
        await _open(pilot)
        await press(pilot, "ctrl+e")
        pilot.app.screen.query_one("#file-path", Input).value = "/nonexistent/dir/mbr.bin"
        await press(pilot, "enter")

    assert snap_compare(EditorHarness(demo_uri), terminal_size=size, run_before=run_before)
