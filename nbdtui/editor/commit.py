"""Writing reviewed edits to an export, and taking them back, through the undo journal.

Every write goes the same way, so that nothing written is impossible to undo:

1. read the bytes the export has now and check they are the ones the edits were made
   on (another writer may have changed them since they were fetched);
2. ``Journal.record`` the old and new bytes of every range: durable before any write;
3. write each range, then flush when the export supports it;
4. mark the entry ``written``; on any error (or cancellation) mark it ``failed`` and
   raise :class:`CommitError`, which names the entry.

:func:`revert` writes the old bytes of an entry back, itself through a new journal entry
(so a revert can be reverted), after checking that each range still holds the bytes the
entry wrote. :func:`zero_range` zeroes or trims a range the same way. None of this
imports Textual: the CLI reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from nbdtui.editor.device import Writable
from nbdtui.editor.edits import EditRange, PendingEdits
from nbdtui.editor.journal import Journal, JournalRange
from nbdtui.errors import CommitError, ConflictError, NbdError, NotSupportedError
from nbdtui.uri import without_secrets

MAX_UNDOABLE = 32 << 20  # bytes a zero/trim may cover: their old bytes go to the journal
_PIECE = 4 << 20  # bytes per read or write request


def endpoint_of(export: object) -> str:
    """The endpoint string journal entries are filed under (the export's URI, no secrets)."""
    endpoint = getattr(export, "endpoint", None)
    return without_secrets(str(getattr(endpoint, "uri", endpoint) or ""))


async def _record(
    journal: Journal, export: Writable, ranges: Sequence[JournalRange], note: str
) -> int:
    # SQLite with synchronous=FULL waits for the disk: keep the event loop free meanwhile.
    # A cancel cannot stop the thread: let it finish, then mark its entry failed (nothing
    # was written), so that a cancelled commit leaves no entry pending.
    task = asyncio.ensure_future(
        asyncio.to_thread(journal.record, endpoint_of(export), export.name, ranges, note)
    )
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            entry = await task
            journal.mark(entry, "failed")
        raise


async def _mark(journal: Journal, entry: int, state: str) -> None:
    await asyncio.to_thread(journal.mark, entry, state)


async def _mark_written(journal: Journal, entry: int) -> None:
    """Mark ``entry`` written once the server acknowledged (and flushed) it all. A cancel
    that comes now is too late: the mark finishes and the commit returns normally, so
    that the journal and the caller agree that the bytes were written."""
    task = asyncio.ensure_future(_mark(journal, entry, "written"))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()


async def read_range(export: Writable, offset: int, length: int) -> bytes:
    out = bytearray()
    while len(out) < length:
        n = min(_PIECE, length - len(out))
        out += await export.read(offset + len(out), n)
    return bytes(out)


async def _write_range(export: Writable, offset: int, data: bytes) -> None:
    for pos in range(0, len(data), _PIECE):
        await export.write(offset + pos, data[pos : pos + _PIECE])


def _hexpos(offset: int) -> str:
    return f"{offset} (0x{offset:x})"


def _changed_byte(offset: int, current: bytes, *expected: bytes) -> str:
    """``the byte at offset 18 (0x12) is 0x58, not 0x57``: the first byte of ``current``
    that is none of the ``expected`` bytes at its place (the first that differs from
    the first of them when each byte alone matches one)."""
    for i, byte in enumerate(current):
        if all(byte != e[i] for e in expected):
            break
    else:
        i = next(i for i, byte in enumerate(current) if byte != expected[0][i])
    wanted = " or ".join(dict.fromkeys(f"0x{e[i]:02x}" for e in expected))
    where = f" (in the range at {_hexpos(offset)}, +{i})" if len(current) > 1 else ""
    return f"the byte at offset {_hexpos(offset + i)} is 0x{current[i]:02x}, not {wanted}{where}"


async def _journaled(
    export: Writable,
    journal: Journal,
    ranges: Sequence[JournalRange],
    note: str,
    write: Callable[[], Awaitable[None]],
) -> int:
    """Record the old bytes of ``ranges`` (durably), run ``write``, flush where the export
    can, then mark the entry written; a failure at any step marks it failed."""
    entry = await _record(journal, export, ranges, note)
    try:
        await write()
        if export.info.can_flush:
            await export.flush()
    except BaseException as error:
        await _fail(journal, entry, error)
        raise
    await _mark_written(journal, entry)
    return entry


async def _journaled_write(
    export: Writable, journal: Journal, ranges: Sequence[JournalRange], note: str
) -> int:
    async def write() -> None:
        for r in ranges:
            await _write_range(export, r.offset, r.new)

    return await _journaled(export, journal, ranges, note, write)


async def _fail(journal: Journal, entry: int, error: BaseException) -> None:
    """Mark ``entry`` failed; turn an NBD error into a CommitError naming the entry."""
    with contextlib.suppress(NbdError):
        journal.mark(entry, "failed")  # no thread: this must happen even when cancelled
    if isinstance(error, NbdError):
        raise CommitError(f"{error}; journal entry #{entry} marked failed", entry) from error


def _check_writable(export: Writable) -> None:
    if export.info.read_only:
        raise NotSupportedError(f"export {export.name!r} is read-only: nothing was written")


async def commit(
    export: Writable, edits: PendingEdits | Sequence[EditRange], journal: Journal, note: str = ""
) -> int:
    """Journal, write and flush ``edits``; returns the journal entry id.

    The caller clears the pending edits only after this returns: on error they stay.
    """
    ranges = edits.ranges() if isinstance(edits, PendingEdits) else list(edits)
    if not ranges:
        raise ValueError("there are no pending edits to write")
    _check_writable(export)
    for r in ranges:
        current = await read_range(export, r.offset, r.length)
        # A range already holding the new bytes was written by an earlier, failed commit.
        if current not in (r.old, r.new):
            raise ConflictError(
                f"{_changed_byte(r.offset, current, r.old, r.new)}: it changed on the export "
                "since it was read; reload (r) and edit again; nothing was written"
            )
    return await _journaled_write(
        export, journal, [JournalRange(r.offset, r.old, r.new) for r in ranges], note
    )


async def revert(
    export: Writable, journal: Journal, entry_id: int, *, force: bool = False
) -> int | None:
    """Write back the old bytes of journal entry ``entry_id``; mark it ``reverted``.

    Each range must hold the bytes the entry wrote (or already its old bytes, which are
    left alone) unless ``force``. Returns the id of the journal entry of the revert
    itself, or ``None`` when every range already held its old bytes.
    """
    entry = await asyncio.to_thread(journal.get, entry_id)
    if not force:
        if entry.state == "reverted":
            raise ConflictError(f"journal entry #{entry_id} was already reverted")
        if (entry.endpoint, entry.export) != (endpoint_of(export), export.name):
            raise ConflictError(
                f"journal entry #{entry_id} is for export {entry.export!r} at "
                f"{entry.endpoint}, not {export.name!r} at {endpoint_of(export)}"
            )
    _check_writable(export)
    plan = []
    for r in entry.ranges:
        current = await read_range(export, r.offset, len(r.old))
        if current == r.old:
            continue
        if current != r.new and not force:
            raise ConflictError(
                f"{_changed_byte(r.offset, current, r.new)}: the bytes are no longer the "
                f"ones journal entry #{entry_id} wrote; nothing was reverted (force to override)"
            )
        plan.append(JournalRange(r.offset, current, r.old))
    new_id = None
    if plan:
        new_id = await _journaled_write(export, journal, plan, f"revert of #{entry_id}")
    await _mark(journal, entry_id, "reverted")
    return new_id


def check_undoable(length: int, what: str) -> None:
    """Raise ValueError when a ``what`` (zero, trim) of ``length`` bytes is too large for
    its old bytes to be journaled: the UI asks this before it asks the user."""
    if length > MAX_UNDOABLE:
        raise ValueError(
            f"{what} of {length} bytes refused: only ranges up to {MAX_UNDOABLE >> 20} MiB "
            "can be journaled (and so undone)"
        )


async def zero_range(
    export: Writable, journal: Journal, offset: int, length: int, *, trim: bool = False
) -> int:
    """Zero (write zeroes) or trim ``[offset, offset + length)`` after journaling its
    bytes; returns the journal entry id. After a trim the export may read anything, so
    reverting a trim can need ``force``."""
    what = "trim" if trim else "zero"
    _check_writable(export)
    if not (export.info.can_trim if trim else export.info.can_zero):
        raise NotSupportedError(f"export {export.name!r} does not support {what}")
    if length <= 0 or offset < 0 or offset + length > export.size:
        raise ValueError(f"range {offset}+{length} is not inside the export")
    check_undoable(length, what)
    old = await read_range(export, offset, length)
    ranges = [JournalRange(offset, old, bytes(length))]
    action = export.trim if trim else export.zero
    return await _journaled(export, journal, ranges, what, lambda: action(offset, length))
