"""`nbdtui inspect URI [--offset OFF] [--json] [--fields]`: every filesystem and volume
structure found, from the partition table down into each partition, with its checks
(stored and computed values) and its backup copies (and whether each matches)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable

from nbdtui.cli.parser import (
    _size,
    connect_timeout_option,
    json_option,
    target_endpoint,
    uri_argument,
)
from nbdtui.editor.device import Readable
from nbdtui.errors import UsageError

__all__ = ["add_arguments", "clamped_reader", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    uri_argument(p)
    p.add_argument(
        "--offset",
        type=_size,
        default=None,
        metavar="OFF",
        help="only the structure that starts here (a partition's start; 0: the table)",
    )
    json_option(p)
    p.add_argument(
        "--fields",
        action="store_true",
        help="list every field with its value (JSON always has them)",
    )
    connect_timeout_option(p)


def clamped_reader(export: Readable) -> Callable[[int, int], Awaitable[bytes]]:
    """``read(offset, length)`` that returns fewer bytes (or none) past the export's end
    instead of failing: the decoders probe near the end of a partition."""

    async def read(offset: int, length: int) -> bytes:
        end = min(offset + length, export.size)
        if offset < 0 or offset >= end:
            return b""
        return await export.read(offset, end - offset)

    return read


async def run(args: argparse.Namespace) -> int:
    from nbdtui.client.api import open as open_export
    from nbdtui.disk.partitions import run_plan_async
    from nbdtui.disk.structures.survey import block_reader, survey_plan
    from nbdtui.present.structure_report import survey_json, survey_lines

    endpoint = target_endpoint(args)
    async with open_export(endpoint, connect_timeout=args.connect_timeout) as export:
        if args.offset is not None and args.offset >= export.size:
            raise UsageError(
                f"offset {args.offset} is past the end of the export ({export.size} bytes)"
            )
        read = block_reader(export.read, export.size)
        survey = await run_plan_async(survey_plan(export.size, args.offset), read)
    if (
        args.offset is not None
        and survey.table is None
        and all(f.structure is None for f in survey.found)
    ):
        raise UsageError(f"no filesystem, volume or partition table starts at offset {args.offset}")
    if args.json:
        json.dump(survey_json(survey), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for line in survey_lines(survey, with_fields=args.fields):
            print(line)
    return 0
