#!/usr/bin/env python3
"""Throughput of nbdtui against nbdcopy and fio, side by side in one run.

Starts nbdkit itself (on a Unix socket in a private directory), then measures:

- sequential read of SIZE from the `pattern` plugin: `nbdtui read -o /dev/null` vs
  `nbdcopy URI null:` with the same connections and requests in flight;
- sequential write of SIZE into the `memory` plugin: `nbdtui write` vs `nbdcopy FILE URI`;
- random 4 KiB reads at depth 16 on one connection: nbdtui's library vs
  `fio --ioengine=nbd`;
- peak resident memory of `nbdtui read` of SIZE to /dev/null.

The sequential rows are measured twice: as commands (`cli`: the whole process, Python's
start-up and imports included, about 0.1 s that nbdcopy, a C program, does not pay) and
`in process`: the very code the command runs (`nbdtui.cli.transfer`), timed from opening
the export to closing it, in this process. Runs of nbdtui and of the other tool
alternate, so that a change in the machine's load weighs on both. Each timed row is the
median of --runs runs. Figures are ratios against the other tool (>1.0 means nbdtui is
faster). Usage:

    python bench/bench_transfer.py [--size 1G] [--connections 4] [--requests 16] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from side_by_side import (
    compile_nbdtui,
    nbdcopy_flags,
    nbdkit,
    paired,
    require,
    timed,
    transfer_options,
)

import nbdtui
from nbdtui.cli.transfer import _write_file as write_regular_file
from nbdtui.cli.transfer import read_to_file
from nbdtui.client import Pool
from nbdtui.present.sizes import parse_size

GiB = 1024**3


class NoProgress:
    def advance(self, n: int) -> None:
        pass


def in_process(uri: str, connections: int, window: int, transfer) -> float:
    """Seconds to open the export, run ``await transfer(export)``, and close it."""

    async def run() -> float:
        start = time.perf_counter()
        async with nbdtui.open(uri, pool=Pool(), connections=connections, window=window) as export:
            await transfer(export)
        return time.perf_counter() - start

    return asyncio.run(run())


async def read_to_null(export) -> None:
    """What `nbdtui read -o /dev/null` does once the export is open."""
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        await read_to_file(export, 0, export.size, fd, NoProgress())
    finally:
        os.close(fd)


def write_file(path: Path):
    """What `nbdtui write URI FILE` does once the export is open."""

    async def write(export) -> None:
        size = path.stat().st_size
        await export.open_connections()
        with open(path, "rb", buffering=0) as f:
            await write_regular_file(export, f, 0, size, False, NoProgress())

    return write


def peak_rss_mib(cmd: list[str]) -> float:
    """Peak RSS of one child, via wait4's rusage (ru_maxrss is KiB on Linux)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd} exited {proc.returncode}")
    return usage.ru_maxrss / 1024


async def nbdtui_random_reads(uri: str, size: int, depth: int, seconds: float) -> float:
    import nbdtui

    blocks = size // 4096
    rng = random.Random(1)
    done = 0
    async with nbdtui.open(uri, window=depth, connections=1) as export:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            buf = bytearray(4096)  # like fio, each I/O in flight has its own buffer
            while time.perf_counter() < deadline:
                await export.read_into(rng.randrange(blocks) * 4096, buf)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(depth)))
        elapsed = time.perf_counter() - start
    return done / elapsed


