"""The structure decoders on real images made by mkfs, compared with blkid -p,
dumpe2fs -h, and the filesystems' own tools. The images are read as files here; the
CLI tests read them over NBD."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from nbdtui.disk.partitions import run_plan
from nbdtui.disk.structures import exfat, ext, tables
from nbdtui.disk.structures.crc32c import crc32c
from nbdtui.disk.structures.model import Structure
from nbdtui.disk.structures.survey import probe_at
from tests.support.fs_images import MiB, blkid, make_disk, make_fs, read_at, run, write_at
from tests.support.requirements import require


def decode(path: Path, offset: int = 0, size: int | None = None) -> Structure | None:
    size = path.stat().st_size - offset if size is None else size
    with path.open("rb") as f:

        def read(at: int, length: int) -> bytes:
            f.seek(at)
            return f.read(length)

        return run_plan(probe_at(offset, size), read)


def test_crc32c_known_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeroes
    assert crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xFF
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283  # continued


def _dumpe2fs(path: Path) -> dict[str, str]:
    out = run(require("dumpe2fs"), "-h", str(path)).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


@pytest.mark.parametrize(
    ("kind", "size", "extra"),
    [
        ("ext2", 24 * MiB, ()),
        ("ext3", 24 * MiB, ()),
        ("ext4", 24 * MiB, ()),
        ("ext4", 600 * MiB, ("-b", "4096")),  # backups in groups 1 and 3 of 32768 blocks
        ("ext4", 40 * MiB, ("-O", "^sparse_super,^resize_inode")),  # a backup in every group
    ],
)
def test_ext_superblock_matches_blkid_and_dumpe2fs(
    tmp_path: Path, kind: str, size: int, extra: tuple[str, ...]
) -> None:
    image = make_fs(tmp_path, kind, "ExtLabel", size, extra)
    found = decode(image)
    assert found is not None
    oracle = blkid(image)
    assert (found.type, found.label, found.uuid) == (oracle["TYPE"], "ExtLabel", oracle["UUID"])
    assert found.version == oracle["VERSION"]
    dump = _dumpe2fs(image)
    values = {f.name: f.value for f in found.fields}
    assert values["s_inodes_count"] == dump["Inode count"]
    assert values["s_blocks_count_lo"] == dump["Block count"]
    assert found.size == int(dump["Block count"]) * int(dump["Block size"])
    checks = {c.name: c for c in found.checks}
    if "metadata_csum" in dump["Filesystem features"]:
        assert checks["crc32c"].ok and checks["crc32c"].stored == dump["Checksum"].lower()
    else:
        assert "crc32c" not in checks  # no metadata_csum on ext2
    full = run(require("dumpe2fs"), str(image)).stdout
    groups = [int(n) for n in re.findall(r"Backup superblock at (\d+)", full)]
    block = int(dump["Block size"])
    assert [b.at // block for b in found.backups] == groups
    assert all(b.matches and b.sound for b in found.backups)
    assert found.backups[0].label == "group 1"


def test_ext_checksum_mismatch_is_reported_and_fixed(tmp_path: Path) -> None:
    image = make_fs(tmp_path, "ext4", "Before", 24 * MiB)
    write_at(image, 1024 + 0x78, b"After\0")  # the label, behind the checksum's back
    found = decode(image)
    assert found is not None and found.label == "After"
    check = next(c for c in found.checks if c.name == "crc32c")
    assert not check.ok and check.stored != check.computed
    # e2fsck sees the same fault.
    assert run(require("e2fsck"), "-fn", str(image), check=False).returncode != 0
    primary = read_at(image, 1024, 1024)
    (patch,) = ext.fix_checksums(primary, 1024)
    assert struct.unpack_from("<I", patch.new, 0x3FC)[0] == int(check.computed, 16)
    write_at(image, patch.at, patch.new)
    assert decode(image) is not None
    assert all(c.ok for c in decode(image).checks)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "version"), [("fat12", "FAT12"), ("fat16", "FAT16"), ("fat32", "FAT32")]
)
def test_fat_matches_blkid(tmp_path: Path, kind: str, version: str) -> None:
    size = {"fat12": 4 * MiB, "fat16": 24 * MiB, "fat32": 40 * MiB}[kind]
    image = make_fs(tmp_path, kind, "FATLBL", size)
    found = decode(image)
    assert found is not None
    oracle = blkid(image)
    assert (found.type, found.version) == (oracle["TYPE"], oracle["VERSION"]) == ("vfat", version)
    assert (found.label, found.uuid) == (oracle["LABEL"], oracle["UUID"])
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", found.uuid)
    assert all(c.ok for c in found.checks)
    if kind == "fat32":
        (backup,) = found.backups
        assert (backup.at, backup.label, backup.matches, backup.sound) == (
            3072,
            "sector 6",
            True,
            True,
        )
        (info,) = found.parts
        assert info.name == "FAT32 FSInfo" and all(c.ok for c in info.checks)
    else:
        assert found.backups == ()


def test_fat_label_from_root_directory_wins(tmp_path: Path) -> None:
    image = make_fs(tmp_path, "fat16", "ROOTLBL", 24 * MiB)
    write_at(image, 0x2B, b"BOOTLBL    ")  # only the boot sector's copy changes
    found = decode(image)
    assert found is not None
    assert found.label == blkid(image)["LABEL"] == "ROOTLBL"


def test_exfat_matches_blkid(tmp_path: Path) -> None:
    image = make_fs(tmp_path, "exfat", "ExLabel", 40 * MiB)
    found = decode(image)
    assert found is not None
    oracle = blkid(image)
    assert (found.type, found.label, found.uuid) == (oracle["TYPE"], "ExLabel", oracle["UUID"])
    assert found.version == oracle["VERSION"]
    check = next(c for c in found.checks if c.name == "boot_checksum")
    stored = struct.unpack_from("<I", read_at(image, 11 * 512, 4))[0]
    assert check.ok and check.stored == f"0x{stored:08x}"
    (backup,) = found.backups
    assert (backup.at, backup.length, backup.matches, backup.sound) == (6144, 6144, True, True)


def test_exfat_checksum_flip_is_found(tmp_path: Path) -> None:
    image = make_fs(tmp_path, "exfat", "Flip", 40 * MiB)
    write_at(image, 0x100, b"\x01")  # sector 0's boot code, inside the checksummed bytes
    found = decode(image)
    assert found is not None
    check = next(c for c in found.checks if c.name == "boot_checksum")
    assert not check.ok and check.stored != check.computed
    assert not found.backups[0].matches and found.backups[0].sound
    assert run(require("fsck.exfat"), "-n", str(image), check=False).returncode != 0
    patches = run_plan(exfat.checksum_plan(found), lambda o, n: read_at(image, o, n))
    assert [p.at for p in patches] == [11 * 512]
    assert patches[0].new == struct.pack("<I", int(check.computed, 16)) * 128


def test_ntfs_matches_blkid_and_ntfsinfo(tmp_path: Path) -> None:
    image = make_fs(tmp_path, "ntfs", "NtLabel", 40 * MiB)
    found = decode(image)
    assert found is not None
    oracle = blkid(image)
    assert (found.type, found.label, found.uuid) == (oracle["TYPE"], "NtLabel", oracle["UUID"])
    assert re.fullmatch(r"[0-9A-F]{16}", found.uuid)
    info = run(require("ntfsinfo"), "-m", str(image)).stdout
    facts = dict(re.findall(r"^\s*([^:\n]+):\s*(.*)$", info, re.M))
    mft_lcn = int(facts["LCN of Data Attribute for FILE_MFT"])
    assert facts["Volume Name"] == found.label
    assert found.parts[0].length == int(facts["MFT Record Size"])
    values = {f.name: f for f in found.fields}
    assert values["MftLcn"].value == str(mft_lcn)
    (record,) = found.parts
    cluster = int(facts["Cluster Size"])
    assert record.at == values["MftLcn"].target == mft_lcn * cluster
    assert {c.name: c.ok for c in record.checks} == {"file_magic": True, "fixups": True}
    (backup,) = found.backups
    assert backup.at == image.stat().st_size - 512 and backup.matches and backup.sound


def test_ntfs_broken_fixup_is_found(tmp_path: Path) -> None:
    image = make_fs(tmp_path, "ntfs", "Fixup", 40 * MiB)
    found = decode(image)
    assert found is not None
    record_at = found.parts[0].at
    write_at(image, record_at + 510, b"\xde\xad")  # the first sector's update sequence
    again = decode(image)
    assert again is not None
    assert {c.name: c.ok for c in again.parts[0].checks} == {"file_magic": True, "fixups": False}


def test_primary_damaged_found_through_backup(tmp_path: Path) -> None:
    images = {
        "ext4": (make_fs(tmp_path, "ext4", "E", 24 * MiB), 1024, 1024),
        "vfat": (make_fs(tmp_path, "fat32", "F", 40 * MiB), 0, 512),
        "exfat": (make_fs(tmp_path, "exfat", "X", 40 * MiB), 0, 512),
        "ntfs": (make_fs(tmp_path, "ntfs", "N", 40 * MiB), 0, 512),
    }
    for kind, (image, at, length) in images.items():
        uuid = blkid(image)["UUID"]
        write_at(image, at, bytes(length))
        found = decode(image)
        assert found is not None, kind
        assert (found.type, found.uuid) == (kind, uuid)
        assert found.problems and "backup" in found.problems[0]
        assert not all(c.ok for c in found.checks)


def test_partition_tables(tmp_path: Path) -> None:
    fs = make_fs(tmp_path, "fat16", "P1", 24 * MiB)
    gpt, _ = make_disk(tmp_path, [fs], "gpt")
    mbr, _ = make_disk(tmp_path, [fs, fs], "dos", bootable=2)
    with gpt.open("rb") as f:
        table = run_plan(
            tables.probe(0, gpt.stat().st_size), lambda o, n: (f.seek(o), f.read(n))[1]
        )
    assert table is not None and table.type == "gpt" == blkid(gpt)["PTTYPE"]
    assert table.uuid == blkid(gpt)["PTUUID"]
    assert all(c.ok for c in table.checks)
    (backup,) = table.backups
    assert backup.at == gpt.stat().st_size - 512 and backup.matches and backup.sound
    names = {f.name: f.meaning for f in table.fields}
    assert names["entry1.type_guid"] == "Microsoft basic data"
    with mbr.open("rb") as f:
        table = run_plan(
            tables.probe(0, mbr.stat().st_size), lambda o, n: (f.seek(o), f.read(n))[1]
        )
    assert table is not None and table.type == "dos" == blkid(mbr)["PTTYPE"]
    assert table.uuid == blkid(mbr)["PTUUID"]
    values = {f.name: (f.value, f.meaning) for f in table.fields}
    assert values["entry1.boot_flag"] == ("0x00", "not bootable")
    assert values["entry2.boot_flag"] == ("0x80", "bootable (active)")
    assert values["entry2.type"] == ("0x83", "Linux")
    sector0 = read_at(fs, 0, 512)
    assert tables.absence(bytes(512)) == "no 55 AA boot signature at byte 510 (found 00 00)"
    assert "boot sector" in tables.absence(sector0)


def test_decoders_never_raise_on_damaged_bytes(tmp_path: Path) -> None:
    """Every decoder on images with random bytes changed, and cut short: a structure or
    None, never an exception, and every read inside the space probed."""
    import random

    rng = random.Random(14)
    sources = [
        make_fs(tmp_path, "ext4", "Fuzz", 24 * MiB),
        make_fs(tmp_path, "fat32", "FUZZ", 40 * MiB),
        make_fs(tmp_path, "exfat", "Fuzz", 40 * MiB),
        make_fs(tmp_path, "ntfs", "Fuzz", 40 * MiB),
    ]
    fs = make_fs(tmp_path, "fat16", "P", 24 * MiB)
    sources.append(make_disk(tmp_path, [fs], "gpt")[0])
    for source in sources:
        original = source.read_bytes()
        hot = [0, 512, 1024, 3072, 6144, len(original) - 512, len(original) - 33 * 512]
        for round_ in range(40):
            changed: dict[int, int] = {}
            for _ in range(rng.randint(1, 24)):
                pos = min(len(original) - 1, rng.choice(hot) + rng.randrange(512))
                changed[pos] = rng.randrange(256)
            size = len(original) if round_ % 4 else rng.randrange(512, len(original))

            def read(
                at: int,
                length: int,
                changed: dict[int, int] = changed,
                original: bytes = original,
                size: int = size,
            ) -> bytes:
                assert at >= 0 and length >= 0 and at + length <= size, (at, length, size)
                out = bytearray(original[at : at + length])
                for pos, value in changed.items():
                    if at <= pos < at + len(out):
                        out[pos - at] = value
                return bytes(out)

            run_plan(probe_at(0, size), read)
            run_plan(tables.probe(0, size), read)
