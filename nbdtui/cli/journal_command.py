"""`nbdtui journal list | show ID | revert ID [--force]`: the hex editor's undo journal.

Every write of the hex editor goes through the journal (:mod:`nbdtui.editor.commit`):
the old and new bytes of each range are on disk before anything is written, so a write
interrupted at any point (a crash, a kill, a lost connection) can be taken back with
``nbdtui journal revert ID``. ``revert`` refuses when the export no longer holds the
bytes the entry wrote (someone changed them since) unless ``--force``; a range that
already holds its old bytes is left alone. The revert is itself a journal entry.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nbdtui.cli.parser import connect_timeout_option, json_option
from nbdtui.present.sizes import format_size
from nbdtui.present.terminal_text import terminal_text

if TYPE_CHECKING:
    from nbdtui.editor.journal import Journal

PREVIEW = 16  # bytes of old/new shown per range by `show`


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``journal`` subcommand's arguments (called by :func:`nbdtui.cli.build_parser`)."""
    journal_help = "the journal file (default: nbdtui's data directory)"
    p.add_argument("--journal", metavar="PATH", default=None, help=journal_help)
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    actions.required = True

    def action(name: str, text: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=text, description=text)
        a.add_argument("--journal", metavar="PATH", default=argparse.SUPPRESS, help=journal_help)
        return a

    a = action("list", "list journal entries, newest first")
    a.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    json_option(a)

    a = action("show", "show one entry: its ranges with old and new bytes")
    a.add_argument("id", type=int, metavar="ID", help="journal entry number")
    a.add_argument(
        "--bytes",
        type=int,
        default=PREVIEW,
        metavar="N",
        help=f"bytes of each range to show (default {PREVIEW}, 0: all)",
    )
    json_option(a, help="print JSON (every byte, as hex)")

    a = action("revert", "write an entry's old bytes back (itself journaled)")
    a.add_argument("id", type=int, metavar="ID", help="journal entry number")
    a.add_argument(
        "--force",
        action="store_true",
        help="write the old bytes even where the export no longer holds the entry's new "
        "bytes, or the entry was already reverted",
    )
    a.add_argument(
        "--uri",
        default=None,
        metavar="URI",
        help="revert on this endpoint instead of the one recorded (with --force if it "
        "is not the same export)",
    )
    connect_timeout_option(a)


def _open_journal(args: argparse.Namespace) -> Journal | None:
    """The journal, or None when there is none: reading one never creates it."""
    from nbdtui.editor.journal import Journal, default_path

    path = getattr(args, "journal", None)
    if not Path(path if path is not None else default_path()).exists():
        return None
    return Journal(path)


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _hex(data: bytes, limit: int) -> str:
    shown = data if limit <= 0 else data[:limit]
    text = shown.hex(" ")
    if len(shown) < len(data):
        text += f" … (+{len(data) - len(shown)} bytes)"
    return text


def _list(journal: Journal, args: argparse.Namespace) -> int:
    entries = journal.entries(limit=args.limit)
    out = sys.stdout
    if args.json:
        doc = [
            {
                "id": e.id,
                "created": e.created,
                "updated": e.updated,
                "endpoint": e.endpoint,
                "export": e.export,
                "state": e.state,
                "ranges": e.range_count,
                "bytes": e.byte_count,
                "note": e.note,
            }
            for e in entries
        ]
        json.dump(doc, out, indent=2)
        out.write("\n")
        return 0
    if not entries:
        print(f"the journal {journal.path} has no entries")
        return 0
    print(f"{'ID':>5}  {'TIME':19}  {'STATE':8}  {'RANGES':>6}  {'BYTES':>9}  ENDPOINT / EXPORT")
    for e in entries:
        note = f"  ({terminal_text(e.note)})" if e.note else ""
        print(
            f"{e.id:>5}  {_when(e.created):19}  {e.state:8}  {e.range_count:>6}  "
            f"{format_size(e.byte_count):>9}  {terminal_text(e.endpoint)} / "
            f"'{terminal_text(e.export)}'{note}"
        )
    return 0


def _show(journal: Journal, args: argparse.Namespace) -> int:
    entry = journal.get(args.id)
    if args.json:
        doc = {
            "id": entry.id,
            "created": entry.created,
            "updated": entry.updated,
            "endpoint": entry.endpoint,
            "export": entry.export,
            "state": entry.state,
            "note": entry.note,
            "ranges": [
                {"offset": r.offset, "length": len(r.old), "old": r.old.hex(), "new": r.new.hex()}
                for r in entry.ranges
            ],
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"journal entry #{entry.id}: {entry.state}")
    print(f"  created   {_when(entry.created)}   last change {_when(entry.updated)}")
    print(f"  endpoint  {terminal_text(entry.endpoint)}")
    print(f"  export    '{terminal_text(entry.export)}'")
    if entry.note:
        print(f"  note      {terminal_text(entry.note)}")
    total = sum(len(r.old) for r in entry.ranges)
    count = len(entry.ranges)
    print(f"  {count} range{'s' if count != 1 else ''}, {total} bytes:")
    for r in entry.ranges:
        print(f"  {r.offset:#012x} ({r.offset})  {len(r.old)} bytes")
        print(f"    old  {_hex(r.old, args.bytes)}")
        print(f"    new  {_hex(r.new, args.bytes)}")
    return 0


async def _revert(journal: Journal, args: argparse.Namespace) -> int:
    from nbdtui.client.api import open as open_export
    from nbdtui.editor.commit import revert
    from nbdtui.errors import ConflictError
    from nbdtui.uri import parse

    entry = await asyncio.to_thread(journal.get, args.id)
    endpoint = parse(args.uri or entry.endpoint)
    if endpoint.transport == "ssh":
        from nbdtui.cli import ssh_prompts

        ssh_prompts.install()
    async with open_export(endpoint, connect_timeout=args.connect_timeout) as export:
        try:
            new_id = await revert(export, journal, args.id, force=args.force)
        except ConflictError as exc:
            if args.force:
                raise
            raise ConflictError(f"{exc}; --force writes the old bytes anyway") from exc
    if new_id is None:
        print(f"journal entry #{args.id}: every range already held its old bytes; marked reverted")
    else:
        print(
            f"reverted journal entry #{args.id} ({entry.byte_count} bytes in "
            f"{entry.range_count} range{'s' if entry.range_count != 1 else ''}) on "
            f"{endpoint.display}; the revert is journal entry #{new_id}"
        )
    return 0


def _missing(args: argparse.Namespace) -> int:
    from nbdtui.editor.journal import default_path
    from nbdtui.errors import JournalError

    path = getattr(args, "journal", None) or default_path()
    if args.action != "list":
        raise JournalError(f"there is no undo journal at {path}, so no entry {args.id}")
    if args.json:
        print("[]")
    else:
        print(f"there is no undo journal at {path}: no entries")
    return 0


async def run(args: argparse.Namespace) -> int:
    journal = _open_journal(args)
    if journal is None:
        return _missing(args)
    try:
        if args.action == "list":
            return _list(journal, args)
        if args.action == "show":
            return _show(journal, args)
        return await _revert(journal, args)
    finally:
        journal.close()
