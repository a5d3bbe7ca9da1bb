"""What the bytes at the editor's cursor are: data, zeros or a hole (block status).

:class:`BlockStatus` keeps the ``base:allocation`` answer for the 1 MiB window around
the places the cursor went (a few windows, the latest kept), so that moving the cursor
asks the server again only when it leaves them. A write, zero or trim makes it forget.
"""

from __future__ import annotations

from collections import OrderedDict

from nbdtui.editor.device import Mapped
from nbdtui.editor.extents import Span, spans

WINDOW = 1 << 20
KEEP = 16  # windows remembered


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
        """The span holding ``offset``, or ``None`` when its window is not known yet."""
        found = self._windows.get(offset - offset % WINDOW)
        if found is None:
            return None
        for span in found:
            if span.offset <= offset < span.end:
                return span
        return None

    async def load(self, export: Mapped, offset: int) -> Span | None:
        """Ask the server about the window of ``offset``; the span holding it."""
        start = offset - offset % WINDOW
        end = min(start + WINDOW, self.size)
        if start >= end:
            return None
        found = [span async for span in spans(export, start, end)]
        self._windows[start] = found
        while len(self._windows) > KEEP:
            self._windows.popitem(last=False)
        return self.at(offset)

    def forget(self) -> None:
        self._windows.clear()
