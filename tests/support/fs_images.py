"""Filesystem images made by the filesystems' own tools, partitioned disks holding them,
and the oracles that read them (blkid, dumpe2fs, the checkers)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.requirements import require

MiB = 1 << 20

#: kind -> (program, its arguments before the label option, the label option)
_MKFS = {
    "ext2": ("mkfs.ext2", ["-q", "-F"], "-L"),
    "ext3": ("mkfs.ext3", ["-q", "-F"], "-L"),
    "ext4": ("mkfs.ext4", ["-q", "-F"], "-L"),
    "fat12": ("mkfs.vfat", ["-F", "12"], "-n"),
    "fat16": ("mkfs.vfat", ["-F", "16"], "-n"),
    "fat32": ("mkfs.vfat", ["-F", "32"], "-n"),
    "exfat": ("mkfs.exfat", [], "-L"),
    "ntfs": ("mkntfs", ["-F", "-Q", "-q"], "-L"),
}


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def make_fs(
    tmp_path: Path, kind: str, label: str, size: int = 40 * MiB, extra: tuple[str, ...] = ()
) -> Path:
    """A file of ``size`` bytes (sparse) holding a new ``kind`` filesystem labelled
    ``label``; ``extra``: more options for mkfs."""
    program, args, label_option = _MKFS[kind]
    path = tmp_path / f"{kind}-{label}.img"
    with path.open("wb") as f:
        f.truncate(size)
    run(require(program), *args, *extra, label_option, label, str(path))
    return path


def make_disk(
    tmp_path: Path, parts: list[Path], scheme: str = "gpt", bootable: int = 0
) -> tuple[Path, list[int]]:
    """A disk with one partition per image (1 MiB aligned), each image copied in; returns
    the disk and each partition's byte offset. ``bootable``: the 1-based MBR partition
    with the boot flag (0: none)."""
    disk = tmp_path / f"disk-{scheme}.img"
    size = MiB + sum(-(-p.stat().st_size // MiB) * MiB for p in parts) + MiB
    with disk.open("wb") as f:
        f.truncate(size)
    offsets = []
    start = MiB
    for p in parts:
        offsets.append(start)
        start += -(-p.stat().st_size // MiB) * MiB
    if scheme == "gpt":
        args = []
        for i, (p, off) in enumerate(zip(parts, offsets, strict=True), 1):
            sectors = p.stat().st_size // 512
            args += [f"-n{i}:{off // 512}:{off // 512 + sectors - 1}", f"-t{i}:0700"]
        run(require("sgdisk"), *args, str(disk))
    else:
        lines = ["label: dos"]
        for i, (p, off) in enumerate(zip(parts, offsets, strict=True), 1):
            flag = ", bootable" if i == bootable else ""
            lines.append(f"start={off // 512}, size={p.stat().st_size // 512}, type=83{flag}")
        proc = subprocess.run(
            [require("sfdisk"), "-q", str(disk)],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    with disk.open("r+b") as f:
        for p, off in zip(parts, offsets, strict=True):
            f.seek(off)
            f.write(p.read_bytes())
    return disk, offsets


def blkid(path: Path, offset: int = 0, size: int | None = None) -> dict[str, str]:
    """``blkid -p -o export`` of the filesystem at ``offset`` in ``path``."""
    args = [require("blkid"), "-p", "-o", "export", "--offset", str(offset)]
    if size is not None:
        args += ["--size", str(size)]
    proc = run(*args, str(path), check=False)
    out = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def extract(path: Path, offset: int, size: int, tmp_path: Path, name: str) -> Path:
    """A copy of ``size`` bytes at ``offset`` of ``path`` (a partition, for its checker)."""
    out = tmp_path / name
    with path.open("rb") as src, out.open("wb") as dst:
        src.seek(offset)
        dst.write(src.read(size))
    return out


def read_at(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


def write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def copy_sparse(src: Path, dst: Path, at: int) -> None:
    """Copy the non-zero MiBs of ``src`` into ``dst`` at ``at`` (the rest stays a hole)."""
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        pos = 0
        while block := fin.read(MiB):
            if block.count(0) != len(block):
                fout.seek(at + pos)
                fout.write(block)
            pos += len(block)
