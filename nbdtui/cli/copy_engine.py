"""The plain copy of `nbdtui copy`: zero ranges first, then the data, over the bulk
engines of the exports involved.

What the source reports as zeroes (block status; a file's holes) is never read: it
becomes zero requests on an export (NBD_CMD_WRITE_ZEROES) or punched holes in a file,
and nothing at all where the destination already reads as zeroes there. The data goes
in pieces, many in flight: from an export into a file it is spliced from the socket
into the file, from a file to an export sent with sendfile (``FileRange``, see
nbdtui.client.bulk), from an export to an export spliced from socket to socket
(nbdtui.client.splice_copy; over TLS or SSH, through buffers), and otherwise through a
ring of buffers allocated once. Each piece
counts as copied only once its write was acknowledged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from nbdtui.cli.copy_sides import ExportSide, FileSide, Ranges, subtract
from nbdtui.cli.engine_calls import Calls
from nbdtui.cli.progress import ProgressBar
from nbdtui.cli.transfer import PIECE, PIECES_IN_FLIGHT, READ_PIECE, file_read_calls
from nbdtui.client.request import FileRange

Side = ExportSide | FileSide

# Pieces through buffers (export to export): a piece is read, then written, so twice
# as many in flight as a read alone keeps both sides busy (bench/bench_copy.py: 16 x 4
# MiB was 0.89-0.92x nbdcopy in process where 8 x 4 MiB was 0.61-0.99x, on a loaded
# machine); 64 MiB of buffers.
BUFFERED_IN_FLIGHT = 16


async def copy_ranges(
    src: Side,
    dst: Side,
    data: Ranges,
    zero: Ranges,
    bar: ProgressBar,
) -> None:
    """Zero the ``zero`` ranges of ``dst`` (all of them are to read as zeroes), then
    copy the ``data`` ranges from ``src``. Returns once every write was acknowledged;
    the first failure ends the copy."""
    for start, end in zero:
        await dst.zero(start, end - start)
        bar.advance(end - start)
    if not data:
        return
    if isinstance(src, ExportSide) and isinstance(dst, ExportSide):
        from nbdtui.client.splice_copy import splice_copy

        if await splice_copy(src.export, dst.export, data, bar.advance):
            return
    async with contextlib.AsyncExitStack() as stack:
        for side in (src, dst):
            if isinstance(side, ExportSide):
                side.engine = await side.export.bulk()
                stack.push_async_callback(_close_engine, side)
        mover, calls = _mover(src, dst, bar)
        await _run_pieces(data, calls, mover)


async def _close_engine(side: ExportSide) -> None:
    engine, side.engine = side.engine, None
    if engine is not None:
        await engine.close()


def _mover(
    src: Side, dst: Side, bar: ProgressBar
) -> tuple[Callable[[int, int], Awaitable[None]], Calls]:
    """How one piece goes from ``src`` to ``dst``, and the calls that will carry them:
    how large a piece is and how many may be in flight."""
    if isinstance(src, ExportSide) and isinstance(dst, FileSide) and src.engine is not None:
        engine = src.engine
        if engine.threaded:

            async def spliced(pos: int, n: int) -> None:
                await engine.read_into(pos, FileRange(dst.file, pos, n))

            return spliced, file_read_calls(bar)  # as `nbdtui read` into a file
    if isinstance(src, FileSide) and isinstance(dst, ExportSide):

        async def sent(pos: int, n: int) -> None:
            await dst.write(pos, FileRange(src.file, pos, n))

        return sent, Calls(bar, unit=PIECE, most=PIECE, in_flight=PIECES_IN_FLIGHT)
    free: list[memoryview] = []

    async def buffered(pos: int, n: int) -> None:
        buf = free.pop() if free else memoryview(bytearray(READ_PIECE))
        try:
            await src.read(pos, buf[:n])
            await dst.write(pos, buf[:n])
        finally:
            free.append(buf)

    return buffered, Calls(bar, unit=READ_PIECE, most=READ_PIECE, in_flight=BUFFERED_IN_FLIGHT)


async def _run_pieces(
    ranges: Ranges, calls: Calls, move: Callable[[int, int], Awaitable[None]]
) -> None:
    def call(pos: int, n: int) -> Callable[[], Awaitable[None]]:
        return lambda: move(pos, n)

    try:
        for start, end in ranges:
            pos = start
            while pos < end:
                n = min(calls.size(), end - pos)
                await calls.add(n, call(pos, n))
                pos += n
        await calls.finish()
    finally:
        await calls.cancel()


async def plan(
    src: Side, dst: Side, offset: int, length: int, *, only: Ranges | None = None
) -> tuple[Ranges, Ranges]:
    """``(data, zero)``: the ranges of ``offset+length`` to copy, and those to zero in
    ``dst`` (zeroes in ``src`` that ``dst`` does not already read as zeroes). ``only``
    limits both to those ranges (the dirty extents of an incremental copy)."""
    whole = [(offset, offset + length)] if length else []
    if only is not None:
        whole = [(max(a, offset), min(b, offset + length)) for a, b in only]
        whole = [(a, b) for a, b in whole if a < b]
    src_zero = await src.zero_ranges(offset, length)
    data = subtract(whole, src_zero)
    zero = subtract(whole, data)
    if zero:
        zero = subtract(zero, await dst.zero_ranges(offset, length))
    return data, zero
