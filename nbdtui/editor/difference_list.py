"""The runs of differing bytes found so far between two sides, for the compare screen:
next/previous difference from an offset, whether a byte differs, and copying a run
from the other side as pending edits (reviewed, journaled and written like any edit)."""

from __future__ import annotations

import bisect

from nbdtui.editor.compare import Run
from nbdtui.editor.edits import PendingEdits


class DifferenceList:
    """Runs in offset order, appended as a comparison finds them (``complete`` once
    it has gone through the whole range)."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self._starts: list[int] = []
        self.complete = False
        self.scanned = 0  # offset the comparison has reached

    def __len__(self) -> int:
        return len(self.runs)

    def add(self, run: Run) -> None:
        if self.runs and run.offset < self.runs[-1].end:
            raise ValueError("runs must come in order without overlaps")
        self.runs.append(run)
        self._starts.append(run.offset)
        self.scanned = max(self.scanned, run.end)

    def run_at(self, offset: int) -> Run | None:
        """The run holding byte ``offset``, if any."""
        i = bisect.bisect_right(self._starts, offset) - 1
        if i >= 0 and offset < self.runs[i].end:
            return self.runs[i]
        return None

    def __contains__(self, offset: object) -> bool:
        return isinstance(offset, int) and self.run_at(offset) is not None

    def overlaps(self, offset: int, length: int) -> bool:
        i = bisect.bisect_right(self._starts, offset + length - 1) - 1
        return i >= 0 and self.runs[i].end > offset

    def next_after(self, offset: int) -> Run | None:
        """The first run starting after ``offset``."""
        i = bisect.bisect_right(self._starts, offset)
        return self.runs[i] if i < len(self.runs) else None

    def previous_before(self, offset: int) -> Run | None:
        """The last run starting before ``offset``."""
        i = bisect.bisect_left(self._starts, offset) - 1
        return self.runs[i] if i >= 0 else None

    def index_of(self, run: Run) -> int:
        return bisect.bisect_left(self._starts, run.offset)


def stage_copy(edits: PendingEdits, offset: int, theirs: bytes, ours: bytes) -> None:
    """Stage ``theirs`` (the other side's bytes at ``offset``) over ``ours`` as one
    undoable pending edit; nothing is written until the edits are committed."""
    if len(theirs) != len(ours):
        raise ValueError("both sides of a copied range must have the same length")
    edits.write(offset, theirs, ours)
