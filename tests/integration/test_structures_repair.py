"""`nbdtui repair` over NBD: damage the primary structure (zero it, flip a byte), repair it
through nbdtui, show the filesystem's own checker clean, then `nbdtui journal revert`
and show the damage back byte for byte. And every refusal: a damaged backup, a
read-only export, no terminal to ask on; each writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli_helpers import assert_one_line_error
from tests.support.fs_images import MiB, extract, make_disk, make_fs, read_at, run, write_at
from tests.support.repair_helpers import digest, repair, round_trip
from tests.support.requirements import require


def test_ext4_superblock_restored_from_group_1(qemu_nbd, tmp_path: Path) -> None:
    fs = make_fs(tmp_path, "ext4", "Restore", 40 * MiB)
    disk, (offset,) = make_disk(tmp_path, [fs], "gpt")
    write_at(disk, offset + 1024, bytes(1024))  # the primary superblock, zeroed
    server = qemu_nbd(disk, unix=True)

    def e2fsck() -> int:
        part = extract(disk, offset, fs.stat().st_size, tmp_path, "part.img")
        return run(require("e2fsck"), "-fn", str(part), check=False).returncode

    round_trip(server.uri, disk, offset, "restore-backup", e2fsck, tmp_path)


def test_ext4_4k_blocks_restored_from_block_32768(qemu_nbd, tmp_path: Path) -> None:
    image = make_fs(tmp_path, "ext4", "Big", 600 * MiB, ("-b", "4096"))
    write_at(image, 1024 + 0x38, b"\x00\x00")  # the magic number, flipped to zero
    server = qemu_nbd(image, unix=True)

    def e2fsck() -> int:
        return run(require("e2fsck"), "-fn", str(image), check=False).returncode

    round_trip(server.uri, image, 0, "restore-backup", e2fsck, tmp_path, limit=MiB)
    dry = repair(server.uri, 0, "restore-backup", tmp_path / "j", "--dry-run")
    assert "ext4 superblock at offset 0" in dry.text


@pytest.mark.parametrize(
    ("fs", "label", "mib", "at", "damage", "action", "checker"),
    [
        # the label changes, the crc32c does not
        pytest.param("ext4", "Sum", 24, 1024 + 0x78, b"Flipped", "fix-checksums",
                     ("e2fsck", "-fn"), id="ext4-checksum-fixed"),
        pytest.param("fat32", "FATFIX", 40, 0, bytes(512), "restore-backup",
                     ("fsck.fat", "-n"), id="fat32-boot-sector-restored"),
        pytest.param("ntfs", "NtFix", 40, 0, bytes(512), "restore-backup",
                     ("ntfs-3g.probe", "--readonly"), id="ntfs-boot-sector-from-last-sector"),
    ],
)  # fmt: skip
def test_whole_image_repaired(
    qemu_nbd,
    tmp_path: Path,
    fs: str,
    label: str,
    mib: int,
    at: int,
    damage: bytes,
    action: str,
    checker: tuple[str, str],
) -> None:
    image = make_fs(tmp_path, fs, label, mib * MiB)
    write_at(image, at, damage)
    server = qemu_nbd(image, unix=True)
    program, option = checker

    def check() -> int:
        return run(require(program), option, str(image), check=False).returncode

    round_trip(server.uri, image, 0, action, check, tmp_path)


def test_exfat_checksum_fixed_and_region_restored(qemu_nbd, tmp_path: Path) -> None:
    image = make_fs(tmp_path, "exfat", "ExFix", 40 * MiB)
    write_at(image, 0x100, b"\x5a")  # boot code: only the checksum notices
    server = qemu_nbd(image, unix=True)

    def fsck() -> int:
        return run(require("fsck.exfat"), "-n", str(image), check=False).returncode

    round_trip(server.uri, image, 0, "fix-checksums", fsck, tmp_path)
    write_at(image, 0, bytes(512))  # now the whole boot sector
    round_trip(server.uri, image, 0, "restore-backup", fsck, tmp_path)


def _sgdisk_clean(disk: Path) -> Callable[[], int]:
    def verify() -> int:
        out = run(require("sgdisk"), "-v", str(disk), check=False).stdout
        return 0 if "No problems found" in out else 1

    return verify


def test_gpt_primary_restored_from_backup(qemu_nbd, tmp_path: Path) -> None:
    fs = make_fs(tmp_path, "fat16", "GPT", 24 * MiB)
    disk, _ = make_disk(tmp_path, [fs, fs], "gpt")
    write_at(disk, 512, bytes(512 * 33))  # primary header and entries
    server = qemu_nbd(disk, unix=True)
    round_trip(server.uri, disk, 0, "restore-backup", _sgdisk_clean(disk), tmp_path)


def test_gpt_crcs_fixed(qemu_nbd, tmp_path: Path) -> None:
    fs = make_fs(tmp_path, "fat16", "GPT", 24 * MiB)
    disk, _ = make_disk(tmp_path, [fs], "gpt")
    # Entry 1's name edited by hand in both arrays (LBA 2 and the 32 sectors before the
    # backup header), the CRCs left as they were.
    backup_entries = disk.stat().st_size - 33 * 512
    for at in (1024, backup_entries):
        write_at(disk, at + 56, "Renamed".encode("utf-16-le"))
    server = qemu_nbd(disk, unix=True)
    round_trip(server.uri, disk, 0, "fix-checksums", _sgdisk_clean(disk), tmp_path)


def test_damaged_backup_refused(qemu_nbd, tmp_path: Path) -> None:
    image = make_fs(tmp_path, "exfat", "Both", 40 * MiB)
    write_at(image, 0x100, b"\x5a")  # the main region's checksum fails
    write_at(image, 12 * 512 + 0x100, b"\xa5")  # and the backup's own
    before = digest(image)
    server = qemu_nbd(image, unix=True)
    result = repair(server.uri, 0, "restore-backup", tmp_path / "j", "--yes")
    assert_one_line_error(result, 1, "fails its own checks", "nothing was written")
    assert digest(image) == before


@pytest.mark.parametrize("case", ["read-only", "no-terminal", "no-structure", "no-checksum"])
def test_refusals_write_nothing(qemu_nbd, tmp_path: Path, case: str) -> None:
    image = make_fs(tmp_path, "fat32", "REFUSE", 40 * MiB)
    write_at(image, 0, bytes(512))
    before = digest(image)
    server = qemu_nbd(image, unix=True, readonly=case == "read-only")
    journal = tmp_path / "j"
    if case == "read-only":
        result = repair(server.uri, 0, "restore-backup", journal, "--yes")
        assert_one_line_error(result, 1, "read-only", "nothing was written")
    elif case == "no-terminal":
        result = repair(server.uri, 0, "restore-backup", journal)
        assert_one_line_error(result, 2, "without --yes", "no terminal")
    elif case == "no-structure":
        result = repair(server.uri, 1 * MiB, "restore-backup", journal, "--yes")
        assert_one_line_error(result, 2, "no filesystem", str(MiB))
    else:
        result = repair(server.uri, 0, "fix-checksums", journal, "--yes")
        assert result.returncode == 0 and "nothing to change" in result.text
    assert digest(image) == before
    assert read_at(image, 0, 512) == bytes(512)


@pytest.mark.parametrize(("answer", "written"), [("n", False), ("y", True)])
def test_terminal_is_asked(qemu_nbd, tmp_path: Path, answer: str, written: bool) -> None:
    image = make_fs(tmp_path, "fat32", "ASK", 40 * MiB)
    write_at(image, 0, bytes(512))
    server = qemu_nbd(image, unix=True)
    master, slave = os.openpty()
    try:
        os.write(master, f"{answer}\n".encode())
        argv = ["repair", server.uri, "--offset", "0", "--restore-backup"]
        proc = subprocess.run(
            [sys.executable, "-m", "nbdtui", *argv, "--journal", str(tmp_path / "j")],
            stdin=slave,
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(master)
        os.close(slave)
    out = proc.stdout.decode()
    assert "write these 512 bytes to" in out and "[y/N]" in out
    assert proc.returncode == (0 if written else 1), proc.stderr
    assert (read_at(image, 0, 512) == read_at(image, 6 * 512, 512)) is written
    assert ("journal entry #" in out) is written


def test_no_backup_refused(qemu_nbd, tmp_path: Path) -> None:
    image = make_fs(tmp_path, "fat16", "NOBACKUP", 24 * MiB)
    before = digest(image)
    server = qemu_nbd(image, unix=True)
    result = repair(server.uri, 0, "restore-backup", tmp_path / "j", "--yes")
    assert_one_line_error(result, 1, "FAT16 boot sector", "has no backup copy")
    assert digest(image) == before
