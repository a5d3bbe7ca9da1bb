"""A structure's repair (restore from backup, recompute checksums) staged as the editor's
pending edits: they then go through the same review, journal, write and flush as typed
bytes, and are reverted the same way."""

from __future__ import annotations

from nbdtui.disk.partitions import run_plan_async
from nbdtui.disk.structures.model import Structure
from nbdtui.disk.structures.repairs import repair_plan
from nbdtui.editor.device import Readable
from nbdtui.editor.edits import PendingEdits

__all__ = ["stage_repair"]


async def stage_repair(
    structure: Structure, action: str, export: Readable, edits: PendingEdits
) -> tuple[int, int]:
    """Compute ``action``'s patches from the export's bytes and add them to ``edits``
    (one undo step each); returns (ranges, bytes). Raises RepairError (nothing staged)
    when the repair cannot be made."""

    async def read(offset: int, length: int) -> bytes:
        end = min(offset + length, export.size)
        return await export.read(offset, end - offset) if 0 <= offset < end else b""

    patches = await run_plan_async(repair_plan(structure, action), read)
    for patch in patches:
        edits.write(patch.at, patch.new, patch.old)
    return len(patches), sum(len(p.new) for p in patches)
