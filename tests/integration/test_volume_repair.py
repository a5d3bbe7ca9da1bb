"""`nbdtui repair` on the volume families over NBD: XFS, btrfs and LUKS2 primaries
restored from their backups (a secondary superblock, a mirror, the secondary header),
and the checksums of XFS v5, btrfs, LUKS2, MD 1.x and the LVM2 label stored again. Each
time the family's own tool is the judge (xfs_repair -n, btrfs check --readonly,
cryptsetup luksDump, mdadm --examine, blkid -p), and `nbdtui journal revert` brings
the damage back byte for byte. The MD superblock and the LVM label are built from the
spec (mdadm and pvcreate need block devices); the refusals write nothing."""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import pytest

from tests.support.cli_helpers import assert_one_line_error
from tests.support.fs_images import MiB, extract, make_disk, read_at, run, write_at
from tests.support.repair_helpers import digest, repair, round_trip
from tests.support.requirements import require
from tests.support.volume_headers import md_end_offset, md_superblock, pv_label


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def zero_and_restore(
    server_uri: str, image: Path, at: int, length: int, checker, tmp_path: Path
) -> None:
    """Zero ``length`` bytes at ``at`` (a primary), restore them from their backup
    through nbdtui, and check that they come back exactly as the tool wrote them."""
    original = read_at(image, at, length)
    write_at(image, at, bytes(length))

    def same() -> None:
        assert read_at(image, at, length) == original

    round_trip(server_uri, image, 0, "restore-backup", checker, tmp_path, repaired=same)


def xfs_image(tmp_path: Path) -> Path:
    image = sparse(tmp_path / "xfs.img", 300 * MiB)
    run(require("mkfs.xfs"), "-q", "-L", "xfsfix", str(image))
    return image


def xfs_repair_n(image: Path) -> int:
    return run(require("xfs_repair"), "-n", str(image), check=False).returncode


def test_xfs_primary_restored_from_a_secondary(qemu_nbd, tmp_path: Path) -> None:
    """The primary superblock zeroed: restored from AG 1's secondary with what differs
    by design (sb_inprogress, the realtime inodes, the counters) made a primary's again:
    the sector comes back exactly as mkfs.xfs wrote it."""
    image = xfs_image(tmp_path)
    server = qemu_nbd(image, unix=True)
    zero_and_restore(server.uri, image, 0, 512, lambda: xfs_repair_n(image), tmp_path)


def test_xfs_crc_fixed_inside_a_partition(qemu_nbd, tmp_path: Path) -> None:
    fs = xfs_image(tmp_path)
    disk, (offset,) = make_disk(tmp_path, [fs], "gpt")
    fs.unlink()
    write_at(disk, offset + 108, b"renamed")  # sb_fname: the CRC no longer matches

    def checked() -> int:
        part = extract(disk, offset, 300 * MiB, tmp_path, "part.img")
        crc = run(require("xfs_db"), "-r", "-c", "sb 0", "-c", "print crc", str(part)).stdout
        label = run(require("xfs_db"), "-r", "-c", "sb 0", "-c", "print fname", str(part))
        assert '"renamed' in label.stdout
        code = xfs_repair_n(part) if "(correct)" in crc else 1
        part.unlink()
        return code

    server = qemu_nbd(disk, unix=True)
    round_trip(server.uri, disk, offset, "fix-checksums", checked, tmp_path, limit=2 * MiB)


def btrfs_image(tmp_path: Path) -> Path:
    image = sparse(tmp_path / "btrfs.img", 300 * MiB)
    run(require("mkfs.btrfs"), "-q", "-L", "pool", str(image))
    return image


def btrfs_check(image: Path) -> int:
    return run(require("btrfs"), "check", "--readonly", str(image), check=False).returncode


def test_btrfs_primary_restored_from_its_mirror(qemu_nbd, tmp_path: Path) -> None:
    image = btrfs_image(tmp_path)
    server = qemu_nbd(image, unix=True)
    zero_and_restore(server.uri, image, 0x10000, 4096, lambda: btrfs_check(image), tmp_path)


def test_btrfs_csum_fixed(qemu_nbd, tmp_path: Path) -> None:
    image = btrfs_image(tmp_path)
    write_at(image, 0x10000 + 0x12B, b"renamed")  # the label: the crc32c does not match
    server = qemu_nbd(image, unix=True)

    def csum_matches() -> int:
        dump = run(require("btrfs"), "inspect-internal", "dump-super", str(image)).stdout
        assert "label\t\t\trenamed" in dump
        return 0 if re.search(r"^csum\s+0x[0-9a-f]+ \[match\]", dump, re.M) else 1

    round_trip(server.uri, image, 0, "fix-checksums", csum_matches, tmp_path)
    assert btrfs_check(image) != 0  # reverted: the mismatch is back


def luks2_image(tmp_path: Path) -> Path:
    image = sparse(tmp_path / "luks2.img", 20 * MiB)
    key = tmp_path / "key"
    key.write_bytes(b"secret")
    run(require("cryptsetup"), "luksFormat", "--batch-mode", "--type", "luks2", "--key-file",
        str(key), "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--label", "vault",
        str(image))  # fmt: skip
    return image


