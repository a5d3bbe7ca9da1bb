#!/usr/bin/env python3
"""`nbdtui diff` against `cmp <(nbdcopy A -) <(nbdcopy B -)`, side by side in one run.

Starts nbdkit itself (on Unix sockets in a private directory), then measures:

- two SIZE data exports (nbdkit file of a random image) that are identical: every byte
  is read and compared by both tools;
- the same with 100 one-byte differences spread over the export: `nbdtui diff` lists
  them, `cmp -l` too (plain cmp would stop at the first);
- two 1 TiB sparse exports (nbdkit sparse-random, different seeds, a few MiB of data
  each): `nbdtui diff` alone (cmp would read the whole TiB through pipes, hours).

Each row runs whole commands (Python's start-up included), nbdtui and cmp alternating
so that a change in the machine's load weighs on both; the median of --runs runs.
Ratios are cmp's time over nbdtui's (>1.0 means nbdtui is faster). Usage:

    python bench/bench_diff.py [--size 1G] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from side_by_side import nbdkit

from nbdtui.present.sizes import parse_size

MiB = 1024 * 1024


def timed(cmd: list[str], ok: tuple[int, ...] = (0, 1)) -> tuple[float, bytes]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.decode()}")
    return elapsed, proc.stdout


def nbdtui_diff(a: str, b: str) -> list[str]:
    return [sys.executable, "-m", "nbdtui", "diff", a, b]


def cmp_nbdcopy(a: str, b: str, *flags: str) -> list[str]:
    script = f"cmp {' '.join(flags)} <(nbdcopy '{a}' -) <(nbdcopy '{b}' -)"
    return ["bash", "-c", script]


def paired(runs: int, ours: list[str], theirs: list[str]) -> tuple[float, float, bytes, bytes]:
    mine, other = [], []
    timed(ours)  # warm up: the page cache of the servers' files, Python's bytecode
    timed(theirs)
    out_ours = out_theirs = b""
    for _ in range(runs):
        t, out_ours = timed(ours)
        mine.append(t)
        t, out_theirs = timed(theirs)
        other.append(t)
    return statistics.median(mine), statistics.median(other), out_ours, out_theirs


def make_images(tmp: Path, size: int) -> tuple[Path, Path, list[int]]:
    a, b = tmp / "a.img", tmp / "b.img"
    with open(a, "wb") as f:
        rng = random.Random(1)
        for _ in range(0, size, 64 * MiB):
            f.write(rng.randbytes(min(64 * MiB, size - f.tell())))
    shutil.copyfile(a, b)
    rng = random.Random(2)
    where = sorted(rng.sample(range(size), 100))
    with open(a, "rb") as fa, open(b, "r+b") as fb:
        for pos in where:
            fa.seek(pos)
            byte = fa.read(1)[0]
            fb.seek(pos)
            fb.write(bytes([byte ^ 0x5A]))
    return a, b, where


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=parse_size("1G"))
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    for tool in ("nbdkit", "nbdcopy", "cmp", "bash"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench_diff: {tool} is needed")
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as d, ExitStack() as stack:
        tmp = Path(d)
        a, b, where = make_images(tmp, args.size)
        ua = stack.enter_context(nbdkit(tmp, "file", str(a)))
        ua2 = stack.enter_context(nbdkit(tmp, "file", str(a)))
        ub = stack.enter_context(nbdkit(tmp, "file", str(b)))
        size_text = f"{args.size / MiB:.0f} MiB"
        for uri in (ua, ua2, ub):  # (cmp of two empty pipes says "identical")
            _, out = timed(["bash", "-c", f"nbdcopy '{uri}' - | wc -c"], ok=(0,))
            assert int(out) == args.size, f"nbdcopy cannot read {uri}"
        print(f"{'case':44} {'nbdtui s':>9} {'cmp s':>9} {'ratio':>6}")

        t_ours, t_cmp, out, _ = paired(args.runs, nbdtui_diff(ua, ua2), cmp_nbdcopy(ua, ua2))
        assert out == b"", out
        print(f"{'identical ' + size_text:44} {t_ours:9.2f} {t_cmp:9.2f} {t_cmp / t_ours:6.2f}")

        t_ours, t_cmp, out, out_cmp = paired(
            args.runs, nbdtui_diff(ua, ub), cmp_nbdcopy(ua, ub, "-l")
        )
        found = [int(line.split()[0], 16) for line in out.decode().splitlines()]
        assert found == where, "nbdtui diff missed differences"
        assert len(out_cmp.splitlines()) == len(where)
        name = f"100 differences {size_text} (cmp -l)"
        print(f"{name:44} {t_ours:9.2f} {t_cmp:9.2f} {t_cmp / t_ours:6.2f}")

        sparse = ("sparse-random", "size=1T", "percent=0.0005", "runlength=65536")
        sa = stack.enter_context(nbdkit(tmp, *sparse, "seed=1", start_timeout=60))
        sb = stack.enter_context(nbdkit(tmp, *sparse, "seed=2", start_timeout=60))
        times = []
        for _ in range(args.runs):
            t, out = timed(nbdtui_diff(sa, sb))
            times.append(t)
        runs = out.decode().splitlines()
        differ = sum(int(line.split()[1]) for line in runs)
        name = f"sparse 1 TiB ({len(runs)} runs, {differ / MiB:.1f} MiB differ)"
        print(f"{name:44} {statistics.median(times):9.2f} {'-':>9} {'-':>6}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    sys.exit(main())
