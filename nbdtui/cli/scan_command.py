"""`nbdtui scan URI [--json]`: filesystem and volume signatures anywhere on an export.

For a disk whose partition table is gone: the whole export is read in large pieces
over the bulk engine (several requests in flight; ranges that block status reports as
zeros are not read), each piece is searched for the magic numbers of every family at
the place it puts them (:mod:`nbdtui.disk.structures.scan`), and each candidate is
then decoded by its family's decoder. One line a structure: offset (of the
filesystem, not of its superblock), type (blkid's name), size, label, UUID.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from nbdtui.cli.parser import target_endpoint
from nbdtui.errors import NbdError
from nbdtui.present.sizes import format_size

if TYPE_CHECKING:
    from nbdtui.client.export import Export
    from nbdtui.disk.structures.model import Structure


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``scan`` subcommand's arguments (called by :func:`nbdtui.cli.build_parser`)."""
    p.add_argument("uri", metavar="URI", help="NBD endpoint (see 'nbdtui --help')")
    p.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default 10)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


PIECE = 4 * 1024 * 1024  # bytes a read
IN_FLIGHT = 8  # reads at once, over the bulk engine's connections
SECTOR = 512


async def data_ranges(export: Export) -> list[tuple[int, int]]:
    """The ranges (start, end) that block status does not report as zeros, widened to
    whole sectors and merged; the whole export without block status."""
    size = export.size
    try:
        extents = await export.extents()
    except NbdError:  # block status is an optimisation: read everything instead
        return [(0, size)] if size else []
    out: list[tuple[int, int]] = []
    for e in extents:
        if e.zero:
            continue
        lo, hi = e.offset // SECTOR * SECTOR, min(size, -(-e.end // SECTOR) * SECTOR)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _pieces(ranges: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    for lo, hi in ranges:
        for pos in range(lo, hi, PIECE):
            yield pos, min(PIECE, hi - pos)


async def find_candidates(export: Export) -> dict[int, set[str]]:
    """Where a structure may start (offset -> blkid types), from the magic numbers in
    every range of the export that holds data."""
    from nbdtui.disk.structures.scan import candidates, merge

    found: dict[int, set[str]] = {}
    pieces = _pieces(await data_ranges(export))
    pending: dict[asyncio.Future[None], tuple[int, memoryview, int]] = {}
    idle: list[memoryview] = []
    async with export.bulk() as engine:
        try:
            while True:
                while len(pending) < IN_FLIGHT and (piece := next(pieces, None)):
                    pos, n = piece
                    buf = idle.pop() if idle else memoryview(bytearray(PIECE))
                    pending[asyncio.ensure_future(engine.read_into(pos, buf[:n]))] = (pos, buf, n)
                if not pending:
                    return found
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    pos, buf, n = pending.pop(finished)
                    finished.result()  # the first failure ends the scan
                    merge(found, candidates(buf[:n], pos))
                    idle.append(buf)
        finally:
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def scan(export: Export) -> list[Structure]:
    """Every filesystem and volume found on the export, in order of offset."""
    from nbdtui.disk.partitions import run_plan_async
    from nbdtui.disk.structures.scan import verify_plan

    found = await find_candidates(export)
    return await run_plan_async(verify_plan(found, export.size), export.read)


def _doc(s: Structure) -> dict[str, object]:
    return {
        "offset": s.offset,
        "type": s.type,
        "size": s.size,
        "label": s.label,
        "uuid": s.uuid,
        "version": s.version,
        "name": s.name,
        "at": s.at,
        "checks": [{"name": c.name, "ok": c.ok} for c in s.checks],
        "problems": list(s.problems),
    }


def _print(found: list[Structure]) -> None:
    if not found:
        print("no filesystem or volume signature found")
        return
    print(f"{'OFFSET':>14}  {'TYPE':17}  {'SIZE':>10}  {'LABEL':16}  UUID")
    for s in found:
        size = format_size(s.size) if s.size else "?"
        note = "  (damaged: " + "; ".join(s.problems) + ")" if s.problems else ""
        print(f"{s.offset:>14}  {s.type:17}  {size:>10}  {s.label:16}  {s.uuid}{note}")


async def run(args: argparse.Namespace) -> int:
    from nbdtui.client.api import open as open_export

    endpoint = target_endpoint(args)
    async with open_export(endpoint, connect_timeout=args.connect_timeout) as export:
        found = await scan(export)
    if args.json:
        import json

        json.dump([_doc(s) for s in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(found)
    return 0
