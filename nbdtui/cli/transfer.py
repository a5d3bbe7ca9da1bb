"""`map`, `dump`, `read`, `write`, `flush`, `trim`, `zero`: data in and out of an export.

Transfers stream in fixed pieces with a bounded number in flight, so memory stays
bounded whatever the export's size. A write is reported done only when the server
has acknowledged every byte.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

from nbdtui.cli import UsageError
from nbdtui.cli.progress import progress
from nbdtui.uri import parse

# One piece of a streamed transfer, and how many pieces may be in flight at once
# (the export splits each piece further into requests over its connections).
PIECE = 4 * 1024 * 1024
PIECES_IN_FLIGHT = 8
DUMP_DEFAULT_LENGTH = 512


def check_range(offset: int, length: int, size: int) -> None:
    if offset > size or length > size - offset:
        raise UsageError(f"range {offset}+{length} is past the end of the export (size {size})")


def _resolve_length(args: argparse.Namespace, size: int, default: int | None = None) -> int:
    if args.length is not None:
        length = args.length
    elif default is not None:
        length = min(default, max(size - args.offset, 0))
    else:
        length = size - args.offset
    check_range(args.offset, length, size)
    return length


async def stream_read(export, offset: int, length: int) -> AsyncIterator[memoryview]:
    """Yield the range in order, keeping up to PIECES_IN_FLIGHT pieces in flight.

    Holes and zero extents are produced locally instead of being read.
    """
    zero_ranges = await _zero_ranges(export, offset, length)
    pending: list[asyncio.Task] = []

    async def fetch(start: int, n: int) -> memoryview:
        buf = bytearray(n)
        if not _all_zero(zero_ranges, start, n):
            await export.read_into(start, memoryview(buf))
        return memoryview(buf)

    pos, end = offset, offset + length
    try:
        while pos < end or pending:
            while pos < end and len(pending) < PIECES_IN_FLIGHT:
                n = min(PIECE, end - pos)
                pending.append(asyncio.ensure_future(fetch(pos, n)))
                pos += n
            yield await pending.pop(0)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _zero_ranges(export, offset: int, length: int) -> list[tuple[int, int]]:
    """Ranges known to read as zeros (base:allocation ZERO flag), merged."""
    if length == 0 or export.negotiated.context_id("base:allocation") is None:
        return []
    try:
        extents = await export.extents(offset, length)
    except Exception:  # block status is an optimisation: read everything instead
        return []
    return [(e.offset, e.offset + e.length) for e in extents if e.zero]


def _all_zero(ranges: list[tuple[int, int]], start: int, n: int) -> bool:
    end = start + n
    return any(lo <= start and end <= hi for lo, hi in ranges)


async def _map(export, args: argparse.Namespace) -> int:
    length = _resolve_length(args, export.size)
    extents = await export.extents(args.offset, length)
    if args.json:
        doc = [
            {"offset": e.offset, "length": e.length, "type": e.flags, "description": e.description}
            for e in extents
        ]
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for e in extents:
            print(f"{e.offset:10d}  {e.length:10d}  {e.flags:3d}  {e.description}")
    return 0


async def _dump(export, args: argparse.Namespace) -> int:
    from nbdtui.hexdump import HexDumper

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


async def _read(export, args: argparse.Namespace) -> int:
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
        async for piece in stream_read(export, args.offset, length):
            _write_all(fd, piece)
            bar.advance(len(piece))
    return 0


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


async def _write(export, args: argparse.Namespace) -> int:
    fua = args.fua
    with contextlib.ExitStack() as stack:
        if args.input == "-":
            fd = sys.stdin.fileno()
            total = None
        else:
            fd = os.open(args.input, os.O_RDONLY)
            stack.callback(os.close, fd)
            st = os.fstat(fd)
            total = st.st_size if os.path.isfile(args.input) else None
        if total is not None:
            check_range(args.offset, total, export.size)
        bar = stack.enter_context(progress("write", total))
        pending: set[asyncio.Task] = set()
        pos = args.offset
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.run_in_executor(None, _read_full, fd, PIECE)
                if not data:
                    break
                check_range(pos, len(data), export.size)
                task = asyncio.ensure_future(export.write(pos, data, fua=fua))
                task.add_done_callback(functools.partial(_count_written, bar, len(data)))
                pending.add(task)
                pos += len(data)
                if len(pending) >= PIECES_IN_FLIGHT:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for t in done:
                        t.result()
            # Every write must be acknowledged before we report success.
            for t in asyncio.as_completed(list(pending)):
                await t
            pending.clear()
        finally:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    return 0


def _count_written(bar, n: int, task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is None:
        bar.advance(n)


def _read_full(fd: int, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


async def _flush(export, args: argparse.Namespace) -> int:
    await export.flush()
    return 0


async def _trim(export, args: argparse.Namespace) -> int:
    check_range(args.offset, args.length, export.size)
    await export.trim(args.offset, args.length, fua=args.fua)
    return 0


async def _zero(export, args: argparse.Namespace) -> int:
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
    from nbdtui.client.api import open as open_export

    endpoint = parse(args.uri)
    options = {"connect_timeout": args.connect_timeout}
    if hasattr(args, "window"):
        options["window"] = args.window
        options["connections"] = args.connections
    async with open_export(endpoint, **options) as export:
        return await _COMMANDS[args.command](export, args)
