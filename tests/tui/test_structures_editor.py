"""The editor names what it shows: the partition list gives each partition's filesystem
type and label, and the status line names the field under the cursor (structure, field,
value, meaning), in the primary and in its backup copies."""

from __future__ import annotations

from textual.widgets import OptionList

from tests.support.pilot import EditorHarness, press, rows, settle, status, structures_ready

EXT4_SUPERBLOCK = 35651584 + 1024  # partition 2 of the demo disk, plus 1024
FAT32_BACKUP = 1048576 + 6 * 512  # partition 1's backup boot sector


async def _goto(pilot, offset: int) -> None:
    await press(pilot, "ctrl+g")
    await pilot.press(*hex(offset), "enter")
    await settle(pilot)


async def test_partition_list_names_filesystems(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await structures_ready(pilot)
        await press(pilot, "p")
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert "vfat FAT32 'NBDTUI-EFI'" in labels[0]
        assert "ext4 'nbdtui-demo'" in labels[1]
        assert "ntfs 'nbdtui-data'" in labels[2]
        assert labels[3].split()[-2:] != ["ntfs", "'nbdtui-data'"]  # swap: not recognised


async def test_status_names_the_field_under_the_cursor(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await structures_ready(pilot)
        await _goto(pilot, EXT4_SUPERBLOCK + 0x38)
        assert "ext4 superblock: s_magic = 0xef53 (0xEF53)" in status(app)
        await _goto(pilot, 0x200)
        assert "GPT header: Signature = 'EFI PART'" in status(app)
        await _goto(pilot, 0x1BE)
        assert "protective MBR: entry1.boot_flag = 0x00 (not bootable)" in status(app)
        await _goto(pilot, FAT32_BACKUP + 0x43)
        assert "FAT32 boot sector (sector 6): BS_VolID (volume serial number)" in status(app)
        await _goto(pilot, 5)
        assert "superblock" not in status(app) and "boot sector" not in status(app)


async def test_sector_headers_name_the_structures(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await structures_ready(pilot)
        assert "── sector 0 ── 0x0 ── protective MBR " in rows(app)[0]
        await _goto(pilot, 1048576)
        header = rows(app)[0]
        assert "start of p1 EFI System Partition · FAT32 boot" in header
        await _goto(pilot, FAT32_BACKUP)
        assert "p1 EFI System Partition · FAT32 boot sector (se" in rows(app)[0]
