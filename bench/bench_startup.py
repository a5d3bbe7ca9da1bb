#!/usr/bin/env python3
"""Start-up of one-shot commands: ``nbdtui info --json`` vs ``nbdinfo --json``, and a
4 KiB ``nbdtui read`` vs ``nbdcopy`` of a 4 KiB export, on Unix sockets.

Starts two ``nbdkit memory`` servers on Unix sockets in a private directory, then runs
each command --rounds times, the tools alternating within every round (load from other
processes touches them alike). Prints the median and minimum wall time of each, and the
ratios nbdtui / the other tool. With --baseline TREE, the same commands from another
checkout too (its PYTHONPATH), to compare before and after. With --instructions, the
instructions of one run of each (valgrind's callgrind: load does not distort them).
The interpreter alone (``python -c pass``) is measured for reference. Usage:

    python bench/bench_startup.py [--rounds 15] [--baseline /path/to/other/tree] [--instructions]
                                  [--tls]

With --tls the servers require TLS (X.509 certificates made as bench_tls.py makes them,
for ``localhost``) and every tool reaches them with ``nbds+unix://...&tls-certificates=``.

Python's bytecode caches must exist (an installed package has them; in a checkout, run
``python -m compileall -q nbdtui`` once, or nbdtui compiles its sources at every start).

Figures on an idle machine (load 0.5), the merged code, ``--rounds 21 --baseline`` (the
tree before: dataclasses for the events, ExportInfo and Endpoint, and inspect on the
path; Python 3.11), and ``--instructions`` in a separate run::

    command              median ms  min ms  M instr.   before: median  min  M instr.
    nbdtui info --json        51.4    50.0     209.9             67.1  65.5     299.0
    nbdtui read 4 KiB         50.8    48.6     203.5             65.8  64.1     292.3
    nbdinfo --json             8.7     8.4       7.6
    nbdcopy 4 KiB              5.9     5.6       7.6
    python -c pass            35.7    34.9     142.1

    info / baseline 0.77x, read 4 KiB / baseline 0.77x. Instructions beyond ``python -c
    pass``: info 157 -> 68 M, read 150 -> 61 M. What is left beyond the interpreter, in
    instructions: the enums of proto/constants.py 11.5 M, argparse 8.4 M (its gettext
    lookups of its own words included: a patch of ``argparse._`` would save 5 M, and a
    hand-written JSON printer 5.6 M; both were tried and left out as not worth their
    upkeep), errors.py 5 M, the proto and client modules about 15 M.

Over TLS (``--tls --rounds 21 --baseline``, idle machine, Python 3.11; the baseline is
main before the one-shot path served TLS, when ``nbds`` went the asyncio way)::

    command              median ms  min ms   before: median   min
    nbdtui info --json        70.2    65.9             105.0  99.4
    nbdtui read 4 KiB         68.9    64.8             109.7 103.7
    nbdinfo --json            12.7    10.8
    nbdcopy 4 KiB             11.9    10.2
    python -c pass            36.9    35.5

    info / baseline 0.67x, read 4 KiB / baseline 0.63x (the plaintext figures did not
    move: 50.9 / 49.6 ms, 1.00x). What TLS adds to the plaintext one-shot, in process:
    importing ssl (and socket behind it) 7 ms, the context (one CA file) 2.5 ms, the TLS
    handshake with nbdkit about 4 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREE = str(Path(__file__).resolve().parent.parent)


def start_nbdkit(
    directory: Path, name: str, size: str, tls_dir: Path | None = None
) -> tuple[subprocess.Popen, str]:
    sock = directory / f"{name}.sock"
    tls = ["--tls=require", f"--tls-certificates={tls_dir}"] if tls_dir else []
    proc = subprocess.Popen(["nbdkit", "-f", "-U", str(sock), *tls, "memory", size])
    for _ in range(200):
        if sock.exists():
            break
        time.sleep(0.01)
    if tls_dir is None:
        return proc, f"nbd+unix:///?socket={sock}"
    return proc, f"nbds+unix:///?socket={sock}&tls-certificates={tls_dir}"


def commands(
    big: str, small: str, out: Path, baseline: str | None
) -> dict[str, tuple[list[str], str | None]]:
    py = sys.executable
    ours = {
        "info": ["-m", "nbdtui", "info", "--json", big],
        "read 4 KiB": ["-m", "nbdtui", "read", big, "--length", "4096", "-o", str(out / "a")],
    }
    table: dict[str, tuple[list[str], str | None]] = {}
    for what, args in ours.items():
        table[f"nbdtui {what}"] = ([py, *args], TREE)
        if baseline:
            table[f"baseline {what}"] = ([py, *args], baseline)
    table["nbdinfo"] = (["nbdinfo", "--json", big], None)
    table["nbdcopy 4 KiB"] = (["nbdcopy", small, str(out / "b")], None)
    table["python -c pass"] = ([py, "-c", "pass"], None)
    return table


def run(argv: list[str], tree: str | None) -> None:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree
    # not from a checkout: `python -m` would find the package of the current directory
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True, cwd="/")


def instructions(argv: list[str], tree: str | None, directory: Path) -> float:
    out = directory / "callgrind.out"
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
        env=env,
        capture_output=True,
        check=True,
        cwd="/",
    )
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    assert match is not None
    return int(match.group(1)) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--baseline", metavar="TREE", help="another checkout to compare with")
    ap.add_argument("--instructions", action="store_true", help="count with callgrind too")
    ap.add_argument(
        "--tls", action="store_true", help="servers with --tls=require (X.509, nbds+unix://)"
    )
    opts = ap.parse_args()
    for program in ("nbdkit", "nbdinfo", "nbdcopy", *(("openssl",) if opts.tls else ())):
        if shutil.which(program) is None:
            sys.exit(f"bench_startup: {program} is needed")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        tls_dir = None
        if opts.tls:
            from bench_tls import make_certs  # (bench/ is on sys.path: this script's)

            tls_dir = directory / "pki"
            tls_dir.mkdir()
            make_certs(tls_dir)
        servers = [
            start_nbdkit(directory, "big", "1G", tls_dir),
            start_nbdkit(directory, "small", "4K", tls_dir),
        ]
        try:
            table = commands(servers[0][1], servers[1][1], directory, opts.baseline)
            times: dict[str, list[float]] = {name: [] for name in table}
            for argv, tree in table.values():
                run(argv, tree)  # warm the page cache
            for _ in range(opts.rounds):
                for name, (argv, tree) in table.items():
                    start = time.perf_counter()
                    run(argv, tree)
                    times[name].append(time.perf_counter() - start)
            medians = {name: statistics.median(v) * 1000 for name, v in times.items()}
            print(f"{'command':<22} {'median ms':>10} {'min ms':>8}")
            for name, values in times.items():
                print(f"{name:<22} {medians[name]:10.1f} {min(values) * 1000:8.1f}")
            print()
            print(f"info / nbdinfo:          {medians['nbdtui info'] / medians['nbdinfo']:.1f}x")
            ratio = medians["nbdtui read 4 KiB"] / medians["nbdcopy 4 KiB"]
            print(f"read 4 KiB / nbdcopy:    {ratio:.1f}x")
            if opts.baseline:
                for what in ("info", "read 4 KiB"):
                    ratio = medians[f"nbdtui {what}"] / medians[f"baseline {what}"]
                    print(f"{what} / baseline:{' ' * (14 - len(what))}{ratio:.2f}x")
            if opts.instructions:
                print()
                for name, (argv, tree) in table.items():
                    count = instructions(argv, tree, directory)
                    print(f"{name:<22} {count:8.1f} M instructions")
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
