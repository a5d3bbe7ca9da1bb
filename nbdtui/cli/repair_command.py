"""`nbdtui repair URI --offset OFF (--restore-backup | --fix-checksums) [--dry-run | --yes]`.

Stages the repair of the structure that starts at OFF (a partition's start; 0 for the
partition table or an unpartitioned filesystem), prints each changed range with its old
and new bytes, and with ``--yes`` (or a "y" at the terminal's question) writes them
through the undo journal, exactly as the hex editor's commits: ``nbdtui journal revert
ID`` takes the repair back. Without ``--yes`` and without a terminal it refuses. Nothing
is written when the backup itself fails its checks, nor on a read-only export. A
structure that cannot be seen at OFF (its primary copy gone, an MD 1.0 superblock at its
end) is looked for in its space as ``nbdtui scan`` does.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from nbdtui.cli.inspect_command import clamped_reader
from nbdtui.cli.parser import _size, connect_timeout_option, target_endpoint, uri_argument
from nbdtui.errors import NotSupportedError, UsageError

if TYPE_CHECKING:
    from nbdtui.disk.structures.model import Structure
    from nbdtui.editor.signature_scan import Scannable

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    uri_argument(p)
    p.add_argument(
        "--offset",
        type=_size,
        required=True,
        metavar="OFF",
        help="where the structure starts (a partition's start; 0: the partition table)",
    )
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--restore-backup",
        dest="action",
        action="store_const",
        const="restore-backup",
        help="put the backup copy (superblock, boot sector, GPT, LUKS2 header) over the primary",
    )
    action.add_argument(
        "--fix-checksums",
        dest="action",
        action="store_const",
        const="fix-checksums",
        help="store the computed checksums (ext4, XFS and btrfs superblocks, exFAT boot"
        " region, GPT, LUKS2 headers, MD superblock, LVM2 label)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    mode.add_argument("--yes", "-y", action="store_true", help="write without asking")
    p.add_argument(
        "--journal",
        metavar="PATH",
        default=None,
        help="the undo journal file (default: nbdtui's data directory)",
    )
    connect_timeout_option(p)


async def _from_backup(export: Scannable, offset: int, size: int) -> Structure | None:
    """The structure that starts at ``offset`` but cannot be seen from there: its
    primary copy gone (found from a backup: an XFS secondary superblock, a btrfs mirror,
    a LUKS2 secondary header, an ext backup superblock), or its superblock at its end
    (MD 1.0). Found by scanning its space (``size`` bytes; holes skipped) as ``nbdtui
    scan`` does."""
    from nbdtui.editor.signature_scan import data_ranges, scan

    end = offset + size
    ranges = [(max(lo, offset), min(hi, end)) for lo, hi in await data_ranges(export)]
    ranges = [(lo, hi) for lo, hi in ranges if lo < hi]
    print(f"nothing found at offset {offset} itself: scanning its space for a backup copy")
    found = await scan(export, ranges)
    return next((s for s in found.structures if s.offset == offset), None)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("refusing to write without --yes: there is no terminal to ask on")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


async def run(args: argparse.Namespace) -> int:
    from nbdtui.client.api import open as open_export
    from nbdtui.disk.partitions import run_plan_async
    from nbdtui.disk.structures.repairs import repair_plan
    from nbdtui.disk.structures.survey import survey_plan
    from nbdtui.editor.commit import commit
    from nbdtui.editor.edits import EditRange
    from nbdtui.editor.journal import Journal
    from nbdtui.present.structure_report import patch_lines

    endpoint = target_endpoint(args)
    async with open_export(endpoint, connect_timeout=args.connect_timeout) as export:
        if args.offset >= export.size:
            raise UsageError(
                f"offset {args.offset} is past the end of the export ({export.size} bytes)"
            )
        if export.info.read_only and not args.dry_run:
            raise NotSupportedError(f"export {export.name!r} is read-only: nothing was written")
        read = clamped_reader(export)
        survey = await run_plan_async(survey_plan(export.size, args.offset), read)
        structure = survey.table if args.offset == 0 and survey.table is not None else None
        if structure is None and survey.found:
            structure = survey.found[0].structure
        if structure is None and survey.found:
            place = survey.found[0]
            structure = await _from_backup(export, place.offset, place.size)
        if structure is None:
            raise UsageError(
                f"no filesystem, volume or partition table starts at offset {args.offset}"
            )
        what = f"{structure.name or structure.type} at offset {args.offset}"
        patches = await run_plan_async(repair_plan(structure, args.action), read)
        if not patches:
            print(f"{what}: nothing to change ({args.action})")
            return 0
        total = sum(len(p.new) for p in patches)
        print(f"{args.action} of the {what}: {len(patches)} range(s), {total} bytes")
        for line in patch_lines(patches):
            print(line)
        if args.dry_run:
            print("dry run: nothing was written")
            return 0
        if not args.yes and not _confirm(f"write these {total} bytes to {endpoint.display}?"):
            print("nothing was written")
            return 1
        with Journal(args.journal) as journal:
            edits = [EditRange(p.at, p.old, p.new) for p in patches]
            entry = await commit(export, edits, journal, note=f"repair {args.action}: {what}")
    print(f"written and flushed: journal entry #{entry} (undo: nbdtui journal revert {entry})")
    return 0
