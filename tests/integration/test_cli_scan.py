"""`nbdtui scan`: filesystems and volumes found on a disk whose partition table was
wiped, each at its partition's offset with blkid's type, label and UUID (blkid -p -O
OFFSET on the same image is the oracle), holes not read (nbdkit's log filter)."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.cli_helpers import assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_cli
from tests.support.fs_images import copy_sparse
from tests.support.repair_helpers import round_trip
from tests.support.requirements import require
from tests.support.volume_headers import md_end_offset, md_superblock, pv_label

MiB = 1 << 20
DISK = 1000 * MiB
#: (offset MiB, size MiB, how to make it, label) of each filesystem or volume.
LAYOUT = (
    (1, 64, "ext4", "EXT-ROOT"),
    (66, 40, "vfat", "FATBOOT"),
    (110, 16, "swap", "swappy"),
    (130, 300, "xfs", "xfsdata"),
    (440, 300, "btrfs", "pool"),
    (750, 20, "luks2", "vault"),
    (780, 20, "luks1", ""),
    (810, 32, "lvm", ""),
    (850, 64, "md", "host:vol"),
    (851, 40, "vfat", "INSIDE"),  # in the MD member's data area
)
TYPES = {"luks1": "crypto_LUKS", "luks2": "crypto_LUKS", "lvm": "LVM2_member",
         "md": "linux_raid_member"}  # fmt: skip


def sh(*argv: str) -> None:
    subprocess.run([require(argv[0]), *argv[1:]], check=True, capture_output=True)


def make(kind: str, path: Path, size: int, label: str, tmp: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
    if kind == "ext4":
        sh("mkfs.ext4", "-q", "-F", "-L", label, str(path))
    elif kind == "vfat":
        sh("mkfs.vfat", "-F", "32", "-n", label, str(path))
    elif kind == "swap":
        path.chmod(0o600)
        sh("mkswap", "-L", label, str(path))
    elif kind == "xfs":
        sh("mkfs.xfs", "-q", "-L", label, str(path))
    elif kind == "btrfs":
        sh("mkfs.btrfs", "-q", "-L", label, str(path))
    elif kind.startswith("luks"):
        (tmp / "key").write_bytes(b"secret")
        extra = ("--label", label) if label else ()
        sh("cryptsetup", "luksFormat", "--batch-mode", "--type", kind, "--key-file",
           str(tmp / "key"), "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
           *extra, str(path))  # fmt: skip
    elif kind == "lvm":
        with open(path, "r+b") as f:
            f.seek(512)
            f.write(pv_label(size))
    elif kind == "md":
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(md_superblock(size // 512 - 2048))


@pytest.fixture(scope="module")
def wiped_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GPT disk with a filesystem or volume in each partition, then its partition
    table (primary and backup) zeroed."""
    tmp = tmp_path_factory.mktemp("scan")
    disk = tmp / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(DISK)
    table = "label: gpt\n" + "".join(
        f"start={off * 2048}, size={size * 2048}\n" for off, size, *_ in LAYOUT[:-1]
    )
    subprocess.run([require("sfdisk"), "-q", str(disk)], input=table.encode(), check=True)
    for i, (off, size, kind, label) in enumerate(LAYOUT):
        part = tmp / f"part{i}.img"
        make(kind, part, size * MiB, label, tmp)
        copy_sparse(part, disk, off * MiB)
        part.unlink()
    with open(disk, "r+b") as f:
        f.write(bytes(34 * 512))  # protective MBR, GPT header and entries
        f.seek(DISK - 33 * 512)
        f.write(bytes(33 * 512))  # backup entries and header
    return disk


