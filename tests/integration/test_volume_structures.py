"""The volume decoders (xfs, btrfs, LUKS1/2, swap, LVM2 PV, MD 1.x) on real images
read over NBD, against each format's own tools: blkid -p, xfs_db -r, btrfs
inspect-internal dump-super, cryptsetup luksDump, mdadm --examine, pvck.

LVM and MD need block devices to be created (pvcreate, mdadm --create), so their
headers are built from the specification (tests/support/volume_headers.py) and
checked with the tools that read files: blkid -p, pvck --dump headers, mdadm --examine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import nbdtui
from nbdtui.client import Pool
from nbdtui.disk.partitions import run_plan_async
from nbdtui.disk.structures import btrfs, luks, lvm, mdraid, swap, xfs
from nbdtui.disk.structures.model import Probe, Structure
from tests.support.requirements import require
from tests.support.volume_headers import md_superblock, pv_label

MiB = 1 << 20


def run(*argv: str) -> str:
    return subprocess.run(
        [require(argv[0]), *argv[1:]], check=True, capture_output=True, text=True
    ).stdout


def blkid(image: Path) -> dict[str, str]:
    out = subprocess.run(
        [require("blkid"), "-p", "-o", "export", str(image)], capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def poke(path: Path, at: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


async def decode(server, probe: Probe, offset: int = 0) -> Structure | None:
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        return await run_plan_async(probe(offset, export.size - offset), export.read)


def assert_blkid(s: Structure, image: Path) -> None:
    ids = blkid(image)
    assert s.type == ids["TYPE"]
    assert s.uuid == ids.get("UUID", "")
    assert s.label == ids.get("LABEL", "")


@pytest.fixture
def xfs_image(tmp_path: Path) -> Path:
    image = sparse(tmp_path / "xfs.img", 320 * MiB)
    run("mkfs.xfs", "-q", "-L", "scratch", "-d", "agcount=4", str(image))
    return image


async def test_xfs_superblock_crc_and_secondaries(xfs_image: Path, qemu_nbd) -> None:
    s = await decode(qemu_nbd(xfs_image), xfs.probe)
    assert s is not None
    assert_blkid(s, xfs_image)
    assert (s.type, s.version, s.label) == ("xfs", "V5", "scratch")
    db = run("xfs_db", "-r", "-c", "sb 0", "-c", "p crc dblocks blocksize agcount", str(xfs_image))
    facts = dict(re.findall(r"(\w+) = (\S+)", db))
    crc = next(c for c in s.checks if c.name == "crc32c")
    # xfs_db shows the little-endian CRC's bytes read big-endian
    assert crc.ok and int(facts["crc"], 16).to_bytes(4, "big") == bytes.fromhex(crc.stored)[::-1]
    assert s.size == int(facts["dblocks"]) * int(facts["blocksize"])
    fields = {f.name: f for f in s.fields}
    log, root = fields["sb_logstart"], fields["sb_rootino"]
    where = run("xfs_db", "-r", "-c", f"convert fsblock {log.value} byte",
                "-c", f"convert ino {root.value} byte", str(xfs_image))  # fmt: skip
    assert [int(n) for n in re.findall(r"\((\d+)\)", where)] == [log.target, root.target]
    assert (log.kind, root.kind) == ("block", "offset")
    assert [b.label for b in s.backups] == ["AG 1", "AG 2", "AG 3"]
    assert all(b.matches and b.sound for b in s.backups)
    # from a secondary (the AGF behind it says AG 2), the filesystem is the same one
    again = await decode(qemu_nbd(xfs_image), xfs.probe, s.backups[1].at)
    assert again == s


async def test_xfs_damaged_secondary_and_primary(xfs_image: Path, qemu_nbd) -> None:
    agbytes = 320 * MiB // 4
    poke(xfs_image, 2 * agbytes + 108, b"X")  # AG 2's label
    poke(xfs_image, 150, b"\x01")  # a counter of the primary: its CRC no longer matches
    s = await decode(qemu_nbd(xfs_image), xfs.probe)
    assert s is not None
    crc = next(c for c in s.checks if c.name == "crc32c")
    assert not crc.ok and crc.stored != crc.computed
    bad = s.backups[1]
    assert (bad.at, bad.matches, bad.sound, bad.differences) == (
        2 * agbytes, False, False, ("sb_fname",),
    )  # fmt: skip
    assert s.backups[0].matches and s.backups[2].matches


async def test_btrfs_superblock_and_mirror(tmp_path: Path, nbdkit) -> None:
    image = sparse(tmp_path / "btrfs.img", 300 * MiB)
    run("mkfs.btrfs", "-q", "-L", "pool", str(image))
    s = await decode(nbdkit("file", str(image)), btrfs.probe)
    assert s is not None
    assert_blkid(s, image)
    dump = run("btrfs", "inspect-internal", "dump-super", str(image))
    facts = dict(re.findall(r"^(\w+)\s+(\S+)", dump, re.M))
    assert s.uuid == facts["fsid"]
    check = next(c for c in s.checks if c.name == "crc32c")
    assert check.ok and f"0x{check.stored}" == facts["csum"]
    assert s.size == 300 * MiB
    assert [(b.at, b.label, b.matches, b.sound) for b in s.backups] == [
        (64 * MiB, "mirror at 64 MiB", True, True)
    ]
    again = await decode(nbdkit("file", str(image)), btrfs.probe, 64 * MiB - 0x10000)
    assert again == s  # the mirror leads back to the primary
    poke(image, 64 * MiB + 0x12B, b"Q")  # the mirror's label
    s = await decode(nbdkit("file", str(image)), btrfs.probe)
    assert s is not None
    assert (s.backups[0].matches, s.backups[0].sound, s.backups[0].differences) == (
        False, False, ("label",),
    )  # fmt: skip


@pytest.mark.parametrize(("csum", "name", "width"), [("xxhash", "xxhash64", 8),
                                                    ("sha256", "sha256", 32),
                                                    ("blake2", "blake2b", 32)])  # fmt: skip
async def test_btrfs_checksum_types(tmp_path: Path, qemu_nbd, csum, name, width) -> None:
    image = sparse(tmp_path / "btrfs.img", 300 * MiB)
    run("mkfs.btrfs", "-q", "--csum", csum, str(image))
    s = await decode(qemu_nbd(image), btrfs.probe)
    assert s is not None and s.version == name
    check = next(c for c in s.checks if c.name == name)
    dump = run("btrfs", "inspect-internal", "dump-super", str(image))
    stored = re.search(r"^csum\s+0x([0-9a-f]+) \[match\]", dump, re.M).group(1)
    assert check.ok and check.stored == stored and len(stored) == 2 * width
    assert [(b.matches, b.sound) for b in s.backups] == [(True, True)]


def luks_format(image: Path, tmp_path: Path, kind: str, *extra: str) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"secret")
    run("cryptsetup", "luksFormat", "--batch-mode", "--type", kind, "--key-file", str(key),
        "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", *extra, str(image))  # fmt: skip


async def test_luks1_header(tmp_path: Path, qemu_nbd) -> None:
    image = sparse(tmp_path / "luks1.img", 20 * MiB)
    luks_format(image, tmp_path, "luks1")
    s = await decode(qemu_nbd(image), luks.probe)
    assert s is not None
    assert_blkid(s, image)
    dump = run("cryptsetup", "luksDump", str(image))
    assert re.search(rf"UUID:\s+{s.uuid}", dump)
    offset = int(re.search(r"Payload offset:\s+(\d+)", dump).group(1))
    field = next(f for f in s.fields if f.name == "payload_offset")
    assert (field.value, field.kind, field.target) == (str(offset), "sector", offset * 512)
    assert s.version == "LUKS1" and all(c.ok for c in s.checks)


async def test_luks2_header_json_and_secondary(tmp_path: Path, qemu_nbd) -> None:
    image = sparse(tmp_path / "luks2.img", 20 * MiB)
    luks_format(image, tmp_path, "luks2", "--label", "vault")
    s = await decode(qemu_nbd(image), luks.probe)
    assert s is not None
    assert_blkid(s, image)
    assert (s.version, s.label) == ("LUKS2", "vault")
    dump = run("cryptsetup", "luksDump", str(image))
    assert re.search(rf"UUID:\s+{s.uuid}", dump)
    seg_offset = re.search(r"offset:\s+(\d+) \[bytes\]", dump).group(1)
    fields = {f.name: f for f in s.fields}
    assert fields["json.segments.0.offset"].value == seg_offset
    assert fields["json.segments.0.offset"].target == int(seg_offset)
    assert fields["json.keyslots"].value == "0"
    assert next(c for c in s.checks if c.name == "sha256").ok
    hdr = int(fields["hdr_size"].value)
    assert [(b.at, b.matches, b.sound) for b in s.backups] == [(hdr, True, True)]
    poke(image, hdr + 4096 + 2, b" ")  # inside the secondary's JSON
    s = await decode(qemu_nbd(image), luks.probe)
    assert s is not None
    assert (s.backups[0].matches, s.backups[0].sound) == (False, False)
    assert s.backups[0].differences == ("json",)


async def test_swap_header(tmp_path: Path, nbdkit) -> None:
    image = sparse(tmp_path / "swap.img", 16 * MiB)
    image.chmod(0o600)
    run("mkswap", "-L", "swappy", str(image))
    s = await decode(nbdkit("file", str(image)), swap.probe)
    assert s is not None
    assert_blkid(s, image)
    assert (s.label, s.size, s.length) == ("swappy", 16 * MiB, 4096)


async def test_lvm_pv_label_built_from_the_spec(tmp_path: Path, qemu_nbd) -> None:
    image = sparse(tmp_path / "pv.img", 64 * MiB)
    poke(image, 512, pv_label(64 * MiB))
    # pvck exits 5 on the empty metadata area behind the label; the label it prints
    argv = [require("pvck"), "--dump", "headers", str(image)]
    dump = subprocess.run(argv, capture_output=True, text=True).stdout
    assert "label_header.crc 0x" in dump
    s = await decode(qemu_nbd(image), lvm.probe)
    assert s is not None
    assert_blkid(s, image)  # blkid accepts the label only when its CRC is right
    crc = next(c for c in s.checks if c.name == "crc")
    assert crc.ok and f"label_header.crc 0x{crc.stored}" in dump
    assert (s.at, s.size, s.uuid) == (512, 64 * MiB, "Abcdef-0123-4567-89gh-ijKL-MNOP-qrstuv")
    fields = {f.name: f for f in s.fields}
    assert fields["data[0].offset"].target == MiB
    poke(image, 512 + 40, b"z")  # inside the PV UUID
    s = await decode(qemu_nbd(image), lvm.probe)
    assert s is not None
    assert not next(c for c in s.checks if c.name == "crc").ok
    assert "TYPE" not in blkid(image)


async def test_md_superblock_built_from_the_spec(tmp_path: Path, nbdkit) -> None:
    image = sparse(tmp_path / "md.img", 64 * MiB)
    poke(image, 4096, md_superblock(64 * MiB // 512 - 2048))
    examine = run("mdadm", "--examine", str(image))
    s = await decode(nbdkit("file", str(image)), mdraid.probe)
    assert s is not None
    assert_blkid(s, image)
    csum = next(c for c in s.checks if c.name == "sb_csum")
    assert re.search(rf"Checksum : {csum.stored} - correct", examine)
    assert (s.version, s.label, s.at) == ("1.2", "host:vol", 4096)
    assert "raid1" in s.name and "Raid Level : raid1" in examine
    poke(image, 4096 + 100, b"\x07")
    s = await decode(nbdkit("file", str(image)), mdraid.probe)
    assert s is not None and not next(c for c in s.checks if c.name == "sb_csum").ok
    assert "expected" in run("mdadm", "--examine", str(image))


async def test_probes_refuse_each_other(xfs_image: Path, qemu_nbd) -> None:
    server = qemu_nbd(xfs_image)
    for probe in (btrfs.probe, luks.probe, swap.probe, lvm.probe, mdraid.probe):
        assert await decode(server, probe) is None
