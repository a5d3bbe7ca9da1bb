#!/usr/bin/env python3
"""Library-level sequential read throughput: ``Export.read_into`` vs ``nbdcopy URI null:``.

Starts ``nbdkit pattern SIZE`` on a Unix socket in a private directory, then reads the
whole export with nbdtui's library (pieces of --piece bytes into reused buffers, up to
--pieces in flight, like a streaming consumer) for several request sizes, and with
nbdcopy. Each figure is the median of --runs runs. Usage:

    python bench/bench_read.py [--size 1G] [--connections 4] [--window 16] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from side_by_side import nbdcopy_flags

import nbdtui
from nbdtui.client import Pool
from nbdtui.present.sizes import parse_size

MiB = 1024 * 1024


async def nbdtui_read(uri: str, opts: argparse.Namespace, request_size: int | None = None) -> float:
    """Median MiB/s of reading the whole export ``opts.runs`` times through the library."""
    async with nbdtui.open(
        uri, pool=Pool(), connections=opts.connections, window=opts.window
    ) as export:
        if request_size is not None:
            export.request_size = request_size
        buffers = [bytearray(opts.piece) for _ in range(opts.pieces)]
        times = []
        for _ in range(opts.runs):
            start = time.perf_counter()
            pending: list[asyncio.Task] = []
            for i, pos in enumerate(range(0, export.size, opts.piece)):
                if len(pending) == opts.pieces:
                    await pending.pop(0)
                view = memoryview(buffers[i % opts.pieces])[: min(opts.piece, export.size - pos)]
                pending.append(asyncio.ensure_future(export.read_into(pos, view)))
            await asyncio.gather(*pending)
            times.append(time.perf_counter() - start)
        return export.size / statistics.median(times) / MiB


def nbdcopy_read(uri: str, opts: argparse.Namespace, size: int) -> float:
    cmd = ["nbdcopy", *nbdcopy_flags(opts.connections, opts.window)]
    times = []
    for _ in range(opts.runs):
        start = time.perf_counter()
        subprocess.run([*cmd, uri, "null:"], check=True)
        times.append(time.perf_counter() - start)
    return size / statistics.median(times) / MiB


def add_read_options(ap: argparse.ArgumentParser, *, size: str) -> None:
    """The options nbdtui_read and nbdcopy_read read from ``opts``."""
    ap.add_argument("--size", default=size)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--piece", type=parse_size, default=64 * MiB)
    ap.add_argument("--pieces", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_read_options(ap, size="1G")
    opts = ap.parse_args()
    size = parse_size(opts.size)
    for tool in ("nbdkit", "nbdcopy"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is not installed")
    with tempfile.TemporaryDirectory(prefix="nbdtui-bench-") as tmp:
        sock = str(Path(tmp) / "nbd.sock")
        server = subprocess.Popen(
            ["nbdkit", "-f", "--exit-with-parent", "-U", sock, "pattern", str(size)]
        )
        try:
            for _ in range(200):
                if Path(sock).exists():
                    break
                time.sleep(0.02)
            uri = f"nbd+unix:///?socket={sock}"
            print(
                f"sequential read of {opts.size} from nbdkit pattern, "
                f"{opts.connections} connections x {opts.window} requests"
            )
            print(f"{'nbdcopy null:':<28} {nbdcopy_read(uri, opts, size):8.0f} MiB/s")
            for request_size in (256 * 1024, MiB, 4 * MiB):
                rate = asyncio.run(nbdtui_read(uri, opts, request_size))
                label = f"nbdtui {request_size // 1024} KiB requests"
                print(f"{label:<28} {rate:8.0f} MiB/s")
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
