"""Bytes between an export and a local file: save a range to a file, load a file into
a range as pending edits (reviewed and written by Ctrl+S like typed bytes).

Saving writes what the editor shows (the export's bytes with the pending edits on top)
to a new file in pieces; loading reads the export's bytes at the range first, because a
pending edit keeps the byte it replaces (for the review and the undo journal).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from nbdtui.editor.device import Readable
from nbdtui.editor.edits import PendingEdits

MAX_LOAD = 64 << 10  # bytes a file may put in pending edits: each is kept with its old
# byte and an undo step, and the review lists them all (a GPT with its entries is 16.5 KiB)
MAX_SAVE = 1 << 30
PIECE = 4 << 20


def _check_range(export: Readable, offset: int, length: int) -> None:
    if offset < 0 or length <= 0 or offset + length > export.size:
        raise ValueError(f"0x{offset:x}+{length} is outside the export (0x0–0x{export.size - 1:x})")


async def save_range(
    export: Readable, edits: PendingEdits, offset: int, length: int, path: Path
) -> None:
    """Write ``length`` bytes from ``offset`` (pending edits applied) to ``path``, a file
    that must not exist yet. On an error the partial file is removed."""
    _check_range(export, offset, length)
    if length > MAX_SAVE:
        raise ValueError(f"save at most {MAX_SAVE >> 20} MiB at a time ({length} bytes asked)")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = await asyncio.to_thread(os.open, path, flags, 0o644)
    except FileExistsError:
        raise FileExistsError(f"{path} exists already: nothing was saved") from None
    try:
        with os.fdopen(fd, "wb") as out:
            pos = offset
            while pos < offset + length:
                n = min(PIECE, offset + length - pos)
                data = edits.overlay(pos, await export.read(pos, n))
                await asyncio.to_thread(out.write, data)
                pos += n
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def load_file(
    export: Readable, edits: PendingEdits, path: Path, offset: int, length: int | None = None
) -> int:
    """Put the bytes of ``path`` at ``offset`` as pending edits (one undo step); with
    ``length``, the file must have exactly that many bytes. Returns the bytes that differ
    from what the export (with earlier pending edits) holds there."""
    data = await asyncio.to_thread(_read_small, path)
    if not data:
        raise ValueError(f"{path} is empty: nothing to load")
    if length is not None and len(data) != length:
        raise ValueError(f"{path} has {len(data)} bytes, the range {length}: nothing loaded")
    _check_range(export, offset, len(data))
    original = await export.read(offset, len(data))
    shown = edits.overlay(offset, original)
    changed = sum(a != b for a, b in zip(shown, data, strict=True))
    edits.write(offset, data, original)
    return changed


def _read_small(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read(MAX_LOAD + 1)
    if len(data) > MAX_LOAD:
        raise ValueError(f"{path} is larger than {MAX_LOAD >> 10} KiB: load a smaller file")
    return data