def fio_random_reads(uri: str, depth: int, seconds: float) -> float:
    out = subprocess.run(
        [
            "fio",
            "--name=randread",
            "--ioengine=nbd",
            f"--uri={uri}",
            "--rw=randread",
            "--bs=4k",
            f"--iodepth={depth}",
            f"--runtime={seconds}",
            "--time_based",
            "--output-format=json",
            "--randrepeat=1",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out[out.index("{") :])["jobs"][0]["read"]["iops"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    transfer_options(ap)
    ap.add_argument("--seconds", type=float, default=10.0, help="random-read duration")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    opts = ap.parse_args()
    size = parse_size(opts.size)
    require("nbdkit", "nbdcopy", "fio")
    compile_nbdtui()
    nbdtui_cmd = [sys.executable, "-m", "nbdtui"]
    c, r = str(opts.connections), str(opts.requests)
    conns, window = opts.connections, opts.requests
    rows: list[tuple[str, float, float, str, str]] = []
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="nbdtui-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with nbdkit(tmp, "pattern", f"size={size}") as uri:
            nbdtui_read = [*nbdtui_cmd, "read", uri, "-o", "/dev/null"]
            nbdcopy_read = ["nbdcopy", *nbdcopy_flags(conns, window), uri, "null:"]
            ours, theirs = paired(
                opts.runs,
                lambda: timed([*nbdtui_read, "--connections", c, "--window", r]),
                lambda: timed(nbdcopy_read),
            )
            rows.append(("sequential read, cli", size / ours, size / theirs, "MiB/s", "nbdcopy"))
            ours, theirs = paired(
                opts.runs,
                lambda: in_process(uri, conns, window, read_to_null),
                lambda: timed(nbdcopy_read),
            )
            rows.append(
                ("sequential read, in process", size / ours, size / theirs, "MiB/s", "nbdcopy")
            )
            results["startup_s"] = statistics.median(
                timed([*nbdtui_read, "--length", "4K"]) for _ in range(opts.runs)
            )
            results["peak_rss_mib"] = peak_rss_mib(
                [*nbdtui_read, "--connections", c, "--window", r]
            )
            ours_iops = asyncio.run(nbdtui_random_reads(uri, size, 16, opts.seconds))
            fio_iops = fio_random_reads(uri, 16, opts.seconds)
            rows.append(("random 4K read, depth 16", ours_iops, fio_iops, "IOPS", "fio"))
        src = tmp / "source.img"
        with open(src, "wb") as f:
            block = os.urandom(1024 * 1024)
            for _ in range(size // len(block)):
                f.write(block)
        with nbdkit(tmp, "memory", f"size={size}") as uri:
            nbdcopy_write = ["nbdcopy", *nbdcopy_flags(conns, window), str(src), uri]
            timed(nbdcopy_write)  # untimed: the memory plugin allocates on first write
            ours, theirs = paired(
                opts.runs,
                lambda: timed(
                    [*nbdtui_cmd, "write", uri, str(src), "--connections", c, "--window", r]
                ),
                lambda: timed(nbdcopy_write),
            )
            rows.insert(
                2, ("sequential write, cli", size / ours, size / theirs, "MiB/s", "nbdcopy")
            )
            ours, theirs = paired(
                opts.runs,
                lambda: in_process(uri, conns, window, write_file(src)),
                lambda: timed(nbdcopy_write),
            )
            rows.insert(
                3, ("sequential write, in process", size / ours, size / theirs, "MiB/s", "nbdcopy")
            )

    print(
        f"nbdtui vs other tools: {opts.size}, {c} connections x {r} requests, median of {opts.runs}"
    )
    print(f"{'benchmark':<30} {'nbdtui':>12} {'other':>12} {'unit':<6} {'ratio':>6}  vs")
    for name, ours, theirs, unit, other in rows:
        scale = 1 / (1024 * 1024) if unit == "MiB/s" else 1
        ratio = ours / theirs
        results[name] = ratio
        figures = f"{ours * scale:12.1f} {theirs * scale:12.1f} {unit:<6} {ratio:6.2f}"
        print(f"{name:<30} {figures}  {other}")
    print(f"{'peak RSS of nbdtui read':<30} {results['peak_rss_mib']:12.1f} {'':>12} MiB")
    print(f"{'nbdtui start-up (4K read)':<30} {results['startup_s'] * 1000:12.1f} {'':>12} ms")
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
