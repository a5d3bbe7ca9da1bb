"""`nbdtui diff A B`: every run of bytes where two exports or images differ.

A and B are NBD endpoints or local files, in any mix. Output, one run a line:
``0xOFFSET LENGTH`` (or ``--json``), then a line saying so when the sizes differ. Exit
status as cmp's: 0 identical, 1 different, 2 trouble (a one-line ``nbdtui:`` error).

Ranges that both sides report as reading zeros (block status, file holes) are not
read; where one side does, only the other is read and compared with zeros. Both sides
are read at once, several pieces ahead, each export with its bulk engine (all its
connections); see :mod:`nbdtui.editor.compare`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from nbdtui.cli.parser import (
    _positive_int,
    _size,
    connect_timeout_option,
    connections_option,
    json_option,
)
from nbdtui.editor.compare import PIECE, Piece, Run, differences, plan, zero_ranges

if TYPE_CHECKING:
    from nbdtui.client.bulk import BulkEngine
    from nbdtui.client.export import Export
    from nbdtui.editor.local_image import LocalImage

EXIT_SAME, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``diff`` subcommand's arguments (called by :func:`nbdtui.cli.build_parser`)."""
    p.epilog = (
        "One line per run of differing bytes: 0xOFFSET LENGTH. Exit status 0 when "
        "identical, 1 when different (sizes included), 2 on trouble."
    )
    for name in ("a", "b"):
        p.add_argument(
            name, metavar=name.upper(), help="NBD endpoint (see 'nbdtui --help') or local file"
        )
    p.add_argument("--offset", type=_size, default=0, metavar="N", help="start (default 0)")
    p.add_argument(
        "--length",
        type=_size,
        default=None,
        metavar="N",
        help="bytes to compare (default: to the end of the shorter side)",
    )
    p.add_argument("--max", type=_positive_int, default=None, metavar="N", help="stop after N runs")
    json_option(
        p, help='print {"size_a", "size_b", "differences": [{"offset", "length"}], "bytes_differ"}'
    )
    connect_timeout_option(p)
    connections_option(p)


def run(args: argparse.Namespace) -> int:
    """Compare; errors of any kind are exit status 2 here (1 means "different")."""
    import asyncio

    from nbdtui.errors import NbdError

    try:
        return asyncio.run(_diff(args))
    except (NbdError, ValueError) as exc:
        print(f"nbdtui: {exc}", file=sys.stderr)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): nbdtui.cli.main says nothing
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nbdtui: {where}{exc.strerror or exc}", file=sys.stderr)
    return EXIT_TROUBLE


class _Side:
    """One side of the comparison: an export (read with its bulk engine once started)
    or a local image."""

    def __init__(self, label: str, export: Export | None, image: LocalImage | None) -> None:
        self.label = label
        self.export = export
        self.image = image
        self.engine: BulkEngine | None = None

    @property
    def size(self) -> int:
        if self.export is not None:
            return self.export.size
        assert self.image is not None
        return self.image.size

    @property
    def mapped(self) -> Export | LocalImage:
        source = self.export or self.image
        assert source is not None
        return source

    async def read_into(self, offset: int, view: memoryview) -> None:
        if self.image is not None:
            await self.image.read_into(offset, view)
            return
        assert self.export is not None
        if self.engine is None:
            await self.export.read_into(offset, view)
            return
        mb = self.export.block_minimum
        if offset % mb == 0 and len(view) % mb == 0:
            await self.engine.read_into(offset, view)
            return
        # The bulk engine takes whole blocks only: read the blocks around the range.
        lo = offset - offset % mb
        hi = min(-(-(offset + len(view)) // mb) * mb, self.size)
        tmp = bytearray(hi - lo)
        await self.engine.read_into(lo, memoryview(tmp))
        view[:] = memoryview(tmp)[offset - lo : offset - lo + len(view)]


@contextlib.asynccontextmanager
async def _open_side(label: str, text: str, args: argparse.Namespace) -> AsyncIterator[_Side]:
    from nbdtui.cli.copy_sides import is_endpoint  # the same rule as `nbdtui copy`

    if not is_endpoint(text):
        from nbdtui.editor.local_image import LocalImage

        with LocalImage(text) as image:
            yield _Side(label, None, image)
        return
    from nbdtui.cli.open_export import open_export
    from nbdtui.client.options import ExportOptions
    from nbdtui.client.pool import Pool
    from nbdtui.uri import parse

    options = ExportOptions(connect_timeout=args.connect_timeout, connections=args.connections)
    # A pool of each side's own: A and B may name the same export, and each side's
    # bulk engine borrows every connection of its export.
    pool = Pool()
    try:
        async with open_export(parse(text), options, pool=pool) as export:
            side = _Side(label, export, None)
            try:
                yield side
            finally:
                if side.engine is not None:
                    await side.engine.close()
    finally:
        await pool.close()


def _range(args: argparse.Namespace, size_a: int, size_b: int) -> tuple[int, int]:
    from nbdtui.errors import UsageError

    common = min(size_a, size_b)
    offset = args.offset
    if offset > common:
        raise UsageError(f"--offset {offset} is past the end of the shorter side ({common} bytes)")
    length = common - offset if args.length is None else args.length
    if length > common - offset:
        raise UsageError(
            f"range {offset}+{length} is past the end of the shorter side ({common} bytes)"
        )
    return offset, length


async def _diff(args: argparse.Namespace) -> int:
    import asyncio

    from nbdtui.cli.progress import progress

    async with (
        _open_side("A", args.a, args) as a,
        _open_side("B", args.b, args) as b,
    ):
        offset, length = _range(args, a.size, b.size)
        end = offset + length
        # Block status first: the bulk engines borrow the connections it would use.
        zeros_a, zeros_b = await asyncio.gather(
            zero_ranges(a.mapped, offset, end), zero_ranges(b.mapped, offset, end)
        )
        to_read = sum(p.length for p in plan(zeros_a, zeros_b, offset, end))
        for side in (a, b):
            if side.export is not None and to_read > PIECE:
                side.engine = await side.export.bulk()
        # The sizes differ where the comparison reaches the end of the shorter side.
        sizes_differ = a.size != b.size and end == min(a.size, b.size)
        runs: list[Run] = []  # kept for --json only (text goes out as found)
        count = bytes_differ = 0
        max_reached = False
        out = sys.stdout
        with progress("diff", to_read) as bar:

            def advance(piece: Piece) -> None:
                bar.advance(piece.length)

            found = differences(
                plan(zeros_a, zeros_b, offset, end), a.read_into, b.read_into, on_piece=advance
            )
            async with contextlib.aclosing(found):
                async for item in found:
                    count += 1
                    bytes_differ += item.length
                    if args.json:
                        runs.append(item)
                    else:
                        out.write(f"{item.offset:#x} {item.length}\n")
                    if count == args.max:
                        max_reached = True
                        break
    if args.json:
        doc = {
            "size_a": a.size,
            "size_b": b.size,
            "offset": offset,
            "length": length,
            "differences": [{"offset": r.offset, "length": r.length} for r in runs],
            "bytes_differ": bytes_differ,
            "max_reached": max_reached,
        }
        json.dump(doc, out, indent=2)
        out.write("\n")
    elif sizes_differ:
        out.write(f"sizes differ: A is {a.size} bytes, B is {b.size} bytes\n")
    out.flush()
    return EXIT_DIFFERENT if count or sizes_differ else EXIT_SAME
