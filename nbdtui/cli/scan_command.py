"""`nbdtui scan URI [--json]`: filesystem and volume signatures anywhere on an export.

For a disk whose partition table is gone: the whole export is read in large pieces
over the bulk engine (several requests in flight; ranges that block status reports as
zeros are not read), each piece is searched for the magic numbers of every family at
the place it puts them, and each candidate is then decoded by its family's decoder
(:mod:`nbdtui.editor.signature_scan`, which the editor's scan dialog uses too). One
line a structure: offset (of the filesystem, not of its superblock), type (blkid's
name), size, label, UUID. Ranges the server fails to read (a damaged disk) are read
again in small pieces and the rest skipped, with a warning on stderr: the exit
status is still 0.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from nbdtui.cli.parser import connect_timeout_option, json_option, target_endpoint, uri_argument
from nbdtui.present.sizes import format_size

if TYPE_CHECKING:
    from nbdtui.disk.structures.model import Structure


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``scan`` subcommand's arguments (called by :func:`nbdtui.cli.build_parser`)."""
    uri_argument(p)
    connect_timeout_option(p)
    json_option(p)


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
        "backups": [
            {"offset": b.at, "label": b.label, "matches": b.matches, "sound": b.sound}
            for b in s.backups
        ],
        "problems": list(s.problems),
    }


def unreadable_text(ranges: list[tuple[int, int]]) -> str:
    """One line on the ranges the server could not read."""
    total = sum(hi - lo for lo, hi in ranges)
    where = f"{len(ranges)} ranges, the first" if len(ranges) > 1 else "1 range"
    return (
        f"{format_size(total)} could not be read ({where} at {ranges[0][0]:#x}): "
        "a signature there is not found"
    )


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
    from nbdtui.cli.progress import progress
    from nbdtui.editor.signature_scan import data_ranges, scan

    async with open_export(endpoint, connect_timeout=args.connect_timeout) as export:
        ranges = await data_ranges(export)
        with progress("scan", sum(hi - lo for lo, hi in ranges)) as bar:
            result = await scan(export, ranges, bar.advance)
    found = result.structures
    if result.unreadable:
        print(f"nbdtui: warning: {unreadable_text(result.unreadable)}", file=sys.stderr)
    if args.json:
        import json

        json.dump([_doc(s) for s in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(found)
    return 0
