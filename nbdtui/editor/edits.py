"""Pending edits of the hex editor: overwrites kept in memory until they are committed.

A block device cannot insert or delete, so an edit only ever replaces bytes. Every
edited byte remembers the byte the export had (``original``) so that the review can show
old and new bytes and the journal can record them. A byte edited back to its original
value is no longer a change and leaves the review.

Each call that changes bytes is one undo step (the two hex digits of one typed byte
make one step too); ``undo()`` and ``redo()`` walk the steps
and return the offset they touched so the editor can put the cursor there. A new edit
after an undo drops the redo steps, as in every editor.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class EditRange:
    """A run of consecutive changed bytes: what the export has and what will be written."""

    offset: int
    old: bytes
    new: bytes

    @property
    def length(self) -> int:
        return len(self.new)

    @property
    def end(self) -> int:
        return self.offset + len(self.new)


@dataclass(frozen=True)
class _Change:
    offset: int
    before: int | None  # pending value before the step (None: not edited)
    after: int | None
    original: int


class PendingEdits:
    """Byte overwrites on top of an export, with undo and redo."""

    def __init__(self) -> None:
        self._new: dict[int, int] = {}
        self._old: dict[int, int] = {}
        self._sorted: list[int] | None = []
        self._undo: list[tuple[_Change, ...]] = []
        self._redo: list[tuple[_Change, ...]] = []
        # (offset, undo depth) of the step that set a high nibble, while it is the last
        # step: the low nibble typed next joins it.
        self._high: tuple[int, int] | None = None

    # ---- queries ------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of changed bytes."""
        return len(self._new)

    def __bool__(self) -> bool:
        return bool(self._new)

    def __contains__(self, offset: int) -> bool:
        return offset in self._new

    def value(self, offset: int) -> int | None:
        """The pending byte at ``offset``, or ``None`` when it is not edited."""
        return self._new.get(offset)

    def original(self, offset: int) -> int | None:
        return self._old.get(offset)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _keys(self) -> list[int]:
        if self._sorted is None:
            self._sorted = sorted(self._new)
        return self._sorted

    def offsets_in(self, offset: int, length: int) -> Iterator[int]:
        """Edited offsets in ``[offset, offset + length)``, ascending."""
        keys = self._keys()
        for i in range(bisect.bisect_left(keys, offset), len(keys)):
            if keys[i] >= offset + length:
                break
            yield keys[i]

    def overlaps(self, offset: int, length: int) -> bool:
        return next(self.offsets_in(offset, length), None) is not None

    def overlay(self, offset: int, data: bytes) -> bytes:
        """``data`` (the export's bytes at ``offset``) with the pending edits applied."""
        edited = list(self.offsets_in(offset, len(data)))
        if not edited:
            return data
        out = bytearray(data)
        for pos in edited:
            out[pos - offset] = self._new[pos]
        return bytes(out)

    def ranges(self) -> list[EditRange]:
        """Every change, consecutive bytes merged into one range, in offset order."""
        out: list[EditRange] = []
        start: int | None = None
        prev = -1  # the offset before pos; only read while start is set
        for pos in [*self._keys(), None]:
            if start is not None and (pos is None or pos != prev + 1):
                span = range(start, prev + 1)
                out.append(
                    EditRange(
                        start,
                        bytes(self._old[p] for p in span),
                        bytes(self._new[p] for p in span),
                    )
                )
                start = None
            if pos is not None and start is None:
                start = pos
            if pos is not None:
                prev = pos
        return out

    # ---- changes ------------------------------------------------------------------

    def write(self, offset: int, data: bytes, original: bytes) -> None:
        """Overwrite ``len(data)`` bytes at ``offset`` as one undo step.

        ``original`` holds the export's bytes at the same place (what the view fetched).
        """
        self._high = None
        if len(original) != len(data):
            raise ValueError("data and original bytes differ in length")
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        changes = []
        for i, value in enumerate(data):
            pos = offset + i
            orig = self._old.get(pos, original[i])
            before = self._new.get(pos)
            after = None if value == orig else value
            if before != after:
                changes.append(_Change(pos, before, after, orig))
        if changes:
            self._apply(changes, forward=True)
            self._undo.append(tuple(changes))
            self._redo.clear()

    def set_byte(self, offset: int, value: int, original: int) -> None:
        self.write(offset, bytes([value]), bytes([original]))

    def set_nibble(self, offset: int, high: bool, digit: int, original: int) -> int:
        """Set the high or low hex digit of the byte at ``offset``; returns the new byte.

        A low digit right after the high one of the same byte makes one undo step with it.
        """
        if not 0 <= digit <= 15:
            raise ValueError(f"not a hex digit: {digit}")
        current = self._new.get(offset, self._old.get(offset, original))
        value = (current & 0x0F) | (digit << 4) if high else (current & 0xF0) | digit
        if not high and self._high == (offset, len(self._undo)):
            self._apply(self._undo.pop(), forward=False)  # the high digit's step
        depth = len(self._undo)
        self.set_byte(offset, value, original)
        if high and len(self._undo) > depth:
            self._high = (offset, len(self._undo))
        return value

    def undo(self) -> int | None:
        """Undo the last step; returns its first offset, or ``None`` if there was none."""
        self._high = None
        if not self._undo:
            return None
        step = self._undo.pop()
        self._apply(step, forward=False)
        self._redo.append(step)
        return step[0].offset

    def redo(self) -> int | None:
        self._high = None
        if not self._redo:
            return None
        step = self._redo.pop()
        self._apply(step, forward=True)
        self._undo.append(step)
        return step[0].offset

    def clear(self) -> None:
        """Forget every edit and the undo history (after a commit, or to discard)."""
        self._high = None
        self._new.clear()
        self._old.clear()
        self._sorted = []
        self._undo.clear()
        self._redo.clear()

    def _apply(self, changes: tuple[_Change, ...] | list[_Change], forward: bool) -> None:
        for change in changes if forward else reversed(changes):
            value = change.after if forward else change.before
            if value is None:
                self._new.pop(change.offset, None)
                self._old.pop(change.offset, None)
            else:
                self._new[change.offset] = value
                self._old[change.offset] = change.original
        self._sorted = None
