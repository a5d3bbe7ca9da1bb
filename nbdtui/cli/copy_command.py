"""`nbdtui copy SRC DST`: copy an export, a local file or a pipe onto another.

SRC and DST are NBD endpoints, local files (or block devices), or ``-`` (stdin,
stdout). Both sizes are checked before anything is written: they must be equal unless
``--length`` says how much to copy (``--offset`` is the start on both sides). A DST file
that does not exist is created with SRC's size. Ranges SRC reports as zeroes are never
read (see :mod:`nbdtui.cli.copy_engine`); ``--rescue`` reads what it can of a failing
SRC and keeps a GNU ddrescue map (:mod:`nbdtui.cli.rescue`). Exit status 0 only when
every write was acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Coroutine
from typing import Any

from nbdtui.cli.parser import (
    _non_negative_int,
    _size,
    connect_timeout_option,
    io_options,
    range_options,
    timeout_options,
)
from nbdtui.errors import NotSupportedError, UsageError

SIDE_HELP = "an NBD endpoint, a local file or block device, or - for std{}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``copy`` subcommand's arguments."""
    p.add_argument("src", metavar="SRC", help=SIDE_HELP.format("in"))
    p.add_argument("dst", metavar="DST", help=SIDE_HELP.format("out") + " (created if missing)")
    range_options(
        p,
        required=False,
        offset_help="start on both sides",
        length_help="bytes to copy (default: all of SRC, whose size must then equal DST's)",
    )
    io_options(p, window="--requests")
    p.add_argument(
        "--flush",
        action="store_true",
        help="flush DST once every write is acknowledged (the data is then persistent)",
    )
    p.add_argument(
        "--context",
        metavar="CTX",
        default=None,
        help="copy only the extents this meta context of SRC marks (qemu:dirty-bitmap:NAME)",
    )
    rescue = p.add_argument_group("rescue (a failing SRC)")
    rescue.add_argument(
        "--rescue",
        action="store_true",
        help="go on after read errors, splitting failed requests down to --block-size; "
        "keep a GNU ddrescue map (--map) so that running again resumes",
    )
    rescue.add_argument("--map", metavar="FILE", default=None, help="the ddrescue mapfile")
    rescue.add_argument(
        "--retries",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="read each bad block again up to N times (default 0)",
    )
    rescue.add_argument(
        "--block-size",
        type=_positive_size,
        default=None,
        metavar="N",
        help="smallest read (default: 512, or the export's minimum block size if larger)",
    )
    connect_timeout_option(p)
    timeout_options(p)


