"""The demo disk image, and the structure decoders on it.

Oracles: sfdisk (fdisk), sgdisk (gdisk), blkid (util-linux), file, fsck.fat (dosfstools),
mdir/mtype (mtools).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nbdtui.disk.demo_image import HELLO_OFFSET, HELLO_TEXT, DemoImage, build_demo_image
from nbdtui.disk.partitions import read_partition_table, run_plan
from nbdtui.disk.structures.survey import probe_at
from tests.support.requirements import require

MIB = 1024 * 1024
EXPECTED = [
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System", "EFI System Partition"),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem", "nbdtui-root"),
    ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "Microsoft basic data", "Windows data"),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap", "swap"),
]


def need(*tools: str) -> None:
    """Fail the test, naming the package, when one of ``tools`` is not installed."""
    for tool in tools:
        require(tool)


def run(program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    argv = [require(program), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def demo() -> DemoImage:
    return build_demo_image()


@pytest.fixture(scope="module")
def demo_file(demo: DemoImage, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.img"
    demo.save(path)
    return path


def test_pieces_are_small_sorted_aligned_and_disjoint(demo: DemoImage) -> None:
    assert demo.size == 64 * MIB
    offsets = [off for off, _ in demo.pieces]
    assert offsets == sorted(offsets)
    for (a, da), (b, _) in zip(demo.pieces, demo.pieces[1:], strict=False):
        assert a + len(da) <= b
    assert all(off % 512 == 0 and len(d) % 512 == 0 for off, d in demo.pieces)
    assert sum(len(d) for _, d in demo.pieces) <= 64 * 1024  # mostly holes
    assert demo.pieces[-1][0] + len(demo.pieces[-1][1]) == demo.size  # backup GPT header


def test_read_assembles_pieces_and_holes(demo: DemoImage, demo_file: Path) -> None:
    raw = demo_file.read_bytes()
    for off, length in [
        (0, 4096),
        (HELLO_OFFSET - 7, 600),
        (MIB - 3, 9000),
        (demo.size - 1000, 1000),
    ]:
        assert demo.read(off, length) == raw[off : off + length]
    assert demo.read(40 * MIB, 512) == bytes(512)
    assert demo.read(0, 0) == b""
    with pytest.raises(ValueError):
        demo.read(demo.size - 10, 11)
    with pytest.raises(ValueError):
        demo.read(-1, 1)


def test_hello_text(demo: DemoImage) -> None:
    sector = demo.read(HELLO_OFFSET, 512)
    assert sector.startswith(HELLO_TEXT * 3)
    assert sector.endswith(b"\n") and b"\0" not in sector
    assert (HELLO_OFFSET, "hello text") in demo.landmarks


def test_partition_table(demo: DemoImage) -> None:
    for sector_size in (512, None):
        table = read_partition_table(demo.read, demo.size, sector_size)
        assert table is not None and table.scheme == "gpt" and table.sector_size == 512
        assert table.problems == ()
        got = [(p.type_id, p.type_name, p.name) for p in table.partitions]
        assert got == EXPECTED
    assert table.header["alternate_lba"] == demo.size // 512 - 1
    assert all(p.start % MIB == 0 for p in table.partitions)


def test_deterministic() -> None:
    assert build_demo_image() == build_demo_image()


def test_sfdisk_agrees(demo: DemoImage, demo_file: Path) -> None:
    need("sfdisk")
    dump = json.loads(run("sfdisk", "--json", "--dump", str(demo_file)).stdout)["partitiontable"]
    table = read_partition_table(demo.read, demo.size)
    assert dump["label"] == "gpt" and dump["id"] == table.disk_guid
    assert dump["firstlba"] == 34 and dump["lastlba"] == demo.size // 512 - 34
    assert len(dump["partitions"]) == 4
    for part, exp in zip(table.partitions, dump["partitions"], strict=True):
        assert (part.first_lba, part.sectors) == (exp["start"], exp["size"])
        assert (part.type_id, part.guid, part.name) == (exp["type"], exp["uuid"], exp["name"])


@pytest.mark.parametrize("size", [8 * MIB, 64 * MIB, 1024 * MIB + 512 * 7])
def test_sgdisk_verifies_the_gpt(size: int, tmp_path: Path) -> None:
    need("sgdisk")
    image = build_demo_image(size)
    path = tmp_path / "demo.img"
    image.save(path)
    out = run("sgdisk", "--verify", str(path)).stdout
    assert "No problems found" in out
    table = read_partition_table(image.read, image.size)
    assert table.problems == () and [p.type_name for p in table.partitions] == [
        e[1] for e in EXPECTED
    ]


def test_bad_sizes() -> None:
    with pytest.raises(ValueError):
        build_demo_image(4 * MIB)
    with pytest.raises(ValueError):
        build_demo_image(64 * MIB + 1)


def blkid(path: Path, offset: int) -> dict[str, str]:
    out = run("blkid", "-p", "-o", "export", "-O", str(offset), str(path)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_blkid_recognises_every_partition(demo: DemoImage, demo_file: Path) -> None:
    need("blkid")
    table = read_partition_table(demo.read, demo.size)
    efi, root, data, swap = (blkid(demo_file, p.start) for p in table.partitions)
    assert (efi["TYPE"], efi["VERSION"], efi["LABEL"]) == ("vfat", "FAT32", "NBDTUI-EFI")
    assert (root["TYPE"], root["LABEL"]) == ("ext4", "nbdtui-demo")
    assert (data["TYPE"], data["LABEL"]) == ("ntfs", "nbdtui-data")
    assert (swap["TYPE"], swap["LABEL"]) == ("swap", "nbdtui-swap")
    # The decoders read the same type, label and UUID as blkid.
    for p, info in zip(table.partitions, (efi, root, data, swap), strict=True):
        found = run_plan(probe_at(p.start, p.size), demo.read)
        assert found is not None and found.type == info["TYPE"]
        assert (found.uuid, found.label) == (info["UUID"], info.get("LABEL", ""))


def test_file_recognises_every_partition(demo: DemoImage, tmp_path: Path) -> None:
    need("file")
    table = read_partition_table(demo.read, demo.size)
    found = []
    for p in table.partitions:
        path = tmp_path / f"part{p.index}"
        path.write_bytes(demo.read(p.start, 64 * 1024))
        found.append(run("file", "-b", "-s", str(path)).stdout)
    assert "FAT (32 bit)" in found[0] and 'label: "NBDTUI-EFI ' in found[0]
    assert "ext4 filesystem" in found[1] and 'volume name "nbdtui-demo"' in found[1]
    assert "NTFS" in found[2]
    assert "swap file" in found[3] and "LABEL=nbdtui-swap" in found[3]


def test_fat_tools_read_the_efi_partition(demo: DemoImage, tmp_path: Path) -> None:
    need("fsck.fat", "mdir", "mtype")
    efi = read_partition_table(demo.read, demo.size).partitions[0]
    path = tmp_path / "efi.img"
    path.write_bytes(demo.read(efi.start, efi.size))
    check = run("fsck.fat", "-n", str(path), check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    listing = run("mdir", "-i", str(path), "::").stdout
    assert "NBDTUI-EFI" in listing and "README   TXT" in listing
    assert run("mtype", "-i", str(path), "::README.TXT").stdout.startswith("Hello from nbdtui!")


# ---------------------------------------------------------------- structures


def test_demo_partitions_decoded(demo: DemoImage) -> None:
    """Each demo partition's first bytes are a filesystem the decoders know (the same
    ones ``nbdtui inspect`` and the editor's partition list use)."""
    table = read_partition_table(demo.read, demo.size)
    found = [run_plan(probe_at(p.start, p.size), demo.read) for p in table.partitions]
    assert [(s.type, s.label) for s in found if s is not None] == [
        ("vfat", "NBDTUI-EFI"),
        ("ext4", "nbdtui-demo"),
        ("ntfs", "nbdtui-data"),
        ("swap", "nbdtui-swap"),
    ]
    assert run_plan(probe_at(0, 8192), demo.read) is None  # the protective MBR is none
