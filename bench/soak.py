#!/usr/bin/env python3
"""Soak test: random reads and writes through faults, checked against a shadow copy.

Starts ``nbdkit`` (memory plugin by default) on a Unix socket with the ``error``
filter (EIO on a share of reads and writes) and the ``delay`` filter (a little latency
on every read and write, and zeroes slow enough to hit the request timeout), then for
--seconds runs --workers tasks doing random reads, writes, zeroes and flushes through
one ``nbdtui.open`` export (several connections, request timeout, reconnect). Every few
seconds a connection is cancelled the way the pool screen's cancel key does it, so the
requests in flight on it are sent again on a new one. With ``--plugin file
--restart-every N`` the server is also SIGKILLed and restarted every N seconds.

Each worker owns a region of the export and keeps a shadow copy of it. A successful
write updates the shadow; a failed one (EIO, timeout, connection lost) leaves its range
unknown, so the worker writes it again until it lands. Every successful read is compared
with the shadow; at the end the whole export is read back and compared. The report
gives operations, faults seen by kind, and mismatches (which must be 0; exit status 1
otherwise). Usage:

    python bench/soak.py [--seconds 60] [--size 64M] [--workers 8] [--seed N]

With ``--hostile`` it runs instead the command line against hostile servers (endless
option replies, a dripping server, READ_ONLY without HAS_FLAGS, 1-byte extents, a write
failing everywhere; see ``bench/soak_hostile.py``) and prints a table of exit status,
time, peak RSS and message for each case:

    python bench/soak.py --hostile [--rounds 3] [--max-rss 100]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbdtui
from nbdtui.client import Pool
from nbdtui.client.group import PooledConnectionStats
from nbdtui.errors import (
    ConnectionLostError,
    NbdError,
    ProtocolError,
    RequestError,
    RequestTimeoutError,
)
from nbdtui.present.sizes import parse_size

KiB, MiB = 1024, 1024 * 1024
MAX_REWRITES = 100


class Stats:
    def __init__(self) -> None:
        self.ops: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, str] = {}  # kind of fault -> its first message
        self.bytes_read = 0
        self.bytes_written = 0
        self.mismatches = 0
        self.mismatch_examples: list[str] = []
        self.rewrites = 0
        self.cancels = 0
        self.restarts = 0

    def fault(self, op: str, exc: BaseException) -> None:
        if isinstance(exc, RequestTimeoutError):
            kind = "timeout"
        elif isinstance(exc, RequestError):
            kind = exc.errno_name
        elif isinstance(exc, ConnectionLostError):
            kind = "connection lost"
        elif isinstance(exc, ProtocolError):
            kind = "protocol error"
        else:
            kind = type(exc).__name__
        self.faults[f"{op}: {kind}"] += 1
        self.examples.setdefault(f"{op}: {kind}", str(exc))

    def mismatch(self, where: str) -> None:
        self.mismatches += 1
        if len(self.mismatch_examples) < 10:
            self.mismatch_examples.append(where)


class Worker:
    """Random I/O in [start, end) of the export with a shadow copy of that region."""

    def __init__(self, export, start: int, end: int, rng: random.Random, stats: Stats, opts):
        self.export = export
        self.start, self.end = start, end
        self.rng = rng
        self.stats = stats
        self.opts = opts
        self.shadow = bytearray(end - start)  # the memory plugin starts all zero
        self.unknown: list[tuple[int, int]] = []  # ranges no write could settle

    def _range(self) -> tuple[int, int]:
        length = self.rng.choice((1, 512, 4 * KiB, 4 * KiB, 64 * KiB, 256 * KiB))
        length = min(length + self.rng.randrange(0, 64), self.end - self.start)
        offset = self.start + self.rng.randrange(0, self.end - self.start - length + 1)
        return offset, length

    def _known(self, offset: int, length: int) -> bool:
        return not any(s < offset + length and offset < e for s, e in self.unknown)

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            r = self.rng.random()
            if r < 0.45:
                await self.read()
            elif r < 0.93:
                await self.write()
            elif r < 0.932:
                await self.zero()
            else:
                await self.flush()

    async def read(self) -> None:
        offset, length = self._range()
        self.stats.ops["read"] += 1
        try:
            data = await self.export.read(offset, length)
        except NbdError as exc:
            self.stats.fault("read", exc)
            return
        self.stats.bytes_read += length
        self.check(offset, data)

    def check(self, offset: int, data: bytes) -> None:
        lo = offset - self.start
        expected = self.shadow[lo : lo + len(data)]
        if data != expected and self._known(offset, len(data)):
            first = next(i for i in range(len(data)) if data[i] != expected[i])
            self.stats.mismatch(f"{offset + first:#x} (read {offset:#x}+{len(data)})")

    async def write(self) -> None:
        offset, length = self._range()
        await self._settle(offset, length, lambda: self.rng.randbytes(length), "write")

    async def zero(self) -> None:
        offset, length = self._range()
        await self._settle(offset, length, None, "zero")

    async def _settle(self, offset: int, length: int, make, op: str) -> None:
        """Write (or zero) the range until it lands; the shadow follows."""
        for attempt in range(MAX_REWRITES):
            data = make() if make is not None else None
            what = op if attempt == 0 or data is None else "rewrite"
            self.stats.ops[what] += 1
            try:
                if data is None:
                    await self.export.zero(offset, length)
                    data = bytes(length)
                else:
                    await self.export.write(offset, data)
            except NbdError as exc:
                self.stats.fault(what, exc)
                # The range is unknown now: write it again (with data, always).
                self.stats.rewrites += 1
                make = make or (lambda: self.rng.randbytes(length))
                continue
            lo = offset - self.start
            self.shadow[lo : lo + length] = data
            self.stats.bytes_written += length
            self.unknown = [
                (s, e) for s, e in self.unknown if not (offset <= s and e <= offset + length)
            ]
            return
        self.unknown.append((offset, offset + length))

    async def flush(self) -> None:
        self.stats.ops["flush"] += 1
        try:
            await self.export.flush()
        except NbdError as exc:
            self.stats.fault("flush", exc)


async def chaos(export, pool: Pool, stats: Stats, opts, deadline: float, restart) -> None:
    """Cancel a random connection every --cancel-every seconds (the pool screen's key);
    restart the server every --restart-every seconds."""
    rng = random.Random(opts.seed + 1)
    next_cancel = time.monotonic() + opts.cancel_every
    next_restart = time.monotonic() + opts.restart_every if opts.restart_every else None
    while time.monotonic() < deadline - 1:
        await asyncio.sleep(0.1)
        now = time.monotonic()
        if opts.cancel_every and now >= next_cancel:
            next_cancel = now + opts.cancel_every
            rows = [
                s
                for s in export.connection_stats()
                if isinstance(s, PooledConnectionStats) and s.state == "ready"
            ]
            if rows and pool.cancel(rng.choice(rows).conn_id):
                stats.cancels += 1
        if next_restart is not None and now >= next_restart:
            next_restart = now + opts.restart_every
            await asyncio.to_thread(restart)
            stats.restarts += 1


async def verify_all(export, workers: list[Worker], stats: Stats) -> None:
    """Read everything back (retrying reads the error filter fails) and compare."""
    for w in workers:
        for pos in range(w.start, w.end, MiB):
            n = min(MiB, w.end - pos)
            for _ in range(100):
                try:
                    data = await export.read(pos, n)
                    break
                except NbdError as exc:
                    stats.fault("final read", exc)
                    error = exc
            else:
                raise SystemExit(f"soak: could not read {pos:#x}+{n} back: {error}")
            w.check(pos, data)


class Server:
    def __init__(self, opts, tmp: Path) -> None:
        self.opts = opts
        self.sock = str(tmp / "nbd.sock")
        self.file = tmp / "disk.img"
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        o = self.opts
        plugin = ["memory", f"size={o.size}"]
        if o.plugin == "file":
            plugin = ["file", str(self.file)]
        return [
            "nbdkit",
            "-f",
            "--exit-with-parent",
            f"--threads={o.server_threads}",
            "-U",
            self.sock,
            "--filter=error",
            "--filter=delay",
            *plugin,
            "error=EIO",
            f"error-pread-rate={o.read_errors}",
            f"error-pwrite-rate={o.write_errors}",
            f"rdelay={o.latency}",
            f"wdelay={o.latency}",
            f"delay-zero={o.slow_zero}",
        ]

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock)
        if self.opts.server_log:
            with open(self.opts.server_log, "ab") as log:
                self.proc = subprocess.Popen(self.argv(), stderr=log)
        else:
            self.proc = subprocess.Popen(self.argv(), stderr=subprocess.DEVNULL)
        for _ in range(500):
            if Path(self.sock).exists():
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"soak: nbdkit exited with status {self.proc.returncode}")
            time.sleep(0.01)
        raise SystemExit("soak: nbdkit did not start")

    def restart(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        time.sleep(0.3)  # down for a moment: requests wait for the reconnect
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def soak(opts: argparse.Namespace, uri: str, server: Server) -> Stats:
    stats = Stats()
    pool = Pool()
    async with nbdtui.open(
        uri,
        pool=pool,
        connections=opts.connections,
        timeout=opts.timeout,
        reconnect_delay=opts.reconnect_delay,
        connect_timeout=2,
    ) as export:
        region = export.size // opts.workers
        rng = random.Random(opts.seed)
        workers = [
            Worker(export, i * region, (i + 1) * region, random.Random(rng.random()), stats, opts)
            for i in range(opts.workers)
        ]
        start = time.monotonic()
        deadline = start + opts.seconds
        tasks = [asyncio.create_task(w.run(deadline)) for w in workers]
        tasks.append(
            asyncio.create_task(chaos(export, pool, stats, opts, deadline, server.restart))
        )
        await asyncio.gather(*tasks)
        if server.proc is not None and server.proc.poll() is not None:
            raise SystemExit(f"soak: nbdkit died (status {server.proc.returncode})")
        stats.elapsed = time.monotonic() - start  # type: ignore[attr-defined]
        export.timeout = None  # the final check waits as long as it takes
        await verify_all(export, workers, stats)
        stats.reconnects = export._group.reconnects  # type: ignore[attr-defined]
        stats.unknown = sum(len(w.unknown) for w in workers)  # type: ignore[attr-defined]
    return stats


def report(opts, stats: Stats) -> None:
    total = sum(stats.ops.values())
    print(
        f"soak: {stats.elapsed:.1f} s, {opts.workers} workers, {opts.size} export, "  # type: ignore[attr-defined]
        f"plugin {opts.plugin}, timeout {opts.timeout:g} s"
    )
    print(f"operations: {total} ({', '.join(f'{k} {v}' for k, v in sorted(stats.ops.items()))})")
    print(
        f"bytes: read {stats.bytes_read / MiB:.1f} MiB, written {stats.bytes_written / MiB:.1f} MiB"
    )
    faults = sum(stats.faults.values())
    print(f"faults seen: {faults}")
    for kind, n in sorted(stats.faults.items()):
        print(f"  {kind}: {n}   e.g. {stats.examples[kind]}")
    print(f"rewrites of ranges left unknown by a failed write: {stats.rewrites}")
    print(
        f"connections cancelled: {stats.cancels}, server restarts: {stats.restarts}, "
        f"reconnections: {stats.reconnects}"
    )  # type: ignore[attr-defined]
    print(f"ranges still unknown at the end: {stats.unknown}")  # type: ignore[attr-defined]
    print(f"mismatches: {stats.mismatches}")
    for example in stats.mismatch_examples:
        print(f"  at {example}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--size", default="64M")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--plugin", choices=("memory", "file"), default="memory")
    ap.add_argument("--read-errors", default="2%", help="error filter rate on reads")
    ap.add_argument("--write-errors", default="2%", help="error filter rate on writes")
    ap.add_argument("--latency", default="1ms", help="delay filter on reads and writes")
    ap.add_argument("--slow-zero", default="3", help="delay of zeroes (over --timeout)")
    ap.add_argument("--timeout", type=float, default=2.0, help="request timeout")
    ap.add_argument("--reconnect-delay", type=float, default=15.0)
    ap.add_argument("--cancel-every", type=float, default=3.0, help="0: never")
    ap.add_argument("--restart-every", type=float, default=0.0, help="file plugin only")
    ap.add_argument("--server-log", default=None, metavar="PATH", help="nbdkit's stderr")
    ap.add_argument(
        "--server-threads",
        type=int,
        default=1,
        help="nbdkit --threads (nbdkit 1.32 can abort with more when a client closes a "
        "connection with requests in flight: connections.c raw_send_socket assertion)",
    )
    ap.add_argument(
        "--hostile",
        action="store_true",
        help="instead: the command line against hostile servers (floods, drips, broken "
        "flags, 1-byte extents), a table of exit status, time, peak RSS and message",
    )
    ap.add_argument("--rounds", type=int, default=1, help="--hostile: runs of each case")
    ap.add_argument("--max-rss", type=int, default=100, help="--hostile: MiB allowed")
    opts = ap.parse_args()
    if opts.hostile:
        from soak_hostile import run_hostile  # (bench/ is on sys.path: this script's dir)

        return run_hostile(opts.rounds, opts.max_rss)
    if opts.seed is None:
        opts.seed = random.randrange(1 << 30)
    if opts.restart_every and opts.plugin != "file":
        ap.error("--restart-every needs --plugin file (the memory plugin forgets on restart)")
    if not shutil.which("nbdkit"):
        raise SystemExit("soak: nbdkit is not installed")
    print(f"soak: seed {opts.seed}")
    with tempfile.TemporaryDirectory(prefix="nbdtui-soak-") as tmp:
        server = Server(opts, Path(tmp))
        if opts.plugin == "file":
            with server.file.open("wb") as f:
                f.truncate(parse_size(opts.size))
        server.start()
        try:
            uri = f"nbd+unix:///?socket={server.sock}"
            stats = asyncio.run(soak(opts, uri, server))
        finally:
            server.stop()
    report(opts, stats)
    return 1 if stats.mismatches or stats.unknown else 0  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