def _positive_size(text: str) -> int:
    value = _size(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def run(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    if args.rescue and args.map is None:
        raise UsageError("--rescue needs --map FILE (where the ddrescue map is kept)")
    if not args.rescue and args.map is not None:
        raise UsageError("--map is for --rescue")
    if args.rescue and args.context is not None:
        raise UsageError("--rescue and --context cannot be used together")
    if args.src == "-" and args.dst == "-":
        raise UsageError("SRC and DST cannot both be -")
    if args.dst == "-" and (args.rescue or args.context is not None):
        raise UsageError("--rescue and --context need DST to be an export, a file or a device")
    from nbdtui.cli.copy_sides import is_endpoint

    if args.rescue and not is_endpoint(args.src):
        raise UsageError("--rescue needs SRC to be an NBD endpoint")
    return _copy(args)


async def _copy(args: argparse.Namespace) -> int:
    from nbdtui.cli.copy_engine import copy_ranges, plan
    from nbdtui.cli.copy_sides import ExportSide, FileSide, is_endpoint, open_file_side
    from nbdtui.cli.open_export import open_export
    from nbdtui.cli.progress import progress
    from nbdtui.client.options import ExportOptions
    from nbdtui.uri import parse

    options = ExportOptions(
        connect_timeout=args.connect_timeout,
        timeout=args.timeout,
        reconnect_delay=args.reconnect_delay,
        window=args.requests,
        connections=args.connections,
    )
    src_uri = parse(args.src) if is_endpoint(args.src) else None
    dst_uri = parse(args.dst) if is_endpoint(args.dst) else None
    if src_uri is not None and src_uri == dst_uri:
        raise UsageError("SRC and DST are the same export")
    if args.context is not None and src_uri is None:
        raise UsageError("--context needs SRC to be an NBD endpoint")
    async with contextlib.AsyncExitStack() as astack:
        stack = astack.enter_context(contextlib.ExitStack())
        src: ExportSide | FileSide
        dst: ExportSide | FileSide
        if src_uri is not None:
            src_options = options
            if args.context is not None:
                src_options = _with_context(options, args.context)
            export = await astack.enter_async_context(open_export(src_uri, src_options))
            src = ExportSide(export, args.src)
        else:
            src = open_file_side(args.src, write=False, stack=stack)
        if dst_uri is not None:
            export = await astack.enter_async_context(open_export(dst_uri, options))
            dst = ExportSide(export, args.dst)
        else:
            dst = open_file_side(args.dst, write=True, stack=stack)
        if isinstance(src, FileSide) and isinstance(dst, FileSide) and src.seekable:
            a, b = os.fstat(src.fd), os.fstat(dst.fd)
            if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
                raise UsageError("SRC and DST are the same file")
        offset, length = _check_sizes(src, dst, args)
        _check_writable(dst, args)
        if args.rescue:
            from nbdtui.cli.rescue import rescue

            assert isinstance(src, ExportSide)
            return await rescue(src, dst, offset, length, args)
        if src.size is None or not dst.seekable:
            return await _copy_stream(src, dst, offset, length, args)
        only = None
        if args.context is not None:  # (DST is not a pipe: see run)
            assert isinstance(src, ExportSide)
            only = await _context_ranges(src, args.context, offset, length)
        data, zero = await plan(src, dst, offset, length, only=only)
        with progress("copy", sum(b - a for a, b in data + zero)) as bar:
            await copy_ranges(src, dst, data, zero, bar)
        await _finish(dst, args)
    return 0


def _check_sizes(src: Any, dst: Any, args: argparse.Namespace) -> tuple[int, int]:
    """``(offset, length)`` of the copy, after every size check: nothing has been
    written yet."""
    from nbdtui.cli.copy_sides import FileSide

    offset = args.offset
    if src.size is None:  # a pipe: as much as it gives
        if args.length is not None or offset:
            raise UsageError("--offset and --length need SRC to be an export or a file")
        return 0, -1
    if args.length is None:
        length = src.size - offset
        if length < 0:
            raise UsageError(f"--offset {offset} is past the end of SRC (size {src.size})")
        if isinstance(dst, FileSide) and (dst.fresh or not dst.seekable):
            if dst.fresh:
                os.ftruncate(dst.fd, src.size)
        elif dst.size != src.size:
            raise UsageError(
                f"SRC and DST differ in size ({src.size} and {dst.size} bytes): "
                "give --length to copy part of SRC"
            )
        return offset, length
    length = args.length
    if offset + length > src.size:
        raise UsageError(f"range {offset}+{length} is past the end of SRC (size {src.size})")
    if isinstance(dst, FileSide) and dst.regular:
        if dst.size is not None and dst.size < offset + length:
            os.ftruncate(dst.fd, offset + length)  # a file grows to take the range
    elif dst.size is not None and offset + length > dst.size:
        raise UsageError(f"range {offset}+{length} is past the end of DST (size {dst.size})")
    return offset, length


def _check_writable(dst: Any, args: argparse.Namespace) -> None:
    from nbdtui.cli.copy_sides import ExportSide

    if isinstance(dst, ExportSide):
        info = dst.export.info
        if info.read_only:
            raise NotSupportedError(f"cannot copy: DST {dst.name} is read-only (nothing written)")
        if args.flush and not info.can_flush:
            raise NotSupportedError(
                "cannot --flush: DST's server does not support flush (nothing written)"
            )


async def _finish(dst: Any, args: argparse.Namespace) -> None:
    from nbdtui.cli.copy_sides import ExportSide

    if not args.flush:
        return
    if isinstance(dst, ExportSide):
        await dst.export.flush()
    else:
        await asyncio.to_thread(dst.sync)


async def _copy_stream(
    src: Any, dst: Any, offset: int, length: int, args: argparse.Namespace
) -> int:
    """SRC a pipe, or DST one: in order, piece after piece."""
    from nbdtui.cli.copy_sides import ExportSide
    from nbdtui.cli.progress import progress
    from nbdtui.cli.transfer import _read_into, _write_all, _write_stream, stream_read

    if src.size is None and isinstance(dst, ExportSide):
        with progress("copy", None) as bar:
            await _write_stream(dst.export, src.fd, 0, False, bar)
    elif isinstance(src, ExportSide):  # into a pipe
        with progress("copy", length) as bar:
            async with contextlib.aclosing(stream_read(src.export, offset, length)) as pieces:
                async for piece in pieces:
                    await asyncio.to_thread(_write_all, dst.fd, piece)
                    bar.advance(len(piece))
    else:  # a file or pipe into a file or pipe
        buf = memoryview(bytearray(1 << 20))
        pos, left = offset, length
        with progress("copy", None if length < 0 else length) as bar:
            while left:
                want = buf if left < 0 else buf[: min(left, len(buf))]
                if src.seekable:
                    os.lseek(src.fd, pos, os.SEEK_SET)
                n = await asyncio.to_thread(_read_into, src.fd, want)
                if not n:
                    break
                if dst.seekable:
                    os.lseek(dst.fd, pos, os.SEEK_SET)
                await asyncio.to_thread(_write_all, dst.fd, want[:n])
                pos, left = pos + n, left - n if left > 0 else left
                bar.advance(n)
    await _finish(dst, args)
    return 0


def _with_context(options: Any, context: str) -> Any:
    """``options`` that also ask the server for ``context``."""
    import dataclasses

    return dataclasses.replace(options, meta_contexts=(context,))


MAX_CONTEXT_RANGES = 1 << 16  # ranges of a context kept at once


async def _context_ranges(src: Any, context: str, offset: int, length: int) -> Any:
    """The extents ``context`` marks (flags not 0: dirty, for a dirty bitmap), taken
    as they come. At most ``MAX_CONTEXT_RANGES`` are kept whatever the server reports:
    past that, ranges closer than a gap (doubling each time) are joined, so a little
    more than what is marked is copied (never less)."""
    from nbdtui.cli.copy_sides import merge

    kept: list[tuple[int, int]] = []
    gap = 0  # ranges this close are joined

    def add(lo: int, hi: int) -> None:
        nonlocal gap, kept
        if kept and lo - kept[-1][1] <= gap:
            kept[-1] = (kept[-1][0], hi)
        else:
            kept.append((lo, hi))
        while len(kept) > MAX_CONTEXT_RANGES:
            gap = max(2 * gap, 4096)
            joined: list[tuple[int, int]] = []
            for a, b in kept:
                if joined and a - joined[-1][1] <= gap:
                    joined[-1] = (joined[-1][0], b)
                else:
                    joined.append((a, b))
            kept = joined

    extents = src.export.iter_context_extents(context, offset, length)
    async with contextlib.aclosing(extents):
        async for e in extents:
            if e.flags:
                add(e.offset, e.end)
    return merge(kept)
