#!/usr/bin/env python3
"""Throughput of `nbdtui copy` against `nbdcopy`, side by side in one run.

Starts nbdkit itself (Unix sockets in a private directory) and copies SIZE bytes of
random data (no holes: every byte is read and written) three ways:

- export to file: nbdkit's `file` plugin -> a new local file;
- file to export: a local file -> nbdkit's `memory` plugin;
- export to export: `file` plugin -> `memory` plugin.

Both tools run with the same connections and requests in flight: nbdtui as a command
(`cli`: Python's start-up and imports included, 0.1 s on an idle machine, 0.3 s on a
loaded one, that nbdcopy, a C program, does not pay) and `in process` (the very code
the command runs, `nbdtui.cli.copy_command`, timed in this process); alternately, so
that a change in the machine's load weighs on both; each row is the median of --runs
runs, and the ratio is nbdcopy's time over nbdtui's (>1.0: nbdtui is faster). The
destination file is removed before each run of either tool. Usage:

    python bench/bench_copy.py [--size 1G] [--connections 4] [--requests 16] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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

from nbdtui.present.sizes import parse_size

MiB = 1024 * 1024


def in_process(argv: list[str], before: Callable[[], None] | None = None) -> float:
    """Seconds `nbdtui copy ARGV` takes in this process, from parsing to the end."""
    from nbdtui.cli import copy_command
    from nbdtui.cli.parser import build_parser

    if before is not None:
        before()
    start = time.perf_counter()
    args = build_parser("copy").parse_args(["copy", *argv])
    if asyncio.run(copy_command.run(args)):
        raise SystemExit(f"nbdtui copy {' '.join(argv)} failed")
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    transfer_options(ap)
    opts = ap.parse_args()
    size = parse_size(opts.size)
    require("nbdkit", "nbdcopy")
    compile_nbdtui()
    c, r = str(opts.connections), str(opts.requests)
    options = ["--connections", c, "--requests", r]
    ours_cmd = [sys.executable, "-m", "nbdtui", "copy", *options]
    theirs_cmd = ["nbdcopy", *nbdcopy_flags(opts.connections, opts.requests)]
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="nbdtui-bench-copy-") as tmpdir:
        tmp = Path(tmpdir)
        src = tmp / "source.img"
        with open(src, "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
        out = tmp / "out.img"

        def fresh_out() -> None:
            out.unlink(missing_ok=True)

        with nbdkit(tmp, "file", str(src)) as src_uri, nbdkit(tmp, "memory", str(size)) as mem:
            subprocess.run([*theirs_cmd, str(src), mem], check=True)  # memory allocated
            cases = [
                ("export to file", src_uri, str(out), fresh_out),
                ("file to export", str(src), mem, None),
                ("export to export", src_uri, mem, None),
            ]
            for name, a, b, before in cases:
                ours, theirs = paired(
                    opts.runs,
                    lambda a=a, b=b, before=before: timed([*ours_cmd, a, b], before),
                    lambda a=a, b=b, before=before: timed([*theirs_cmd, a, b], before),
                )
                rows.append((f"{name}, cli", size / ours, size / theirs))
                ours, theirs = paired(
                    opts.runs,
                    lambda a=a, b=b, before=before: in_process([*options, a, b], before),
                    lambda a=a, b=b, before=before: timed([*theirs_cmd, a, b], before),
                )
                rows.append((f"{name}, in process", size / ours, size / theirs))
    print(
        f"nbdtui copy vs nbdcopy: {opts.size}, {c} connections x {r} requests, "
        f"median of {opts.runs}"
    )
    print(f"{'case':<28} {'nbdtui MiB/s':>13} {'nbdcopy MiB/s':>14} {'ratio':>6}")
    for name, ours, theirs in rows:
        print(f"{name:<28} {ours / MiB:13.1f} {theirs / MiB:14.1f} {ours / theirs:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
