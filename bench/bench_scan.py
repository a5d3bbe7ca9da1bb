#!/usr/bin/env python3
"""`nbdtui scan` against `nbdcopy URI null:` on the same export, side by side.

Two exports, each served by nbdkit's file plugin on a Unix socket:

- `sparse`: a 4 GiB image with a few filesystems and volumes in it (ext4, vfat, xfs,
  btrfs, swap, LUKS2; made with their mkfs tools) and holes between them, as a disk
  whose partition table was wiped. Both tools skip the holes (block status).
- `dense`: 4 GiB with no hole (nbdkit's pattern plugin): every byte is read and, by
  scan, searched.

Rows: the whole command (`cli`, Python's start-up included) and `in process` (the
scan's code from opening the export to closing it, in this process, against nbdcopy's
whole run). Runs alternate between the tools; each figure is the median of --runs.
The ratio is nbdcopy's time over scan's (1.0: as fast as nbdcopy; the goal is at least
0.5). Usage:

    python bench/bench_scan.py [--size 4G] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from side_by_side import ROOT, compile_nbdtui, nbdkit, paired, require, timed

sys.path.insert(0, str(ROOT))  # for tests.support

import nbdtui
from nbdtui.client import Pool
from nbdtui.editor.signature_scan import scan
from nbdtui.present.sizes import parse_size
from tests.support.fs_images import copy_sparse

MiB = 1 << 20
#: (offset MiB, size MiB, mkfs command line before the image path)
LAYOUT = (
    (1, 256, ["mkfs.ext4", "-q", "-F", "-L", "root"]),
    (300, 64, ["mkfs.vfat", "-F", "32", "-n", "BOOT"]),
    (1024, 512, ["mkfs.xfs", "-q", "-L", "data"]),
    (2048, 512, ["mkfs.btrfs", "-q", "-L", "pool"]),
    (3000, 64, ["mkswap", "-L", "swap"]),
)


def build_sparse(tmp: Path, size: int) -> Path:
    disk = tmp / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(size)
    for off, n, mkfs in LAYOUT:
        part = tmp / "part.img"
        with open(part, "wb") as f:
            f.truncate(n * MiB)
        subprocess.run([*mkfs, str(part)], check=True, capture_output=True)
        copy_sparse(part, disk, off * MiB)
        part.unlink()
    key = tmp / "key"
    key.write_bytes(b"secret")
    part = tmp / "luks.img"
    with open(part, "wb") as f:
        f.truncate(32 * MiB)
    subprocess.run(
        ["cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--key-file", str(key),
         "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", str(part)],
        check=True, capture_output=True,
    )  # fmt: skip
    copy_sparse(part, disk, 3500 * MiB)
    return disk


def in_process(uri: str) -> float:
    async def run() -> float:
        start = time.perf_counter()
        async with nbdtui.open(uri, pool=Pool()) as export:
            await scan(export)
        return time.perf_counter() - start

    return asyncio.run(run())


def measure(name: str, uri: str, runs: int) -> list[tuple[str, float, float]]:
    nbdcopy = ["nbdcopy", uri, "null:"]
    cli = [sys.executable, "-m", "nbdtui", "scan", uri]
    whole = paired(runs, lambda: timed(cli), lambda: timed(nbdcopy))
    inside = paired(runs, lambda: in_process(uri), lambda: timed(nbdcopy))
    return [(f"{name} cli", *whole), (f"{name} in process", *inside)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="4G")
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()
    size = parse_size(opts.size)
    require("nbdkit", "nbdcopy", "mkfs.xfs", "mkfs.btrfs", "cryptsetup")
    compile_nbdtui()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nbdtui-bench-") as tmpdir:
        tmp = Path(tmpdir)
        disk = build_sparse(tmp, size)
        for name, args in (("sparse", ("file", str(disk))), ("dense", ("pattern", f"size={size}"))):
            with nbdkit(tmp, *args) as uri:
                found = subprocess.run(
                    [sys.executable, "-m", "nbdtui", "scan", uri],
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                print(f"--- {name}: scan finds\n{found}", end="", flush=True)
                rows += measure(name, uri, opts.runs)
    print(f"\n{'row':20} {'scan s':>8} {'nbdcopy s':>10} {'ratio':>6}")
    for name, ours, theirs in rows:
        print(f"{name:20} {ours:8.3f} {theirs:10.3f} {theirs / ours:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