def blkid_at(disk: Path, offset: int, size: int | None = None) -> dict[str, str]:
    sized = ["-S", str(size)] if size is not None else []
    argv = [require("blkid"), "-p", "-O", str(offset), *sized, "-o", "export", str(disk)]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_scan_finds_each_filesystem_after_the_table_is_wiped(wiped_disk: Path, qemu_nbd) -> None:
    assert "PTTYPE" not in blkid_at(wiped_disk, 0)  # the table is really gone
    server = qemu_nbd(wiped_disk, readonly=True)
    result = run_cli("scan", server.uri, "--json")
    assert result.returncode == 0, result.stderr
    found = result.json()
    assert [(s["offset"], s["type"], s["label"]) for s in found] == [
        (off * MiB, TYPES.get(kind, kind), label) for off, _, kind, label in LAYOUT
    ]
    for s in found:
        ids = blkid_at(wiped_disk, s["offset"])
        assert (s["type"], s["uuid"], s["label"]) == (ids["TYPE"], ids.get("UUID", ""),
                                                     ids.get("LABEL", ""))  # fmt: skip
        assert all(c["ok"] for c in s["checks"]), s
    sizes = {s["offset"] // MiB: s["size"] for s in found}
    assert sizes[1] == 64 * MiB and sizes[110] == 16 * MiB and sizes[130] == 300 * MiB
    assert sizes[440] == 300 * MiB and sizes[810] == 32 * MiB

    text = run_cli("scan", server.uri)
    assert text.returncode == 0
    rows = text.text.splitlines()[1:]
    assert len(rows) == len(LAYOUT)
    assert re.match(r"\s*136314880\s+xfs\s+300\.0 MiB\s+xfsdata\s+[0-9a-f-]{36}$", rows[3])


def test_scan_does_not_read_the_holes(wiped_disk: Path, nbdkit) -> None:
    server = nbdkit("file", str(wiped_disk), log=True)
    result = run_cli("scan", server.uri)
    assert result.returncode == 0, result.stderr
    assert "xfsdata" in result.text
    log = server.log_path.read_text()
    read = sum(int(n, 16) if n.startswith("0x") else int(n)
               for n in re.findall(r"Read id=\d+ offset=\S+ count=(\S+)", log))  # fmt: skip
    assert 0 < read < DISK // 10, read


def test_scan_of_an_empty_export(nbdkit) -> None:
    result = run_cli("scan", nbdkit("memory", "64M").uri)
    assert (result.returncode, result.text) == (0, "no filesystem or volume signature found\n")


def test_scan_errors_are_one_line() -> None:
    assert_one_line_error(run_cli("scan", "nbd://127.0.0.1:1/x", "--connect-timeout", "2"), 1)
    assert_one_line_error(run_cli("scan", "nbd:///?bad=uri=x"), 2)
    assert_one_line_error(run_cli("scan", "nbd://h/x", "--connect-timeout", "0"), 2, "connect")


#: (offset MiB, size MiB, kind, label) on a disk whose primary superblocks are wiped.
DAMAGED = (
    (1, 300, "xfs", "xfsdata"),
    (310, 300, "btrfs", "pool"),
    (620, 20, "luks2", "vault"),
    (650, 32, "md1.0", "host:end"),
    (700, 300, "ext4", "gone"),  # its primary wiped: its backups must not pose as others
    (1010, 40, "vfat", "FATBAK"),  # sector 0 wiped: found by its backup boot sector
)


def test_scan_finds_filesystems_from_their_backups(tmp_path: Path, qemu_nbd) -> None:
    """Primary superblocks zeroed: XFS is found from AG 1's secondary, btrfs from its
    mirror at 64 MiB, LUKS2 from its secondary header, each at its real start with the
    failed check "primary"; an MD 1.0 superblock at the end of its member says where
    the member starts (blkid -p -O OFFSET -S SIZE agrees); ext4 is found from its group 1
    backup superblock and FAT32 from its backup boot sector, each at its real start."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(1100 * MiB)
    for off, size, kind, label in DAMAGED:
        part = tmp_path / "part.img"
        if kind == "md1.0":
            with open(part, "wb") as f:
                f.truncate(size * MiB)
                f.seek(md_end_offset(size * MiB))
                f.write(md_superblock(size * MiB // 512, label, "1.0"))
            assert (
                "host:end"
                in subprocess.run(
                    [require("mdadm"), "--examine", str(part)], capture_output=True, text=True
                ).stdout
            )
        else:
            make(kind, part, size * MiB, label, tmp_path)
        copy_sparse(part, disk, off * MiB)
        part.unlink()
    ids = blkid_at(disk, 650 * MiB, 32 * MiB)
    with open(disk, "r+b") as f:
        wiped = (
            (1 * MiB, 512),
            (310 * MiB + 0x10000, 4096),
            (620 * MiB, 4096),
            (700 * MiB + 1024, 1024),
            (1010 * MiB, 512),
        )
        for at, n in wiped:
            f.seek(at)
            f.write(bytes(n))
    assert "TYPE" not in blkid_at(disk, 1 * MiB)  # the primaries are really gone

    result = run_cli("scan", qemu_nbd(disk, readonly=True).uri, "--json")
    assert result.returncode == 0, result.stderr
    found = result.json()
    assert [(s["offset"], s["type"], s["label"]) for s in found] == [
        (1 * MiB, "xfs", "xfsdata"),
        (310 * MiB, "btrfs", "pool"),
        (620 * MiB, "crypto_LUKS", "vault"),
        (650 * MiB, "linux_raid_member", "host:end"),
        (700 * MiB, "ext4", "gone"),
        (1010 * MiB, "vfat", "FATBAK"),
    ]
    assert found[4]["size"] == 300 * MiB and found[5]["size"] == 40 * MiB
    assert found[5]["at"] == 1010 * MiB  # the decoded boot sector: the wiped sector 0
    assert any("backup at sector 6" in p for p in found[5]["problems"]), found[5]
    for s in found[:3]:
        assert {"name": "primary", "ok": False} in s["checks"], s
    assert found[0]["at"] == 1 * MiB + 75 * MiB  # AG 1 of 4 (mkfs.xfs on 300 MiB)
    assert found[1]["at"] == 310 * MiB + 64 * MiB
    assert found[2]["at"] == 620 * MiB + 16384
    md = found[3]
    assert (md["uuid"], md["version"]) == (ids["UUID"], ids["VERSION"]) == (md["uuid"], "1.0")
    assert md["at"] == 650 * MiB + md_end_offset(32 * MiB)


def test_scan_without_block_status_reads_everything(tmp_path: Path, nbd_server) -> None:
    """nbd-server has no base:allocation: the whole export is read, and found the same."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(96 * MiB)
    part = tmp_path / "part.img"
    make("swap", part, 16 * MiB, "noalloc", tmp_path)
    copy_sparse(part, disk, 40 * MiB)
    result = run_cli("scan", nbd_server({"disk": {"file": disk}}).uri, "--json")
    assert result.returncode == 0, result.stderr
    ids = blkid_at(disk, 40 * MiB)
    assert [(s["offset"], s["type"], s["label"], s["uuid"]) for s in result.json()] == [
        (40 * MiB, "swap", "noalloc", ids["UUID"])
    ]


def test_scan_reads_around_bad_areas(tmp_path: Path, nbdkit) -> None:
    """nbdkit's ddrescue filter fails the reads of the areas its mapfile marks bad: one
    in data before the filesystems, one on XFS's secondary superblock in AG 1. The scan
    goes on around both (read again in 64 KiB pieces), finds XFS with that backup
    unreadable and the swap behind it, and says what it could not read."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(400 * MiB)
        f.seek(2 * MiB)
        f.write(random.Random(3).randbytes(8 * MiB))
    for off, size, kind, label in ((50, 300, "xfs", "bad-ag1"), (360, 16, "swap", "behind")):
        part = tmp_path / "part.img"
        make(kind, part, size * MiB, label, tmp_path)
        copy_sparse(part, disk, off * MiB)
        part.unlink()
    ag1 = 50 * MiB + 75 * MiB
    bad = [(3 * MiB, MiB), (ag1, 64 * 1024)]
    good = [(0, 3 * MiB), (4 * MiB, ag1 - 4 * MiB), (ag1 + 64 * 1024, 400 * MiB - ag1 - 65536)]
    lines = [f"{pos:#x} {n:#x} {'+' if (pos, n) in good else '-'}" for pos, n in sorted(good + bad)]
    mapfile = tmp_path / "disk.map"
    mapfile.write_text("# Mapfile. Created by GNU ddrescue\n0x0 +\n" + "\n".join(lines) + "\n")
    server = nbdkit("file", str(disk), filters=("ddrescue",),
                    extra_options=(f"ddrescue-mapfile={mapfile}",))  # fmt: skip
    result = run_cli("scan", server.uri, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        "nbdtui: warning: 1.1 MiB could not be read (2 ranges, the first at 0x300000): "
        "a signature there is not found"
    )
    found = result.json()
    assert [(s["offset"], s["type"], s["label"]) for s in found] == [
        (50 * MiB, "xfs", "bad-ag1"),
        (360 * MiB, "swap", "behind"),
    ]
    assert [(b["offset"], b["matches"], b["sound"]) for b in found[0]["backups"]] == [
        (ag1, False, False),
        (ag1 + 75 * MiB, True, True),
        (ag1 + 150 * MiB, True, True),
    ]


def test_ext_found_from_a_later_backup_and_restored(tmp_path: Path, qemu_nbd) -> None:
    """An ext4 of 16384 blocks a group (not mke2fs's default) whose primary superblock
    and group 1 backup are both zeroed: scan finds it at its real start from group 3's
    backup (its s_block_group_nr and the group size), and `repair --restore-backup`
    puts that backup back over the primary (e2fsck -n clean; the revert brings the
    damage back byte for byte)."""
    part = tmp_path / "ext.img"
    with open(part, "wb") as f:
        f.truncate(300 * MiB)
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-g", "16384", "-L", "regrouped", str(part))
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(320 * MiB)
    copy_sparse(part, disk, 8 * MiB)
    with open(disk, "r+b") as f:
        for at in (8 * MiB + 1024, 8 * MiB + 16384 * 4096):  # the primary, group 1
            f.seek(at)
            f.write(bytes(1024))
    server = qemu_nbd(disk, unix=True)
    result = run_cli("scan", server.uri, "--json")
    assert result.returncode == 0, result.stderr
    (found,) = result.json()
    assert (found["offset"], found["type"], found["label"]) == (8 * MiB, "ext4", "regrouped")
    assert found["size"] == 300 * MiB
    assert {"name": "primary", "ok": False} in found["checks"]

    def e2fsck() -> int:
        extract = tmp_path / "part-check.img"
        with open(disk, "rb") as src, open(extract, "wb") as dst:
            src.seek(8 * MiB)
            dst.write(src.read(300 * MiB))
        code = subprocess.run(
            [require("e2fsck"), "-fn", str(extract)], capture_output=True, check=False
        ).returncode
        extract.unlink()
        return code

    round_trip(server.uri, disk, 8 * MiB, "restore-backup", e2fsck, tmp_path, limit=16 * MiB)
