"""Allocation map of an export for the editor: ``]``/``[`` and hole skipping in search.

``base:allocation`` block status says which parts of an export are holes (``HOLE``) and
which read as zeros (``ZERO``). When the export cannot answer (no block status, or the
server refuses), every byte counts as allocated data: slower, never wrong.

A server may report an export in 1-byte extents: they are taken as they come, and
nothing here keeps more than ``KEEP_SPANS`` spans, so memory stays bounded whatever the
server says (walking such an export only takes longer).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from nbdtui.editor.device import ExtentView, Mapped
from nbdtui.errors import ConnectionLostError, NbdError, ProtocolError

QUERY = 1 << 30  # bytes asked per block-status request
KEEP_SPANS = 4096  # spans a backward walk holds at once


@dataclass(frozen=True)
class Span:
    """A piece of the export, clipped to what was asked for."""

    offset: int
    length: int
    allocated: bool  # not a hole
    zero: bool  # reads as zeros

    @property
    def end(self) -> int:
        return self.offset + self.length


async def spans(export: Mapped, start: int, end: int) -> AsyncGenerator[Span, None]:
    """The allocation of ``[start, end)`` in order, without gaps or overlaps."""
    pos = start
    while pos < end:
        stop = min(end, pos - pos % QUERY + QUERY)
        progressed = False
        try:
            async with aclosing(_extents(export, pos, stop - pos)) as found:
                async for extent in found:
                    lo, hi = max(extent.offset, pos), min(extent.offset + extent.length, stop)
                    if lo != pos or hi <= lo:
                        break  # a gap or nothing new: ask again from pos
                    yield Span(pos, hi - lo, not extent.hole, extent.zero)
                    pos, progressed = hi, True
        except (ConnectionLostError, ProtocolError):
            raise
        except NbdError:
            pass
        if not progressed:
            # No usable answer: call the rest of this query plain data.
            yield Span(pos, stop - pos, True, False)
            pos = stop


async def _extents(export: Mapped, offset: int, length: int) -> AsyncGenerator[ExtentView, None]:
    async for extent in export.iter_extents(offset, length):
        yield extent


async def next_data(export: Mapped, offset: int, size: int) -> int | None:
    """Start of the next allocated run after ``offset`` (``None``: there is none)."""
    in_run = True
    first = True
    async for span in spans(export, offset, size):
        if first:
            in_run, first = span.allocated, False
            continue
        if not span.allocated:
            in_run = False
        elif not in_run:
            return span.offset
    return None


async def spans_before(export: Mapped, lo: int, hi: int) -> tuple[list[Span], int]:
    """The last spans of ``[lo, hi)`` (at most ``KEEP_SPANS`` of them, in order) and
    where they begin: ``lo`` when they are all the spans of the range; else the caller
    walks on backwards from there."""
    found: deque[Span] = deque(maxlen=KEEP_SPANS)
    async for span in spans(export, lo, hi):
        found.append(span)
    start = found[0].offset if found else lo
    return list(found), start


async def previous_data(export: Mapped, offset: int) -> int | None:
    """Start of the allocated run before ``offset``: the start of the run holding the
    cursor when the cursor is inside it, else the run before (``None``: none)."""
    hi, window = offset, 1 << 16
    candidate: int | None = None
    while hi > 0:
        lo = max(0, hi - window)
        found, start = await spans_before(export, lo, hi)
        window = min(window * 2, QUERY) if start == lo else max(hi - start, 1)
        for span in reversed(found):
            if span.allocated:
                candidate = span.offset
            elif candidate is not None:
                return candidate
        hi = start
    return candidate
