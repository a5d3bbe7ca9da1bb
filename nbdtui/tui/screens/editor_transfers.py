"""Bytes out of the hex editor and into it: the clipboard (Ctrl+C, ``y``), saving a range
to a local file (Ctrl+E), loading a local file into a range as pending edits (Ctrl+L).
The editor screen binds the keys; the work is here and in ``nbdtui.editor``."""

from __future__ import annotations

from pathlib import Path

from nbdtui.editor.device import Readable
from nbdtui.editor.edits import PendingEdits
from nbdtui.editor.local_files import MAX_LOAD, load_file, save_range
from nbdtui.present.offsets import parse_goto, parse_range
from nbdtui.present.sizes import format_size
from nbdtui.tui.dialogs.file_dialog import FileDialog
from nbdtui.tui.widgets.hexview import HexView

MAX_COPY = 64 * 1024  # the most bytes a copy sends (OSC 52 sends them base64-encoded)


def copied_bytes(view: HexView) -> tuple[int, bytes] | str:
    """The selection (else the byte at the cursor) as ``(offset, bytes)``, pending
    edits applied; or why it cannot be copied."""
    lo, hi = view.selection or (view.cursor, view.cursor)
    length = hi - lo + 1
    if view.size_bytes == 0:
        return "The export is empty: nothing to copy."
    if length > MAX_COPY:
        return f"The selection has {length} bytes: copy at most {format_size(MAX_COPY)}."
    data = view.bytes_at(lo, length)
    ss = view.sector_size
    unreadable = any(
        (block := view.cache.block_at(sector)) is not None and block.bad_at(sector, ss)
        for sector in range(lo - lo % ss, hi + 1, ss)
    )
    if data is None or len(data) < length or unreadable:
        return "Not copied: some of these bytes are not loaded or unreadable."
    return lo, data


def _range_text(view: HexView) -> str:
    """The selection, else the sector at the cursor, as the range field shows it."""
    if view.selection:
        lo, hi = view.selection
        return f"0x{lo:x}..0x{hi:x}"
    ss = view.sector_size
    return f"0x{view.cursor - view.cursor % ss:x}+{ss}"


def save_dialog(export: Readable, edits: PendingEdits, view: HexView) -> FileDialog:
    """Ctrl+E: the selection or any range to a new local file."""

    async def save(path: str, range_text: str) -> str:
        offset, length = parse_range(
            range_text, cursor=view.cursor, size=export.size, sector_size=view.sector_size
        )
        target = Path(path).expanduser()
        await save_range(export, edits, offset, length, target)
        pending = " (pending edits included)" if edits.overlaps(offset, length) else ""
        return f"Saved {length} bytes from 0x{offset:x} to {target}{pending}."

    return FileDialog(
        "Save bytes to a local file",
        save,
        range_text=_range_text(view),
        hint="Range: START..END (END included) or START+LENGTH, e.g. s0+s1, 0x1be+64, "
        "end-s1+s1. The file must not exist yet. What the editor shows is saved: the "
        "export's bytes with the pending edits on top.",
    )


def load_dialog(export: Readable, edits: PendingEdits, view: HexView) -> FileDialog:
    """Ctrl+L: a local file into the export at an offset or over a range, as pending
    edits: nothing is written before Ctrl+S and its review."""

    async def load(path: str, range_text: str) -> str:
        text = range_text.strip()
        kwargs = {"cursor": view.cursor, "size": export.size, "sector_size": view.sector_size}
        length: int | None
        if ".." in text or "+" in text.lstrip("+-")[1:]:
            offset, length = parse_range(text, **kwargs)
        else:
            offset, length = parse_goto(text, **kwargs), None
        target = Path(path).expanduser()
        changed = await load_file(export, edits, target, offset, length)
        view.jump(offset)
        view.refresh()
        return f"Loaded {target} at 0x{offset:x}: {changed} byte(s) pending; Ctrl+S to review."

    return FileDialog(
        "Load a local file as pending edits",
        load,
        range_text=f"0x{view.cursor:x}",
        hint=f"Range: an offset (the file's length) or START..END / START+LENGTH (the file "
        f"must have exactly that many bytes). At most {format_size(MAX_LOAD)}. Nothing is "
        "written before Ctrl+S shows every change.",
    )
