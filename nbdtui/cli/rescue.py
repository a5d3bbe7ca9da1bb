"""`nbdtui copy --rescue --map FILE SRC DST`: get every readable byte off a failing
export, and say exactly which could not be read.

1. What SRC's block status reports as zeroes is zeroed in DST (or left, where DST
   reads as zeroes already) and marked finished, without a read.
2. Every range of the map not finished yet (not tried, not trimmed or scraped, and the
   bad ones of earlier runs) is read in CHUNK pieces, several in flight. A piece that
   the server fails (an NBD error reply) is split in two, and so on down to the block
   size (``--block-size``: 512, or the export's minimum block size); a block that
   still fails is bad (left zero in DST).
3. ``--retries N``: bad blocks are read again, N passes over them.

A range is marked finished in the map only once DST acknowledged its write and, when
the map is saved, DST was flushed (an export) or synced (a file): a finished range is
never read again by a later run. The map is saved atomically about once a second, and
at the end whatever happens. A lost connection, a timeout or a failing DST ends the
run (the map says where to resume); only NBD error replies from SRC count as bad
blocks. Requests in flight are always answered before the connections close
(NBD_CMD_DISC after the last reply).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import sys
import time
from typing import Any

from nbdtui.cli.copy_sides import ExportSide, FileSide, is_endpoint, subtract
from nbdtui.cli.progress import ProgressBar, progress
from nbdtui.cli.rescue_map import BAD, FINISHED, NOT_TRIMMED, UNTRIED, RescueMap, load
from nbdtui.errors import NbdError, RequestError, UsageError
from nbdtui.uri import without_secrets

CHUNK = 256 * 1024  # bytes of a first read
IN_FLIGHT = 16  # pieces read at once
SAVE_INTERVAL = 1.0  # seconds between saves of the map
SECTOR = 512


async def rescue(
    src: ExportSide, dst: ExportSide | FileSide, offset: int, length: int, args: argparse.Namespace
) -> int:
    if isinstance(dst, FileSide) and not dst.seekable:
        raise UsageError("--rescue needs DST to be an export, a file or a block device")
    mb = src.export.block_minimum
    block = args.block_size or max(SECTOR, mb)
    if block % mb:
        raise UsageError(f"--block-size {block} is not a multiple of SRC's minimum block size {mb}")
    rmap = load(args.map, src.size) or RescueMap(src.size)
    done = rmap.total(FINISHED)
    if done and isinstance(dst, FileSide) and dst.fresh:
        raise UsageError(
            f"{args.map} says {done} bytes were rescued already, but DST {dst.name} was "
            "empty or missing: give the DST of that rescue, or a new map"
        )
    job = _Rescue(src, dst, rmap, args.map, block, offset, offset + length)
    todo = rmap.total(UNTRIED + NOT_TRIMMED + "/" + BAD, offset, offset + length)
    try:
        with progress("rescue", todo) as job.bar:
            await job.run(args.retries)
    except UsageError:
        raise
    except NbdError as exc:
        raise NbdError(f"{exc}; run the same command again to resume (map {args.map})") from None
    finally:
        # Whatever happened, the map says what was done (only what DST holds for sure).
        with contextlib.suppress(NbdError, OSError):
            await job.save(final=True)
    hi = offset + length
    rescued = rmap.total(FINISHED, offset, hi)
    bad = rmap.ranges(BAD, offset, hi)
    bad_bytes = sum(b - a for a, b in bad)
    left = rmap.total(UNTRIED + NOT_TRIMMED + "/", offset, hi)
    summary = (
        f"rescued {rescued} bytes, {bad_bytes} bytes bad in {len(bad)} "
        f"range{'s' if len(bad) != 1 else ''}"
    )
    if left:
        summary += f", {left} bytes not tried"
    print(f"{summary} (map {args.map})", file=sys.stderr)
    return 0 if not bad and not left else 1


class _Rescue:
    def __init__(
        self,
        src: ExportSide,
        dst: ExportSide | FileSide,
        rmap: RescueMap,
        path: str,
        block: int,
        lo: int,
        hi: int,
    ) -> None:
        self.src, self.dst, self.map, self.path = src, dst, rmap, path
        self.block, self.lo, self.hi = block, lo, hi
        # (the map is a file others may read: URIs lose their secrets there)
        words = [without_secrets(w) if is_endpoint(w) else w for w in sys.argv[1:]]
        self.command_line = shlex.join(["nbdtui", *words])
        self._last_save = 0.0
        self._saving: asyncio.Lock = asyncio.Lock()
        self._dirty = False  # DST was written since its last flush/sync
        self._free: list[memoryview] = []
        self.bar: ProgressBar | None = None  # advanced by the first pass
        self._first_pass = True

    async def run(self, retries: int) -> None:
        rmap = self.map
        await self.save(final=False)  # (a map that cannot be written fails now)
        await self._zeroes()
        rmap.phase = UNTRIED
        todo = rmap.ranges(UNTRIED + NOT_TRIMMED + "/" + BAD, self.lo, self.hi)
        await self._pass(todo)
        self._first_pass = False
        for attempt in range(retries):
            bad = rmap.ranges(BAD, self.lo, self.hi)
            if not bad:
                break
            rmap.phase, rmap.pass_ = BAD, attempt + 2
            await self._pass(bad)
        if not rmap.ranges("?*/", self.lo, self.hi):
            rmap.phase = FINISHED  # (bad blocks may be left: ddrescue says finished too)

    async def _zeroes(self) -> None:
        """Step 1: SRC's zeroes are not read (see the module documentation)."""
        todo = self.map.ranges(UNTRIED, self.lo, self.hi)
        if not todo:
            return
        try:
            zero = await self.src.zero_ranges(self.lo, self.hi - self.lo)
        except RequestError:
            return
        zero = subtract(todo, subtract(todo, zero))
        already = await self.dst.zero_ranges(self.lo, self.hi - self.lo) if zero else []
        for a, b in zero:
            for c, d in subtract([(a, b)], already):
                await self.dst.zero(c, d - c)
                self._dirty = True
            self.map.mark(a, b, FINISHED)
            self._advance(b - a)
        await self.maybe_save()

    async def _pass(self, ranges: list[tuple[int, int]]) -> None:
        pending: set[asyncio.Task[None]] = set()
        try:
            for a, b in ranges:
                pos = a
                while pos < b:
                    # pieces end on CHUNK boundaries (aligned requests)
                    end = min(b, (pos // CHUNK + 1) * CHUNK)
                    while len(pending) >= IN_FLIGHT:
                        pending = await _reap(pending)
                    pending.add(asyncio.ensure_future(self._salvage(pos, end)))
                    pos = end
            while pending:
                pending = await _reap(pending)
        finally:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _salvage(self, lo: int, hi: int) -> None:
        """Read ``lo..hi`` into DST; on an error reply, split it down to blocks."""
        buf = self._free.pop() if self._free else memoryview(bytearray(CHUNK))
        try:
            await self._split_read(lo, hi, buf)
        finally:
            self._free.append(buf)

    async def _split_read(self, lo: int, hi: int, buf: memoryview) -> None:
        view = buf[: hi - lo]
        self.map.position = lo
        try:
            await self.src.export.read_into(lo, view)
        except RequestError:
            if hi - lo <= self.block:
                await self._bad(lo, hi)
                return
            self.map.mark(lo, hi, NOT_TRIMMED)
            mid = lo + max((hi - lo) // 2 // self.block, 1) * self.block
            await self._split_read(lo, mid, buf)
            await self._split_read(mid, hi, buf)
            return
        await self.dst.write(lo, view)
        self._dirty = True
        self.map.mark(lo, hi, FINISHED)
        self._advance(hi - lo)
        await self.maybe_save()

    async def _bad(self, lo: int, hi: int) -> None:
        new = self.map.ranges(BAD, lo, hi) != [(lo, hi)]
        if new and not (isinstance(self.dst, FileSide) and self.dst.fresh):
            await self.dst.zero(lo, hi - lo)  # DST reads zero where SRC is bad
            self._dirty = True
        self.map.mark(lo, hi, BAD)
        self._advance(hi - lo)
        await self.maybe_save()

    def _advance(self, n: int) -> None:
        if self.bar is not None and self._first_pass:
            self.bar.advance(n)

    async def maybe_save(self) -> None:
        if time.monotonic() - self._last_save >= SAVE_INTERVAL and not self._saving.locked():
            await self.save(final=False)

    async def save(self, *, final: bool) -> None:
        """Make DST's writes persistent, then save the map."""
        async with self._saving:
            self._last_save = time.monotonic()
            text_map = self.map
            if self._dirty:
                self._dirty = False
                # Marks made while DST syncs are saved next time (they may not be on disk).
                snapshot = _copy(text_map)
                await _sync(self.dst)
                text_map = snapshot
            await asyncio.to_thread(text_map.save, self.path, self.command_line)


async def _reap(pending: set[asyncio.Task[None]]) -> set[asyncio.Task[None]]:
    """Wait for some of ``pending`` to end; the others. The first failure (each one's
    exception is retrieved) ends the run."""
    done, left = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    errors = [t.exception() for t in done]
    for error in errors:
        if error is not None:
            for t in left:
                t.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            raise error
    return left


def _copy(rmap: RescueMap) -> RescueMap:
    twin = RescueMap(rmap.size)
    twin._starts, twin._status = list(rmap._starts), list(rmap._status)
    twin.position, twin.phase, twin.pass_ = rmap.position, rmap.phase, rmap.pass_
    return twin


async def _sync(dst: Any) -> None:
    if isinstance(dst, ExportSide):
        if dst.export.info.can_flush:
            await dst.export.flush()
    else:
        await asyncio.to_thread(dst.sync)
