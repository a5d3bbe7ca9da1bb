"""What the benches that set nbdtui beside another tool share: the tools they need,
nbdtui byte-compiled as installed, nbdkit on a Unix socket, a command timed, and two
measurements run alternately (``python bench/bench_*.py`` finds this module next to it)."""

from __future__ import annotations

import argparse
import compileall
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nbdtui

#: The checkout (bench/..).
ROOT = Path(__file__).resolve().parent.parent


def transfer_options(ap: argparse.ArgumentParser, *, size: str = "1G") -> None:
    """--size, --connections and --requests (the same for both tools), --runs."""
    ap.add_argument("--size", default=size)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5)


def nbdcopy_flags(connections: int, requests: int) -> list[str]:
    """nbdcopy's options for ``connections`` x ``requests`` in flight, really.

    nbdcopy lowers --connections to its --threads, which defaults to the number of
    cores: on a 2-core machine ``--connections=4`` alone opens 2 connections (``nbdcopy
    -v`` says ``connections=2 ... threads=2``). So the threads are set to match.
    """
    return [f"--connections={connections}", f"--threads={connections}", f"--requests={requests}"]


def require(*tools: str) -> None:
    for tool in tools:
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is not installed (scripts/install-deps.sh)")


def compile_nbdtui() -> None:
    """Byte-compile nbdtui, so that it starts as an installed copy does (pip compiles
    modules at install time; a checkout run with PYTHONDONTWRITEBYTECODE would compile
    every module at each start, some 50 ms the other tools do not pay)."""
    compileall.compile_dir(Path(nbdtui.__file__).parent, quiet=1)


@contextmanager
def nbdkit(tmp: Path, *args: str, start_timeout: float = 10) -> Iterator[str]:
    """nbdkit with ``args`` (plugin and its parameters) on a new socket in ``tmp``; its URI
    (it must be listening within ``start_timeout`` seconds)."""
    sock = tmp / f"nbdkit-{len(list(tmp.iterdir()))}.sock"
    proc = subprocess.Popen(
        ["nbdkit", "-f", "--exit-with-parent", "-U", str(sock), *args],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + start_timeout
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"nbdkit {' '.join(args)} did not start")
        time.sleep(0.02)
    try:
        yield f"nbd+unix:///?socket={sock}"
    finally:
        proc.terminate()
        proc.wait(5)


def timed(cmd: list[str], before: Callable[[], None] | None = None) -> float:
    """Seconds ``cmd`` takes (it must succeed); ``before`` runs first, untimed."""
    if before is not None:
        before()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def paired(
    runs: int, ours: Callable[[], float], theirs: Callable[[], float]
) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``theirs`` (each returns its seconds), run
    alternately, and who goes first alternates too: a change in the machine's load
    weighs on both."""
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        if i % 2:
            b.append(theirs())
            a.append(ours())
        else:
            a.append(ours())
            b.append(theirs())
    return statistics.median(a), statistics.median(b)
