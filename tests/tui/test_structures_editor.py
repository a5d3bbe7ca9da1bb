"""The editor names what it shows: the partition list gives each partition's filesystem
type and label, and the status line names the field under the cursor (structure, field,
value, meaning), in the primary and in its backup copies."""

from __future__ import annotations

from textual.widgets import Label, OptionList

from nbdtui.tui.dialogs.scan_dialog import ScanDialog
from nbdtui.tui.dialogs.structure_dialog import StructureDialog
from tests.support.cli_helpers import nbdtui as run_cli
from tests.support.fs_images import MiB, extract, make_disk, read_at, run, write_at
from tests.support.pilot import (
    EditorHarness,
    notes,
    option_prompts,
    press,
    rows,
    settle,
    status,
    structures_ready,
    wait_for,
)
from tests.support.requirements import require

EFI = 1048576  # partition 1 of the demo disk: FAT32
EXT4_SUPERBLOCK = 35651584 + 1024  # partition 2 of the demo disk, plus 1024
FAT32_BACKUP = EFI + 6 * 512  # partition 1's backup boot sector


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
        labels = option_prompts(options)
        assert "vfat FAT32 'NBDTUI-EFI'" in labels[0]
        assert "ext4 'nbdtui-demo'" in labels[1]
        assert "ntfs 'nbdtui-data'" in labels[2]
        assert "swap 'nbdtui-swap'" in labels[3]  # a volume family's type and label too


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


async def _open_repair(pilot) -> None:
    await structures_ready(pilot)
    await _goto(pilot, EFI)
    await press(pilot, "e", "y")  # write mode
    assert pilot.app.editor.writable
    await press(pilot, "R")


async def test_structure_view_lists_fields_and_follows_one(demo_uri):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await structures_ready(pilot)
        await _goto(pilot, EFI + 0x20)
        await press(pilot, "R")
        options = app.screen.query_one(OptionList)
        prompts = option_prompts(options)
        row = next(i for i, p in enumerate(prompts) if "BPB_BkBootSec" in p)
        assert prompts[row].startswith(f"0x{EFI + 0x32:08x}  BPB_BkBootSec")
        assert prompts[row].endswith(f"6  → 0x{FAT32_BACKUP:x}")
        options.highlighted = row
        await press(pilot, "enter")
        assert app.screen is app.editor and app.editor.view.cursor == FAT32_BACKUP
        await press(pilot, "R")  # the backup copy is the same structure: its view again
        options = app.screen.query_one(OptionList)
        options.highlighted = 2  # after the two repairs: the first backup
        await press(pilot, "enter")
        assert app.editor.view.cursor == FAT32_BACKUP
        await press(pilot, "R")  # read-only: a repair is refused, nothing staged
        await press(pilot, "enter")
        assert "Enter write mode (e) first" in notes(app)[-1]
        assert not app.editor.has_pending_edits()


async def test_restore_from_backup_is_staged_reviewed_and_reverted(qemu_nbd, demo_image, tmp_path):
    write_at(demo_image, EFI, bytes(512))  # partition 1's FAT32 boot sector, zeroed
    backup = read_at(demo_image, FAT32_BACKUP, 512)
    journal = tmp_path / "journal.sqlite3"
    app = EditorHarness(qemu_nbd(demo_image, unix=True).uri, journal=journal)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await _open_repair(pilot)
        dialog = app.screen
        assert isinstance(dialog, StructureDialog)
        text = " ".join(str(label.render()) for label in dialog.query(Label))
        assert "boot_signature FAILED" in text
        options = dialog.query_one(OptionList)
        prompts = option_prompts(options)
        assert any(p.startswith("backup sector 6 at 0x100c00: differs") for p in prompts)
        await press(pilot, "enter")  # the first choice: restore from the backup
        assert app.screen is app.editor
        ranges = app.editor.edits.ranges()
        assert ranges and all(r.offset >= EFI and r.end <= EFI + 512 for r in ranges)
        assert all(r.old == bytes(r.length) for r in ranges)
        assert app.editor.edits.overlay(EFI, bytes(512)) == backup
        assert read_at(demo_image, EFI, 512) == bytes(512)  # nothing written yet
        await press(pilot, "ctrl+s", "y")
        assert notes(app)[-1].startswith("Wrote ")
    assert read_at(demo_image, EFI, 512) == backup
    reverted = run_cli("journal", "revert", "1", "--journal", str(journal))
    assert reverted.returncode == 0, reverted.stderr
    assert read_at(demo_image, EFI, 512) == bytes(512)


