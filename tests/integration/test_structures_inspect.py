"""`nbdtui inspect` over NBD (qemu-nbd, nbdkit) on disks made by sgdisk, sfdisk and mkfs,
compared with blkid -p on the same bytes."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli_helpers import assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_cli
from tests.support.fs_images import MiB, blkid, make_disk, make_fs, run
from tests.support.requirements import require

KINDS = (("ext4", "ExtPart"), ("fat32", "FATPART"), ("exfat", "ExPart"), ("ntfs", "NtPart"))


def _gpt_disk(tmp_path: Path) -> tuple[Path, list[int], list[Path]]:
    images = [make_fs(tmp_path, kind, label, 40 * MiB) for kind, label in KINDS]
    disk, offsets = make_disk(tmp_path, images, "gpt")
    return disk, offsets, images


def test_inspect_json_every_partition_like_blkid(qemu_nbd, tmp_path: Path) -> None:
    disk, offsets, images = _gpt_disk(tmp_path)
    server = qemu_nbd(disk, unix=True)
    result = run_cli("inspect", server.uri, "--json")
    assert result.returncode == 0, result.stderr
    doc = result.json()
    table = doc["partition_table"]
    assert table["type"] == "gpt" == blkid(disk)["PTTYPE"]
    assert table["uuid"] == blkid(disk)["PTUUID"]
    assert all(c["ok"] for c in table["checks"])
    assert [b["matches"] for b in table["backups"]] == [True]
    assert table["backups"][0]["offset"] == disk.stat().st_size - 512
    found = doc["structures"]
    assert [s["offset"] for s in found] == offsets
    for s, offset, image in zip(found, offsets, images, strict=True):
        oracle = blkid(disk, offset, image.stat().st_size)
        assert (s["type"], s["label"], s["uuid"]) == (
            oracle["TYPE"],
            oracle["LABEL"],
            oracle["UUID"],
        ), s["type"]
        assert s["checks"] and all(c["ok"] for c in s["checks"]), s["checks"]
        assert all(set(c) >= {"name", "ok", "stored", "computed"} for c in s["checks"])
        assert s["backups"] and all(b["matches"] and b["sound"] for b in s["backups"])
        assert all(offset < b["offset"] < offset + image.stat().st_size for b in s["backups"])
        assert s["partition"]["start"] == offset


def test_inspect_text_and_one_offset(qemu_nbd, tmp_path: Path) -> None:
    disk, offsets, _ = _gpt_disk(tmp_path)
    server = qemu_nbd(disk, unix=True)
    text = run_cli("inspect", server.uri).text
    assert "partition table:" in text and "gpt" in text
    assert "partition 3: offset 84934656 (0x5100000), 40.0 MiB" in text
    assert "check crc32c" in text and "backup group 1 at" in text
    assert "backup sector 6 at" in text and "backup last sector at" in text
    one = run_cli("inspect", server.uri, "--offset", str(offsets[2]), "--json").json()
    assert one["partition_table"] is None
    (only,) = one["structures"]
    assert (only["type"], only["offset"], only["label"]) == ("exfat", offsets[2], "ExPart")
    fields = {f["name"]: f for f in only["fields"]}
    assert fields["VolumeSerialNumber"]["offset"] == offsets[2] + 100
    table = run_cli("inspect", server.uri, "--offset", "0", "--json").json()
    assert table["partition_table"]["type"] == "gpt" and table["structures"] == []


def test_inspect_mbr_over_nbdkit(nbdkit, tmp_path: Path) -> None:
    fs = make_fs(tmp_path, "fat16", "MBRPART", 24 * MiB)
    disk, _ = make_disk(tmp_path, [fs, fs], "dos", bootable=2)
    server = nbdkit("file", str(disk), readonly=True)
    doc = run_cli("inspect", server.uri, "--json").json()
    table = doc["partition_table"]
    assert table["type"] == "dos" and table["uuid"] == blkid(disk)["PTUUID"]
    flags = {f["name"]: f["value"] for f in table["fields"]}
    assert (flags["entry1.boot_flag"], flags["entry2.boot_flag"]) == ("0x00", "0x80")
    assert flags["entry2.type"] == "0x83"
    assert [s["partition"]["bootable"] for s in doc["structures"]] == [False, True]
    assert [s["label"] for s in doc["structures"]] == ["MBRPART", "MBRPART"]


def test_inspect_unpartitioned_and_empty(nbdkit, qemu_nbd, tmp_path: Path) -> None:
    image = make_fs(tmp_path, "ext4", "Whole", 24 * MiB)
    doc = run_cli("inspect", qemu_nbd(image, unix=True).uri, "--json").json()
    assert doc["partition_table"] is None
    assert "sector 0" in doc["no_table_reason"] or "55 AA" in doc["no_table_reason"]
    (whole,) = doc["structures"]
    assert (whole["type"], whole["offset"], whole["label"]) == ("ext4", 0, "Whole")
    empty = nbdkit("memory", "1M")
    text = run_cli("inspect", empty.uri).text
    assert "no partition table: no 55 AA boot signature at byte 510 (found 00 00)" in text
    assert "no structure recognised" in text


def test_inspect_bad_offsets(nbdkit) -> None:
    server = nbdkit("memory", "1M")
    nothing = run_cli("inspect", server.uri, "--offset", "4096")
    assert_one_line_error(nothing, 2, "no filesystem, volume or partition table", "4096")
    past = run_cli("inspect", server.uri, "--offset", "2M")
    assert_one_line_error(past, 2, "past the end of the export")


def _volume(tmp_path: Path, kind: str, label: str, size: int) -> Path:
    image = tmp_path / f"{kind}.img"
    with image.open("wb") as f:
        f.truncate(size)
    if kind == "xfs":
        run(require("mkfs.xfs"), "-q", "-L", label, str(image))
    elif kind == "btrfs":
        run(require("mkfs.btrfs"), "-q", "-L", label, str(image))
    elif kind == "swap":
        image.chmod(0o600)
        run(require("mkswap"), "-L", label, str(image))
    else:
        (tmp_path / "key").write_bytes(b"secret")
        run(require("cryptsetup"), "luksFormat", "--batch-mode", "--type", "luks2",
            "--key-file", str(tmp_path / "key"), "--pbkdf", "pbkdf2",
            "--pbkdf-force-iterations", "1000", "--label", label, str(image))  # fmt: skip
    return image


VOLUMES = (("xfs", "xfsvol", 300), ("swap", "swapvol", 16), ("crypto_LUKS", "vault", 20))


def test_inspect_volume_families_in_partitions(qemu_nbd, tmp_path: Path) -> None:
    """XFS, swap and LUKS2 partitions, each with blkid's type, label and UUID, their
    checks (XFS CRC-32C, the LUKS2 header's sha256) and backups (XFS secondaries, the
    LUKS2 secondary header) all sound."""
    images = [_volume(tmp_path, kind, label, size * MiB) for kind, label, size in VOLUMES]
    disk, offsets = make_disk(tmp_path, images, "gpt")
    for image in images:
        image.unlink()
    result = run_cli("inspect", qemu_nbd(disk, unix=True).uri, "--json")
    assert result.returncode == 0, result.stderr
    found = result.json()["structures"]
    assert [s["offset"] for s in found] == offsets
    for s, offset, (_, label, size) in zip(found, offsets, VOLUMES, strict=True):
        oracle = blkid(disk, offset, size * MiB)
        assert (s["type"], s["label"], s["uuid"]) == (oracle["TYPE"], label, oracle["UUID"])
        assert s["checks"] and all(c["ok"] for c in s["checks"]), s["checks"]
        assert all(b["matches"] and b["sound"] for b in s["backups"]), s["backups"]
    xfs, swap, luks = found
    assert {c["name"] for c in xfs["checks"]} >= {"magic", "crc32c"}
    assert [b["offset"] for b in xfs["backups"]] == [offsets[0] + n * 75 * MiB for n in (1, 2, 3)]
    assert swap["backups"] == []
    assert "sha256" in {c["name"] for c in luks["checks"]}
    assert [b["offset"] for b in luks["backups"]] == [offsets[2] + 16384]


def test_inspect_unpartitioned_btrfs(qemu_nbd, tmp_path: Path) -> None:
    image = _volume(tmp_path, "btrfs", "pool", 300 * MiB)
    doc = run_cli("inspect", qemu_nbd(image, unix=True).uri, "--json").json()
    assert doc["partition_table"] is None
    (s,) = doc["structures"]
    oracle = blkid(image)
    assert (s["type"], s["offset"], s["label"], s["uuid"]) == ("btrfs", 0, "pool", oracle["UUID"])
    assert [(b["offset"], b["matches"]) for b in s["backups"]] == [(64 * MiB, True)]
    assert {"name": "crc32c", "ok": True}.items() <= next(
        c for c in s["checks"] if c["name"] == "crc32c"
    ).items()
