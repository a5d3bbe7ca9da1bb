"""`map`, `dump`, `read`, `write`, `flush`, `trim`, `zero`: data in and out of an export.

Transfers stream in fixed pieces with a bounded number in flight, so memory stays
bounded whatever the export's size. A write is reported done only when the server
has acknowledged every byte.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import functools
import os
import stat
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from nbdtui.cli.engine_calls import Calls
from nbdtui.cli.parser import target_endpoint
from nbdtui.cli.progress import ProgressBar, progress
from nbdtui.client.bulk import BulkEngine
from nbdtui.client.files import pwrite_all
from nbdtui.client.options import ExportOptions
from nbdtui.client.request import FileRange
from nbdtui.errors import NotSupportedError, UsageError

if TYPE_CHECKING:
    from nbdtui.client.export import Export

# One piece of a streamed transfer, and how many pieces may be in flight at once
# (the export splits each piece further into requests over its connections).
PIECE = 8 * 1024 * 1024
PIECES_IN_FLIGHT = 6
# Reads (on threads, see nbdtui.client.bulk): 4 MiB x 8 was as fast as
# 8 MiB x 7 (bench/bench_transfer.py) with half the memory; the buffers alone, fresh
# pages the kernel zeroes, cost about 0.6 ms per MiB here.
READ_PIECE = 4 * 1024 * 1024
READ_PIECES_IN_FLIGHT = 8
FILE_PIECES_IN_FLIGHT = 16  # into a file on threads: spliced, no buffer per piece
# `read` into a file on threads: each call to the engine covers up to 64 MiB, as much as
# the transfer moves in 1/16 s (nbdtui.cli.engine_calls), and at most 256 MiB are asked
# at once (no memory: the bytes go straight to the file).
FILE_CALL_MOST = 64 * 1024 * 1024
FILE_BYTES_IN_FLIGHT = 256 * 1024 * 1024
READ_AHEAD = 2  # pieces of the input of `nbdtui write` read ahead of the writes
DUMP_DEFAULT_LENGTH = 512


def check_range(offset: int, length: int, size: int) -> None:
    if offset > size:
        raise UsageError(f"offset {offset} is past the end of the export (size {size})")
    if length > size - offset:
        raise UsageError(f"range {offset}+{length} is past the end of the export (size {size})")


def _resolve_length(args: argparse.Namespace, size: int, default: int | None = None) -> int:
    length: int
    if args.length is not None:
        length = args.length
    elif default is not None:
        length = min(default, max(size - args.offset, 0))
    else:
        length = size - args.offset
    check_range(args.offset, length, size)
    return length


async def stream_read(export: Export, offset: int, length: int) -> AsyncGenerator[memoryview, None]:
    """Yield the range in order, keeping up to READ_PIECES_IN_FLIGHT pieces in flight.
    A yielded piece is valid until the next one is asked for (see :func:`read_pieces`)."""
    async with contextlib.aclosing(read_pieces(export, offset, length)) as pieces:
        async for _, piece in pieces:
            yield piece


async def read_pieces(
    export: Export,
    offset: int,
    length: int,
    *,
    ordered: bool = True,
    zero_ranges: list[tuple[int, int]] | None = None,
    engine: BulkEngine | None = None,
) -> AsyncGenerator[tuple[int, memoryview], None]:
    """Yield ``(position, piece)`` for the whole range, keeping up to
    READ_PIECES_IN_FLIGHT pieces in flight: in order, or (``ordered=False``) each as
    soon as it is in, which keeps every connection busy (in order, a piece that comes
    late holds up every later one; measured: about 9% of the throughput).

    A yielded piece is valid until the next one is asked for: the pieces are received
    into READ_PIECES_IN_FLIGHT + 1 buffers allocated once (a fresh buffer per piece
    costs a page fault per 4 KiB and halved the throughput). Holes and zero extents are
    produced locally instead of being read. Large ranges are read with the export's bulk
    engine (on threads when the export's streams allow it; see nbdtui.client.bulk), or
    ``engine``, one already started (closed here).
    """
    if zero_ranges is None:  # (asked before the connections are lent)
        zero_ranges = await _zero_ranges(export, offset, length)
    reader = engine
    if reader is None and length > READ_PIECE:
        reader = await export.bulk()
    reads = reader or export
    ring: list[memoryview] = []  # the buffers
    idle: list[int] = []  # indexes in ring of the free ones
    pending: dict[asyncio.Task[memoryview], tuple[int, int]] = {}  # piece -> (its buffer, position)
    held: int | None = None  # the buffer of the piece yielded last
    zeroes: memoryview | None = None

    async def fetch(buf: memoryview, start: int) -> memoryview:
        nonlocal zeroes
        if _all_zero(zero_ranges, start, len(buf)):
            if zeroes is None:
                zeroes = memoryview(bytes(READ_PIECE))
            return zeroes[: len(buf)]
        await reads.read_into(start, buf)
        return buf

    pos, end = offset, offset + length
    try:
        while pos < end or pending:
            if held is not None:  # the consumer is done with that piece
                idle.append(held)
                held = None
            while pos < end and len(pending) < READ_PIECES_IN_FLIGHT:
                if not idle:
                    idle.append(len(ring))
                    ring.append(memoryview(bytearray(READ_PIECE)))
                slot, n = idle.pop(), min(READ_PIECE, end - pos)
                pending[asyncio.ensure_future(fetch(ring[slot][:n], pos))] = (slot, pos)
                pos += n
            if ordered:
                task = next(iter(pending))  # the oldest
                await asyncio.wait([task])
            else:
                finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                task = min(finished, key=lambda t: pending[t][1])
            held, start = pending.pop(task)
            yield start, task.result()  # the first failure ends the transfer
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if reader is not None:
            await reader.close()


async def _zero_ranges(export: Export, offset: int, length: int) -> list[tuple[int, int]]:
    """Ranges known to read as zeros (base:allocation ZERO flag), merged and sorted:
    only those that can hold a whole piece of the transfer (so at most one per piece is
    kept, whatever the server reports). Once a piece is known to hold data, block status
    for the rest of it is not asked: a server that reports tiny extents costs one reply
    per piece, not one per handful of bytes."""
    if length == 0 or export.negotiated.context_id("base:allocation") is None:
        return []
    end = offset + length
    ranges: list[tuple[int, int]] = []
    lo = hi = -1  # the zero range being built

    def close() -> None:
        if hi > lo and (hi - lo >= READ_PIECE or hi == end):  # (the last piece is shorter)
            ranges.append((lo, hi))

    pos = read_until = offset  # (the end of the piece of the last data seen)
    try:
        while pos < end:
            for e in await export.allocation(pos, end - pos):
                if e.zero:
                    if e.offset != hi:
                        close()
                        lo = e.offset
                    hi = e.end
                else:
                    last = e.end - 1
                    read_until = min(end, last + READ_PIECE - (last - offset) % READ_PIECE)
                pos = e.end
            pos = max(pos, read_until)  # that piece is read whatever the rest of it is
    except Exception:  # block status is an optimisation: read everything instead
        return []
    close()
    return ranges


def _all_zero(ranges: list[tuple[int, int]], start: int, n: int) -> bool:
    """Whether ``start+n`` lies inside one of ``ranges`` (sorted, disjoint)."""
    i = bisect.bisect_right(ranges, (start, _NO_END)) - 1
    return i >= 0 and ranges[i][0] <= start and start + n <= ranges[i][1]


_NO_END = 1 << 64


async def _map(export: Export, args: argparse.Namespace) -> int:
    """The extents as they come (a fragmented export has many: none is kept)."""
    length = _resolve_length(args, export.size)
    if args.context:
        from nbdtui.cli.context_map import print_map

        return await print_map(export, args.context, args.offset, length, args.json)
    out = sys.stdout
    if args.json:
        import json  # only for --json: not at start-up

        first = True
        async for e in export.iter_extents(args.offset, length):
            item = {
                "offset": e.offset,
                "length": e.length,
                "type": e.flags,
                "description": e.description,
            }
            text = json.dumps(item, indent=2).replace("\n", "\n  ")
            out.write(("[\n  " if first else ",\n  ") + text)
            first = False
        out.write("[]\n" if first else "\n]\n")
    else:
        async for e in export.iter_extents(args.offset, length):
            out.write(f"{e.offset:10d}  {e.length:10d}  {e.flags:3d}  {e.description}\n")
    out.flush()
    return 0


async def _dump(export: Export, args: argparse.Namespace) -> int:
    from nbdtui.present.hexdump import HexDumper

    length = _resolve_length(args, export.size, default=DUMP_DEFAULT_LENGTH)
    dumper = HexDumper(args.offset)
    out = sys.stdout
    async for piece in stream_read(export, args.offset, length):
        # HexDumper keeps its squeeze state across pieces: memory stays bounded.
        for line in dumper.feed(bytes(piece)):
            out.write(line + "\n")
    for line in dumper.finish():
        out.write(line + "\n")
    out.flush()
    return 0


async def _read(export: Export, args: argparse.Namespace) -> int:
    length = _resolve_length(args, export.size)
    with contextlib.ExitStack() as stack:
        if args.output == "-":
            if sys.stdout.isatty() and length > 64 * 1024:
                raise UsageError("refusing to write raw bytes to a terminal: use -o FILE")
            fd = sys.stdout.fileno()
        else:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            stack.callback(os.close, fd)
        bar = stack.enter_context(progress("read", length))
        if _is_seekable(fd):  # pieces are written at their place as they come
            # From where the file is (`{ echo header; nbdtui read URI; } > FILE`), and
            # left after the range, as sequential writes would have left it.
            at = os.lseek(fd, 0, os.SEEK_CUR)
            await read_to_file(export, args.offset, length, fd, bar, at=at)
            os.lseek(fd, at + length, os.SEEK_SET)
        else:
            async with contextlib.aclosing(stream_read(export, args.offset, length)) as pieces:
                async for piece in pieces:
                    _write_all(fd, piece)
                    bar.advance(len(piece))
    return 0


def file_read_calls(bar: ProgressBar) -> Calls:
    """The calls of a read from an export into a file on threads (`read`, `copy`): the
    bytes go straight to the file (spliced, or through a buffer of each thread), so a
    call costs no memory and grows with the speed."""
    return Calls(
        bar,
        unit=READ_PIECE,
        most=FILE_CALL_MOST,
        in_flight=FILE_PIECES_IN_FLIGHT,
        bytes_in_flight=FILE_BYTES_IN_FLIGHT,
    )


async def read_to_file(
    export: Export, offset: int, length: int, fd: int, bar: ProgressBar, *, at: int = 0
) -> None:
    """Read the range into ``fd`` (a regular file, a block device or /dev/null; at
    ``at`` for ``offset``), each piece written at its place as soon as it is in. On threads
    (see nbdtui.client.bulk) the bytes go from the socket to the file through a
    pipe (splice), never through a Python buffer: many pieces may then be in flight at
    no cost in memory."""
    # (asked before the connections are lent: it is a request of the usual path)
    zero_ranges = await _zero_ranges(export, offset, length)
    reader = await export.bulk() if length > READ_PIECE else None
    if reader is None or not reader.threaded:
        pieces = read_pieces(
            export, offset, length, ordered=False, zero_ranges=zero_ranges, engine=reader
        )
        async with contextlib.aclosing(pieces):
            async for pos, piece in pieces:
                pwrite_all(fd, piece, at + pos - offset)
                bar.advance(len(piece))
        return
    out = os.fdopen(fd, "wb", buffering=0, closefd=False)  # what a FileRange holds
    zeroes: memoryview | None = None
    calls = file_read_calls(bar)

    def read(pos: int, n: int) -> Callable[[], Awaitable[None]]:
        return lambda: reader.read_into(pos, FileRange(out, at + pos - offset, n))

    end, pos = offset + length, offset
    try:
        while pos < end:
            n = min(READ_PIECE, end - pos)
            if _all_zero(zero_ranges, pos, n):
                if zeroes is None:
                    zeroes = memoryview(bytes(READ_PIECE))
                pwrite_all(fd, zeroes[:n], at + pos - offset)
                bar.advance(n)
                pos += n
                continue
            # The pieces after it that hold data go in the same call, up to its size.
            most = calls.size()
            while n < most and pos + n < end:
                more = min(READ_PIECE, end - pos - n)
                if _all_zero(zero_ranges, pos + n, more):
                    break
                n += more
            await calls.add(n, read(pos, n))
            pos += n
        await calls.finish()
    finally:
        await calls.cancel()
        await reader.close()


def _is_seekable(fd: int) -> bool:
    """A regular file, a block device or the null device (not a pipe, socket or tty),
    not open for appending (where pwrite appends wherever it is told to write)."""
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
        return False
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return True
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat(os.devnull).st_rdev


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


async def _write(export: Export, args: argparse.Namespace) -> int:
    if args.flush and not export.info.can_flush:
        raise NotSupportedError(
            "cannot --flush: the server does not support flush (nothing was written)"
        )
    with contextlib.ExitStack() as stack:
        file: BinaryIO | None = None  # the input when it is a file (not stdin)
        if args.input == "-":
            fd, total = sys.stdin.fileno(), None
        else:
            file = stack.enter_context(open(args.input, "rb", buffering=0))
            fd = file.fileno()
            total = os.fstat(fd).st_size if os.path.isfile(args.input) else None
        if total is not None:
            check_range(args.offset, total, export.size)
        bar = stack.enter_context(progress("write", total))
        if total is None:  # (a large file's connections are opened by the bulk engine)
            await export.open_connections()
        if file is not None and total is not None:
            await _write_file(export, file, args.offset, total, args.fua, bar)
        else:
            await _write_stream(export, fd, args.offset, args.fua, bar)
    if args.flush:
        await export.flush()
    return 0


async def _write_file(
    export: Export, file: BinaryIO, offset: int, total: int, fua: bool, bar: ProgressBar
) -> None:
    """Write a regular file, PIECES_IN_FLIGHT pieces at a time. Each piece is a
    FileRange: over a plain socket its bytes go from the page cache to the socket
    (sendfile), never read into Python (that read and the copy asyncio makes of what the
    socket does not take at once cost more than the send itself)."""
    writer = await export.bulk() if total > PIECE else None
    writes = writer or export
    calls = Calls(bar, unit=PIECE, most=PIECE, in_flight=PIECES_IN_FLIGHT)

    def write(pos: int, n: int) -> Callable[[], Awaitable[None]]:
        return lambda: writes.write(offset + pos, FileRange(file, pos, n), fua=fua)

    try:
        for pos in range(0, total, PIECE):
            n = min(PIECE, total - pos)
            await calls.add(n, write(pos, n))
        await calls.finish()  # every write acknowledged before we report success
    finally:
        await calls.cancel()
        if writer is not None:
            await writer.close()


async def _write_stream(export: Export, fd: int, offset: int, fua: bool, bar: ProgressBar) -> None:
    """Write what a pipe (or any stream) delivers until its end.

    Pieces are read in a thread, READ_AHEAD of them ahead of the writes (so that reading
    is never what the writes wait for), into a ring of PIECES_IN_FLIGHT + READ_AHEAD
    buffers allocated once; a buffer is read into again only once the server
    acknowledged the write of the piece it held.
    """
    ring = PIECES_IN_FLIGHT + READ_AHEAD
    free: list[memoryview] = []
    reads: collections.deque[tuple[memoryview, concurrent.futures.Future[int]]]
    reads = collections.deque()
    pending: dict[asyncio.Task[None], memoryview] = {}
    reader = ThreadPoolExecutor(1, "nbdtui-write-input")  # one thread: reads in order
    eof = False
    pos = offset

    def reap(done: Iterable[asyncio.Task[None]]) -> None:
        for t in done:
            free.append(pending.pop(t))
            t.result()  # the first failure ends the transfer

    try:
        while True:
            reap([t for t in pending if t.done()])
            while not eof and len(reads) < READ_AHEAD and len(reads) + len(pending) < ring:
                buf = free.pop() if free else memoryview(bytearray(PIECE))
                reads.append((buf, reader.submit(_read_into, fd, buf)))
            if reads:
                buf, reading = reads.popleft()
                n = await asyncio.wrap_future(reading)
                if n < len(buf):
                    eof = True  # the reads queued after this one find nothing
                if not n:
                    free.append(buf)
                    continue
                check_range(pos, n, export.size)
                task = asyncio.ensure_future(export.write(pos, buf[:n], fua=fua))
                task.add_done_callback(functools.partial(_count_written, bar, n))
                pending[task] = buf
                pos += n
            elif pending and not eof:  # every buffer holds a piece being written
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                reap(done)
            else:
                break
        # Every write must be acknowledged before we report success.
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            reap(done)
    finally:
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # A read of a pipe may block for as long as its writer likes: the thread is left
        # behind (it ends with the pipe).
        reader.shutdown(wait=False, cancel_futures=True)


def _count_written(bar: ProgressBar, n: int, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is None:
        bar.advance(n)


def _read_into(fd: int, buf: memoryview) -> int:
    """Fill ``buf`` from ``fd`` (short only at the end of the input); bytes read."""
    got = 0
    while got < len(buf):
        n = os.readv(fd, [buf[got:]])
        if not n:
            break
        got += n
    return got


async def _flush(export: Export, args: argparse.Namespace) -> int:
    await export.flush()
    return 0


async def _trim(export: Export, args: argparse.Namespace) -> int:
    check_range(args.offset, args.length, export.size)
    await export.trim(args.offset, args.length, fua=args.fua)
    return 0


async def _zero(export: Export, args: argparse.Namespace) -> int:
    check_range(args.offset, args.length, export.size)
    await export.zero(args.offset, args.length, fua=args.fua, fast=args.fast, no_hole=args.no_hole)
    return 0


_COMMANDS: dict[str, Callable[..., Awaitable[int]]] = {
    "map": _map,
    "dump": _dump,
    "read": _read,
    "write": _write,
    "flush": _flush,
    "trim": _trim,
    "zero": _zero,
}


async def run(args: argparse.Namespace) -> int:
    from nbdtui.cli.open_export import open_export

    endpoint = target_endpoint(args)  # the URI, tunnelled through --ssh if given
    options = ExportOptions(
        connect_timeout=args.connect_timeout,
        timeout=getattr(args, "timeout", None),  # --timeout, --reconnect-delay
        reconnect_delay=getattr(args, "reconnect_delay", 0.0),
    )
    if getattr(args, "context", None):  # map --context
        options = dataclasses.replace(options, meta_contexts=tuple(args.context))
    if hasattr(args, "window"):
        options = dataclasses.replace(options, window=args.window, connections=args.connections)
    async with open_export(endpoint, options) as export:
        return await _COMMANDS[args.command](export, args)
