"""What the bytes at the editor's cursor are: data, zeros or a hole (block status).

:class:`BlockStatus` keeps the ``base:allocation`` answer for the 1 MiB window around
the places the cursor went (a few windows, the latest kept), so that moving the cursor
asks the server again only when it leaves them. A write, zero or trim makes it forget.
A window that the server describes in more than ``MAX_SPANS`` pieces (1-byte extents,
say) is kept only in part: ``MAX_SPANS`` spans from the one holding the cursor.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from contextlib import aclosing

from nbdtui.editor.device import Mapped
from nbdtui.editor.extents import Span, spans

WINDOW = 1 << 20
KEEP = 16  # windows remembered
MAX_SPANS = 4096  # spans kept of one window


def describe(span: Span) -> str:
    """One word for a span: ``hole``, ``zero`` (allocated, reads as zeros) or ``data``."""
    if not span.allocated:
        return "hole"
    return "zero" if span.zero else "data"


class BlockStatus:
    """The allocation of the windows the cursor visited."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._windows: OrderedDict[int, list[Span]] = OrderedDict()

    def at(self, offset: int) -> Span | None:
        """The span holding ``offset``, or ``None`` when it is not known yet."""
        found = self._windows.get(offset - offset % WINDOW)
        if not found or not found[0].offset <= offset < found[-1].end:
            return None
        i = bisect.bisect_right(found, offset, key=lambda span: span.offset) - 1
        return found[i] if i >= 0 and offset < found[i].end else None

    async def load(self, export: Mapped, offset: int) -> Span | None:
        """Ask the server about the window of ``offset``; the span holding it."""
        start = offset - offset % WINDOW
        end = min(start + WINDOW, self.size)
        if start >= end:
            return None
        found: list[Span] = []
        async with aclosing(spans(export, start, end)) as pieces:
            async for span in pieces:
                if span.end <= offset and len(found) == MAX_SPANS:
                    found.clear()  # (bounded: keep what comes from the cursor on)
                found.append(span)
                if len(found) == MAX_SPANS and span.end > offset:
                    break
        self._windows[start] = found
        self._windows.move_to_end(start)
        while len(self._windows) > KEEP:
            self._windows.popitem(last=False)
        return self.at(offset)

    def forget(self) -> None:
        self._windows.clear()