def luks_clean(image: Path, tmp_path: Path) -> int:
    """0 when cryptsetup finds both headers sound. It is run on a copy: cryptsetup
    repairs a LUKS2 header from the other one whenever it can write."""
    copy = tmp_path / "luks-copy.img"
    shutil.copyfile(image, copy)
    dump = run(require("cryptsetup"), "luksDump", "--debug", str(copy), check=False)
    out = dump.stdout + dump.stderr
    bad = "requires recovery" in out or "checksum error" in out
    is_luks = run(require("cryptsetup"), "isLuks", str(copy), check=False).returncode == 0
    return 1 if bad or dump.returncode != 0 or not is_luks else 0


def test_luks2_primary_restored_from_the_secondary(qemu_nbd, tmp_path: Path) -> None:
    image = luks2_image(tmp_path)
    write_at(image, 0, bytes(4096))  # the primary's binary header
    server = qemu_nbd(image, unix=True)

    def label_back() -> None:
        dump = run(require("cryptsetup"), "luksDump", str(image)).stdout
        assert re.search(r"^Label:\s+vault$", dump, re.M), dump
        assert read_at(image, 0, 6) == b"LUKS\xba\xbe"

    round_trip(
        server.uri,
        image,
        0,
        "restore-backup",
        lambda: luks_clean(image, tmp_path),
        tmp_path,
        limit=MiB,
        repaired=label_back,
    )


def test_luks2_checksums_fixed_in_both_headers(qemu_nbd, tmp_path: Path) -> None:
    image = luks2_image(tmp_path)
    for at in (0, 0x4000):  # the label, edited by hand in both headers
        write_at(image, at + 24, b"edited\0")
    server = qemu_nbd(image, unix=True)
    round_trip(
        server.uri,
        image,
        0,
        "fix-checksums",
        lambda: luks_clean(image, tmp_path),
        tmp_path,
        limit=MiB,
    )


def test_luks2_both_headers_damaged_refused(qemu_nbd, tmp_path: Path) -> None:
    image = luks2_image(tmp_path)
    write_at(image, 0, bytes(4096))
    write_at(image, 0x4000 + 24, b"edited\0")  # the secondary's checksum fails too
    before = digest(image)
    server = qemu_nbd(image, unix=True)
    result = repair(server.uri, 0, "restore-backup", tmp_path / "j", "--yes")
    assert_one_line_error(result, 1, "fails its own checks", "nothing was written")
    assert digest(image) == before


def mdadm_examine(image: Path) -> str:
    return run(require("mdadm"), "--examine", str(image), check=False).stdout


def test_md_sb_csum_fixed(qemu_nbd, tmp_path: Path) -> None:
    image = sparse(tmp_path / "md.img", 32 * MiB)
    write_at(image, 4096, md_superblock(32 * MiB // 512 - 2048))
    assert re.search(r"Checksum : \w+ - correct", mdadm_examine(image))
    write_at(image, 4096 + 32, b"host:renamed")  # set_name: sb_csum no longer agrees

    def correct() -> int:
        out = mdadm_examine(image)
        assert "host:renamed" in out
        return 0 if re.search(r"Checksum : \w+ - correct", out) else 1

    server = qemu_nbd(image, unix=True)
    round_trip(server.uri, image, 0, "fix-checksums", correct, tmp_path)


def test_lvm_label_crc_fixed(qemu_nbd, tmp_path: Path) -> None:
    image = sparse(tmp_path / "pv.img", 32 * MiB)
    label = bytearray(pv_label(32 * MiB))
    write_at(image, 512, bytes(label))

    def blkid_sees_pv() -> int:
        out = run(require("blkid"), "-p", "-o", "export", str(image), check=False).stdout
        return 0 if "TYPE=LVM2_member" in out else 1

    assert blkid_sees_pv() == 0
    size_at = 32 + 32  # the PV header's device size, behind its UUID
    struct.pack_into("<Q", label, size_at, 16 * MiB)  # edited: the CRC no longer agrees
    write_at(image, 512, bytes(label))
    server = qemu_nbd(image, unix=True)
    round_trip(server.uri, image, 0, "fix-checksums", blkid_sees_pv, tmp_path)


@pytest.mark.parametrize("kind", ["lvm", "swap"])
def test_nothing_to_restore_refused(qemu_nbd, tmp_path: Path, kind: str) -> None:
    image = sparse(tmp_path / "vol.img", 32 * MiB)
    if kind == "lvm":
        write_at(image, 512, pv_label(32 * MiB))
        wanted = ("no backup copy", "nothing was written")
    else:
        image.chmod(0o600)
        run(require("mkswap"), "-L", "sw", str(image))
        wanted = ("swap has no backup copy and no checksum", "nothing was written")
    before = digest(image)
    server = qemu_nbd(image, unix=True)
    result = repair(server.uri, 0, "restore-backup", tmp_path / "j", "--yes")
    assert_one_line_error(result, 1, *wanted)
    assert digest(image) == before


def test_md_1_0_sb_csum_fixed_at_the_end_of_its_member(qemu_nbd, tmp_path: Path) -> None:
    """A 1.0 superblock lies at the end of its member: `repair --offset 0` finds it by
    scanning the member's space, and stores its checksum."""
    size = 32 * MiB
    image = sparse(tmp_path / "md10.img", size)
    write_at(image, md_end_offset(size), md_superblock(size // 512, "host:end", "1.0"))
    write_at(image, md_end_offset(size) + 32, b"host:moved")

    def correct() -> int:
        out = mdadm_examine(image)
        assert "host:moved" in out
        return 0 if re.search(r"Checksum : \w+ - correct", out) else 1

    server = qemu_nbd(image, unix=True)
    round_trip(server.uri, image, 0, "fix-checksums", correct, tmp_path)