async def test_a_damaged_backup_stages_nothing(qemu_nbd, demo_image, tmp_path):
    write_at(demo_image, EFI + 0x100, b"\xff")  # the boot code: the backup now differs
    write_at(demo_image, FAT32_BACKUP + 510, b"\0\0")  # and the backup has no 55 AA
    app = EditorHarness(qemu_nbd(demo_image, unix=True).uri, journal=tmp_path / "j")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await _open_repair(pilot)
        await press(pilot, "enter")
        assert "fails its own checks" in notes(app)[-1]
        assert not app.editor.has_pending_edits()


async def test_volume_family_checksum_staged_from_the_structure_view(qemu_nbd, tmp_path):
    """R on an XFS partition (a volume family): its view lists its checks, and "fix
    checksums" stages the superblock's CRC-32C, which Ctrl+S writes (xfs_db agrees)."""
    image = tmp_path / "xfs.img"
    with image.open("wb") as f:
        f.truncate(300 * MiB)
    run(require("mkfs.xfs"), "-q", "-L", "inside", str(image))
    disk, (offset,) = make_disk(tmp_path, [image], "gpt")
    image.unlink()
    write_at(disk, offset + 108, b"edited")  # sb_fname: the CRC no longer matches
    app = EditorHarness(qemu_nbd(disk, unix=True).uri, journal=tmp_path / "j")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await structures_ready(pilot)
        await press(pilot, "p")
        options = app.screen.query_one(OptionList)
        assert "xfs 'edited'" in str(options.get_option_at_index(0).prompt)
        await press(pilot, "escape")
        await _goto(pilot, offset)
        await press(pilot, "e", "y", "R")
        dialog = app.screen
        assert isinstance(dialog, StructureDialog)
        text = " ".join(str(label.render()) for label in dialog.query(Label))
        assert "crc32c FAILED" in text
        dialog.query_one(OptionList).highlighted = 1  # fix checksums
        await press(pilot, "enter")
        ranges = app.editor.edits.ranges()
        assert ranges and all(offset + 224 <= r.offset and r.end <= offset + 228 for r in ranges)
        await press(pilot, "ctrl+s", "y")
        assert notes(app)[-1].startswith("Wrote ")
    part = extract(disk, offset, 300 * MiB, tmp_path, "part.img")
    out = run(require("xfs_db"), "-r", "-c", "sb 0", "-c", "print crc", str(part)).stdout
    assert "(correct)" in out


async def test_a_filesystem_found_by_the_scan_can_be_restored_with_r(qemu_nbd, tmp_path):
    """An XFS partition whose primary superblock is zeroed is not in the partition
    list's survey; S finds it from AG 1's secondary, and from then on R at its start
    offers its repair: restoring the primary, written with Ctrl+S (xfs_repair -n clean)."""
    image = tmp_path / "xfs.img"
    with image.open("wb") as f:
        f.truncate(300 * MiB)
    run(require("mkfs.xfs"), "-q", "-L", "lost", str(image))
    disk, (offset,) = make_disk(tmp_path, [image], "gpt")
    image.unlink()
    write_at(disk, offset, bytes(512))
    app = EditorHarness(qemu_nbd(disk, unix=True).uri, journal=tmp_path / "j")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await structures_ready(pilot)
        assert app.editor.structures.structure_at(offset).type == "gpt"  # not seen yet
        await press(pilot, "S")
        await wait_for(pilot, lambda: isinstance(app.screen, ScanDialog))
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.found is not None)
        assert [(s.type, s.offset, s.label) for s in dialog.found] == [("xfs", offset, "lost")]
        await press(pilot, "enter")
        assert app.screen is app.editor and app.editor.view.cursor == offset
        await press(pilot, "e", "y", "R")
        assert isinstance(app.screen, StructureDialog)
        await press(pilot, "enter")  # restore from the backup copy
        ranges = app.editor.edits.ranges()
        assert ranges and all(offset <= r.offset and r.end <= offset + 512 for r in ranges)
        await press(pilot, "ctrl+s", "y")
        assert notes(app)[-1].startswith("Wrote ")
    assert read_at(disk, offset, 4) == b"XFSB"
    part = extract(disk, offset, 300 * MiB, tmp_path, "part.img")
    assert run(require("xfs_repair"), "-n", str(part), check=False).returncode == 0
