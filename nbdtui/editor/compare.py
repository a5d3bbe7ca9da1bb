"""Compare two exports (or images): every maximal run of differing bytes, in order.

Used by ``nbdtui diff`` and the editor's compare screen. The work is in three steps:

1. :func:`zero_ranges` asks each side which ranges read as zeros (block status,
   ``base:allocation``; for a local file, its holes). A side that cannot tell is read
   whole: slower, never wrong.
2. :func:`plan` cuts the range into :class:`Piece` s of at most ``piece`` bytes and
   says which side each must be read from: neither where both read as zeros (nothing
   to compare), one where the other reads as zeros (compared with zeros), else both.
3. :func:`differences` reads the pieces, both sides at once and ``in_flight`` pieces
   ahead, into buffers allocated once, and compares each as it comes, in order, with
   :mod:`nbdtui.editor.byte_runs`; runs that cross pieces are joined.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from nbdtui.editor.byte_runs import RunJoiner, differing_runs
from nbdtui.editor.device import Mapped
from nbdtui.editor.extents import QUERY, spans

PIECE = 4 * 1024 * 1024  # bytes compared at once (and read from each side per request)
IN_FLIGHT = 8  # pieces being read ahead of the comparison
MAP_PARTS = 8  # block status queries in flight per side

#: Fills a buffer with the bytes of one side at an offset.
ReadInto = Callable[[int, memoryview], Awaitable[None]]


@dataclass(frozen=True)
class Run:
    """A maximal run of differing bytes."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class Piece:
    """A piece of the range to compare and the sides it must be read from (a side not
    read there reads as zeros)."""

    offset: int
    length: int
    read_a: bool
    read_b: bool

    @property
    def end(self) -> int:
        return self.offset + self.length


async def zero_ranges(
    side: Mapped, start: int, end: int, *, parts: int = MAP_PARTS
) -> list[tuple[int, int]]:
    """The ranges ``(lo, hi)`` of ``[start, end)`` that ``side`` says read as zeros,
    merged, in order. A large range is asked in up to ``parts`` parts at once (a
    server answers a part while it works out the next: 1 TiB of nbdkit sparse-random
    took 1.5 s one query after the other)."""
    step = max(-(-(end - start) // parts), QUERY)
    step = -(-step // QUERY) * QUERY
    cuts = list(range(start, end, step))
    found = await asyncio.gather(*(_zeros(side, lo, min(lo + step, end)) for lo in cuts))
    out: list[tuple[int, int]] = []
    for part in found:
        for lo, hi in part:
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
    return out


async def _zeros(side: Mapped, start: int, end: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    async for span in spans(side, start, end):
        if not span.zero:
            continue
        if out and out[-1][1] == span.offset:
            out[-1] = (out[-1][0], span.end)
        else:
            out.append((span.offset, span.end))
    return out


def _boundaries(
    zeros: list[tuple[int, int]], start: int, end: int
) -> Iterator[tuple[int, int, bool]]:
    """``[start, end)`` as consecutive ``(lo, hi, is_zero)``."""
    pos = start
    for lo, hi in zeros:
        lo, hi = max(lo, start), min(hi, end)
        if hi <= lo:
            continue
        if pos < lo:
            yield pos, lo, False
        yield lo, hi, True
        pos = hi
    if pos < end:
        yield pos, end, False


def plan(
    zeros_a: list[tuple[int, int]],
    zeros_b: list[tuple[int, int]],
    start: int,
    end: int,
    piece: int = PIECE,
) -> Iterator[Piece]:
    """The pieces to read and compare, in order: ranges where both sides read as zeros
    are left out, the others cut at multiples of ``piece`` (so that reads stay aligned
    to the servers' block sizes where the range is)."""
    a_iter = _boundaries(zeros_a, start, end)
    b_iter = _boundaries(zeros_b, start, end)
    a = next(a_iter, None)
    b = next(b_iter, None)
    while a is not None and b is not None:
        lo = max(a[0], b[0])
        hi = min(a[1], b[1])
        if not (a[2] and b[2]):
            pos = lo
            while pos < hi:
                stop = min(hi, (pos // piece + 1) * piece)
                yield Piece(pos, stop - pos, not a[2], not b[2])
                pos = stop
        if a[1] == hi:
            a = next(a_iter, None)
        if b[1] == hi:
            b = next(b_iter, None)


class _Slot:
    """A pair of buffers a piece is read into."""

    def __init__(self, size: int) -> None:
        self.a = bytearray(size)
        self.b = bytearray(size)


async def differences(
    pieces: Iterator[Piece],
    read_a: ReadInto,
    read_b: ReadInto,
    *,
    piece: int = PIECE,
    in_flight: int = IN_FLIGHT,
    on_piece: Callable[[Piece], None] | None = None,
) -> AsyncGenerator[Run, None]:
    """Read and compare ``pieces`` (from :func:`plan`, each at most ``piece`` bytes),
    yielding every maximal run of differing bytes in order. Both sides of a piece are
    read at once, and up to ``in_flight`` pieces ahead of the one being compared. The
    first read that fails ends the comparison with its error. ``on_piece`` is told of
    each piece once compared (a progress bar)."""
    zeros = bytes(piece)
    zero_view = memoryview(zeros)
    idle: list[_Slot] = []
    # Each piece being read: its reads (one task per side), its buffers, itself.
    pending: list[tuple[list[asyncio.Task[None]], _Slot, Piece]] = []
    current: list[asyncio.Task[None]] = []
    joiner = RunJoiner()

    def start_next() -> bool:
        item = next(pieces, None)
        if item is None:
            return False
        slot = idle.pop() if idle else _Slot(piece)
        tasks = []
        if item.read_a:
            tasks.append(_task(read_a(item.offset, memoryview(slot.a)[: item.length])))
        if item.read_b:
            tasks.append(_task(read_b(item.offset, memoryview(slot.b)[: item.length])))
        pending.append((tasks, slot, item))
        return True

    try:
        more = True
        while True:
            while more and len(pending) < in_flight:
                more = start_next()
            if not pending:
                break
            current, slot, item = pending.pop(0)
            await asyncio.gather(*current)
            left: bytes | bytearray = slot.a if item.read_a else zeros
            right = memoryview(slot.b) if item.read_b else zero_view
            found = differing_runs(left, right, 0, item.length)
            base = item.offset
            runs = [(base + s, base + e) for s, e in found]
            for start, end in joiner.add(item.offset, item.end, runs):
                yield Run(start, end - start)
            idle.append(slot)
            if on_piece is not None:
                on_piece(item)
        for start, end in joiner.finish():
            yield Run(start, end - start)
    finally:
        # No read may go on into a buffer once this ends, failed or cancelled.
        left_over = current + [t for tasks, _, _ in pending for t in tasks]
        for task in left_over:
            task.cancel()
        await asyncio.gather(*left_over, return_exceptions=True)


def _task(read: Awaitable[None]) -> asyncio.Task[None]:
    async def run() -> None:
        await read

    return asyncio.ensure_future(run())
