"""``S`` in the hex editor: the scan dialog lists the filesystems of the demo disk at
their partitions' starts (the GPT's own numbers are the oracle) and Enter jumps there."""

from __future__ import annotations

from textual.widgets import Label, OptionList

from nbdtui.disk.demo_image import EXT4_UUID, SWAP_UUID, build_demo_image
from nbdtui.disk.partitions import read_partition_table
from nbdtui.tui.dialogs.scan_dialog import ScanDialog
from tests.support.pilot import EditorHarness, option_prompts, press, rows, settle, wait_for


async def test_scan_dialog_lists_the_filesystems_and_jumps(demo_uri):
    image = build_demo_image()
    table = read_partition_table(image.read, image.size)
    assert table is not None
    starts = [p.start for p in table.partitions]
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "S")
        await wait_for(pilot, lambda: isinstance(app.screen, ScanDialog))
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.found is not None)
        options = dialog.query_one(OptionList)
        labels = option_prompts(options)
        assert [s.offset for s in dialog.found] == starts
        assert [s.type for s in dialog.found] == ["vfat", "ext4", "ntfs", "swap"]
        assert EXT4_UUID in labels[1] and "'nbdtui-demo'" in labels[1]
        assert SWAP_UUID in labels[3] and "'nbdtui-swap'" in labels[3]
        assert str(dialog.query_one("#scan-status", Label).render()) == "4 found"
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.screen is app.editor
        assert app.editor.view.cursor == starts[1]


async def test_scan_dialog_closes_with_escape(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "S")
        await wait_for(pilot, lambda: isinstance(app.screen, ScanDialog))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.editor)
        assert app.editor.view.cursor == 0


async def test_escape_stops_a_running_scan_and_the_editor_reads_on(nbdkit):
    """A scan of 8 GiB of data is still running when Escape closes the dialog: the scan
    stops (its connections come back) and the editor's next page reads as before."""
    app = EditorHarness(nbdkit("pattern", "8G").uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("S")  # (press() would settle: wait for the scan to finish)
        await wait_for(pilot, lambda: isinstance(app.screen, ScanDialog))
        dialog = app.screen
        await wait_for(pilot, lambda: "read" in str(dialog.query_one("#scan-status").render()))
        assert dialog.found is None  # still scanning
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.editor)
        await wait_for(pilot, lambda: not [w for w in dialog.workers if w.is_running])
        await press(pilot, "ctrl+g")
        await pilot.press(*"0x100000000", "enter")
        await settle(pilot)
        # the pattern plugin: each 8-byte word holds its own offset, big-endian
        assert "00 00 00 01 00 00 00 00" in rows(app)[1]
