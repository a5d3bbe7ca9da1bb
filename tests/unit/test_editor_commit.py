"""Commit and revert through the journal (unit tests: in-memory export, real journal).

The same flow against real servers is in ``tests/tui/test_editor_write.py``.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from nbdtui.editor.commit import commit, revert, zero_range
from nbdtui.editor.edits import PendingEdits
from nbdtui.editor.journal import Journal, JournalRange
from nbdtui.errors import CommitError, ConflictError, NotSupportedError
from tests.support.fakes import FakeInfo, MemoryExport


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


def edited(mem: MemoryExport) -> PendingEdits:
    edits = PendingEdits()
    edits.write(16, b"NEW!", mem.get(16, 4))
    edits.set_byte(600, 0xFF, mem.get(600, 1)[0])
    return edits


async def test_commit_journals_old_bytes_then_writes_and_flushes(journal):
    mem = MemoryExport(4096)
    mem.put(0, bytes(range(256)) * 4)
    edits = edited(mem)
    entry_id = await commit(mem, edits, journal, note="test")
    assert mem.get(16, 4) == b"NEW!" and mem.get(600, 1) == b"\xff"
    assert mem.flushes == 1
    entry = journal.get(entry_id)
    assert entry.state == "written" and entry.note == "test"
    assert entry.endpoint == "nbd://fake/mem" and entry.export == "mem"
    assert entry.ranges == (
        JournalRange(16, bytes([16, 17, 18, 19]), b"NEW!"),
        JournalRange(600, bytes([600 % 256]), b"\xff"),
    )


async def test_failed_write_marks_the_entry_failed_and_names_it(journal):
    mem = MemoryExport(4096)
    mem.fail_writes = True
    edits = edited(mem)
    with pytest.raises(CommitError, match=r"EIO.*journal entry #1 marked failed") as info:
        await commit(mem, edits, journal)
    assert info.value.entry_id == 1
    assert journal.get(1).state == "failed"
    assert len(edits) == 5  # the caller keeps the edits
    mem.fail_writes = False
    assert await commit(mem, edits, journal) == 2


async def test_conflict_when_the_export_changed_since_the_edit(journal):
    mem = MemoryExport(4096)
    edits = edited(mem)
    mem.put(17, b"?")  # someone else wrote
    with pytest.raises(ConflictError, match="changed on the export") as info:
        await commit(mem, edits, journal)
    assert str(info.value).startswith("the byte at offset 17 (0x11) is 0x3f, not 0x00 or 0x45")
    assert journal.entries() == []  # nothing recorded, nothing written
    assert mem.get(16, 4) == b"\0?\0\0"


async def test_read_only_export_is_refused_before_anything(journal):
    mem = MemoryExport(4096, info=FakeInfo(read_only=True))
    with pytest.raises(NotSupportedError, match="read-only"):
        await commit(mem, edited(mem), journal)
    assert journal.entries() == []


async def test_revert_writes_the_old_bytes_back_and_is_itself_journaled(journal):
    mem = MemoryExport(4096)
    mem.put(0, b"A" * 1024)
    entry_id = await commit(mem, edited(mem), journal)
    revert_id = await revert(mem, journal, entry_id)
    assert mem.get(0, 1024) == b"A" * 1024
    assert journal.get(entry_id).state == "reverted"
    assert journal.get(revert_id).note == f"revert of #{entry_id}"
    with pytest.raises(ConflictError, match="already reverted"):
        await revert(mem, journal, entry_id)
    # The revert can be reverted: the edit comes back.
    await revert(mem, journal, revert_id)
    assert mem.get(16, 4) == b"NEW!"


async def test_revert_refuses_bytes_changed_since_unless_forced(journal):
    mem = MemoryExport(4096)
    entry_id = await commit(mem, edited(mem), journal)
    mem.put(18, b"X")
    with pytest.raises(ConflictError, match="no longer the ones") as info:
        await revert(mem, journal, entry_id)
    # The exact byte, not the start of its range (16).
    assert str(info.value).startswith(
        "the byte at offset 18 (0x12) is 0x58, not 0x57 (in the range at 16 (0x10), +2): "
    )
    assert mem.get(16, 4) == b"NEX!"
    await revert(mem, journal, entry_id, force=True)
    assert mem.get(16, 4) == bytes(4) and mem.get(600, 1) == b"\0"


async def test_revert_of_a_failed_commit_restores_what_was_written(journal):
    """Half-written entries: ranges still holding their old bytes are left alone."""
    mem = MemoryExport(4096)
    edits = edited(mem)
    calls = 0
    real_write = mem.write

    async def write_once(offset, data, fua=False):
        nonlocal calls
        calls += 1
        if calls > 1:
            raise NotSupportedError("disk full, say")
        await real_write(offset, data)

    mem.write = write_once
    with pytest.raises(CommitError):
        await commit(mem, edits, journal)
    assert mem.get(16, 4) == b"NEW!" and mem.get(600, 1) == b"\0"
    mem.write = real_write
    await revert(mem, journal, 1)
    assert mem.get(0, 4096) == bytes(4096)


async def test_revert_checks_the_export(journal):
    mem = MemoryExport(4096)
    entry_id = await commit(mem, edited(mem), journal)
    other = MemoryExport(4096, name="other")
    with pytest.raises(ConflictError, match="is for export 'mem'"):
        await revert(other, journal, entry_id)


async def test_zero_range_is_journaled_and_capped(journal):
    mem = MemoryExport(1 << 30)
    mem.put(1000, b"data" * 100)
    entry_id = await zero_range(mem, journal, 1000, 400)
    assert mem.get(1000, 400) == bytes(400)
    assert journal.get(entry_id).ranges[0].old == b"data" * 100
    await revert(mem, journal, entry_id)
    assert mem.get(1000, 400) == b"data" * 100
    with pytest.raises(ValueError, match="can be journaled"):
        await zero_range(mem, journal, 0, 64 << 20)
    entry_id = await zero_range(mem, journal, 1000, 4, trim=True)
    assert journal.get(entry_id).note == "trim"


class SlowJournal(Journal):
    """A journal whose record() or mark(…, "written") takes a while (a slow disk)."""

    slow: str = ""

    def record(self, *args, **kwargs):
        if self.slow == "record":
            time.sleep(0.3)
        return super().record(*args, **kwargs)

    def mark(self, entry_id, state):
        if self.slow == state:
            time.sleep(0.3)
        super().mark(entry_id, state)


async def _cancel_soon(coro):
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0.1)
    task.cancel()
    return task


async def test_a_commit_cancelled_while_journaling_leaves_no_pending_entry(tmp_path):
    mem = MemoryExport(4096)
    with SlowJournal(tmp_path / "journal.sqlite3") as journal:
        journal.slow = "record"
        task = await _cancel_soon(commit(mem, edited(mem), journal))
        with pytest.raises(asyncio.CancelledError):
            await task
        (entry,) = journal.entries()
        assert entry.state == "failed"  # recorded by the thread, nothing written
        assert mem.get(16, 4) == bytes(4)


async def test_a_commit_cancelled_once_written_returns_and_says_written(tmp_path):
    mem = MemoryExport(4096)
    with SlowJournal(tmp_path / "journal.sqlite3") as journal:
        journal.slow = "written"
        task = await _cancel_soon(commit(mem, edited(mem), journal))
        entry_id = await task  # too late to cancel: the server acknowledged it all
        assert journal.get(entry_id).state == "written" and mem.get(16, 4) == b"NEW!"
