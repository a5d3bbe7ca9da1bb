"""Scan a whole export for filesystem and volume signatures (``nbdtui scan`` and the
editor's scan dialog).

The export is read in large pieces over its bulk engine, several at once; ranges that
block status reports as zeros are not read. Each piece is searched for every family's
magic at the place it puts it (:func:`nbdtui.disk.structures.scan.candidates`, which
costs well under a millisecond per 4 MiB), and once everything is read the candidates
are decoded, lowest first, by the registry's decoders
(:func:`nbdtui.disk.structures.scan.verify_plan`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator
from contextlib import AbstractAsyncContextManager, aclosing
from dataclasses import dataclass
from typing import Protocol, TypeVar

from nbdtui.disk.structures.model import Request, Structure
from nbdtui.disk.structures.scan import candidates, merge, verify_plan
from nbdtui.editor.device import ExtentView, Searchable
from nbdtui.errors import NbdError, RequestError

_T = TypeVar("_T")

__all__ = ["ScanResult", "Scannable", "data_ranges", "find_candidates", "scan"]


class BulkReader(Protocol):
    """The export's bulk engine (``nbdtui.client.bulk``), as far as a scan reads."""

    async def read_into(self, offset: int, buffer: memoryview) -> None: ...


class Scannable(Searchable, Protocol):
    """An export a scan reads: its bytes, its allocation and its bulk engine."""

    def bulk(self) -> AbstractAsyncContextManager[BulkReader]: ...


PIECE = 4 * 1024 * 1024  # bytes a read
SALVAGE = 64 * 1024  # bytes a read, again, of a piece the server failed to read
IN_FLIGHT = 8  # reads at once, over the bulk engine's connections
SECTOR = 512


async def data_ranges(export: Scannable) -> list[tuple[int, int]]:
    """The ranges (start, end) to read: all but the runs that block status reports as
    zeros and that can hold a whole piece (shrunk to whole sectors); the whole export
    without block status. Smaller zero runs are read: so at most one range a piece is
    kept whatever the server reports (1-byte extents, say): they are taken as they
    come."""
    size = export.size
    zeros: list[tuple[int, int]] = []
    lo = hi = -1  # the zero run being built

    def close() -> None:
        start, end = -(-lo // SECTOR) * SECTOR, hi - hi % SECTOR if hi < size else size
        if end - start >= PIECE:
            zeros.append((start, end))

    try:
        async with aclosing(_extents(export, size)) as found:
            async for e in found:
                if e.zero:
                    if e.offset != hi:
                        close()
                        lo = e.offset
                    hi = e.offset + e.length
    except NbdError:  # block status is an optimisation: read everything instead
        return [(0, size)] if size else []
    close()
    out: list[tuple[int, int]] = []
    pos = 0
    for start, end in zeros:
        if start > pos:
            out.append((pos, start))
        pos = end
    if pos < size:
        out.append((pos, size))
    return out


async def _extents(export: Scannable, size: int) -> AsyncGenerator[ExtentView, None]:
    async for extent in export.iter_extents(0, size):
        yield extent


def _pieces(ranges: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    for lo, hi in ranges:
        for pos in range(lo, hi, PIECE):
            yield pos, min(PIECE, hi - pos)


def _buffer(idle: list[bytearray], n: int) -> bytearray:
    """An idle buffer of at least ``n`` bytes, or a new one of ``n`` (fresh pages cost
    the kernel about 0.6 ms a MiB to zero: a small range gets a small buffer)."""
    for i, buf in enumerate(idle):
        if len(buf) >= n:
            return idle.pop(i)
    return bytearray(n)


@dataclass(frozen=True)
class ScanResult:
    """What a scan found, and the ranges (start, end) the server could not read: a
    damaged disk is scanned around its bad areas, not given up on."""

    structures: list[Structure]
    unreadable: list[tuple[int, int]]


async def find_candidates(
    export: Scannable,
    ranges: list[tuple[int, int]] | None = None,
    advance: Callable[[int], None] | None = None,
) -> tuple[dict[int, set[str]], list[tuple[int, int]]]:
    """Where a structure may start (offset -> blkid types), from the magic numbers in
    ``ranges`` (default: every range of the export that holds data), and the ranges
    the server failed to read (a piece that fails is read again in SALVAGE pieces);
    ``advance(n)`` is told of each piece searched."""
    found: dict[int, set[str]] = {}
    failed: list[tuple[int, int]] = []
    pieces = _pieces(await data_ranges(export) if ranges is None else ranges)
    pending: dict[asyncio.Future[None], tuple[int, bytearray, int]] = {}
    idle: list[bytearray] = []
    async with export.bulk() as engine:
        try:
            while True:
                while len(pending) < IN_FLIGHT and (piece := next(pieces, None)):
                    pos, n = piece
                    buf = _buffer(idle, n)
                    read = engine.read_into(pos, memoryview(buf)[:n])
                    pending[asyncio.ensure_future(read)] = (pos, buf, n)
                if not pending:
                    break
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    pos, buf, n = pending.pop(finished)
                    idle.append(buf)
                    try:
                        finished.result()  # any other failure ends the scan
                    except RequestError:
                        failed.append((pos, n))
                        continue
                    merge(found, candidates(buf, pos, n))
                    if advance is not None:
                        advance(n)
        finally:
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    unreadable: list[tuple[int, int]] = []
    for start, length in sorted(failed):
        for pos in range(start, start + length, SALVAGE):
            n = min(SALVAGE, start + length - pos)
            try:
                data = await export.read(pos, n)
            except RequestError:
                if unreadable and unreadable[-1][1] == pos:
                    unreadable[-1] = (unreadable[-1][0], pos + n)
                else:
                    unreadable.append((pos, pos + n))
            else:
                merge(found, candidates(data, pos))
            if advance is not None:
                advance(n)
    return found, unreadable


async def _drive(
    plan: Generator[Request, bytes, _T], aread: Callable[[int, int], Awaitable[bytes]]
) -> _T:
    """Like :func:`nbdtui.disk.partitions.run_plan_async`, but a read the server fails
    is thrown into the plan (where the scan skips that candidate) instead of ending it."""
    try:
        request = next(plan)
        while True:
            try:
                data = await aread(*request)
            except RequestError as exc:
                request = plan.throw(exc)
            else:
                request = plan.send(data)
    except StopIteration as stop:
        result: _T = stop.value
        return result


async def scan(
    export: Scannable,
    ranges: list[tuple[int, int]] | None = None,
    advance: Callable[[int], None] | None = None,
) -> ScanResult:
    """Every filesystem and volume found on the export (in ``ranges``, default: all
    that holds data), in order of offset; ``advance(n)`` is told of the bytes read."""
    found, unreadable = await find_candidates(export, ranges, advance)
    structures = await _drive(verify_plan(found, export.size), export.read)
    return ScanResult(structures, unreadable)
