"""The allocation bar: an export's block status (data, zero, hole) scaled to the widget.

The export is cut into ``width × height`` cells laid out row by row; each cell shows
the "strongest" kind of byte in its range: data beats allocated zeros beats holes,
so that a single sector of data is never hidden by the holes around it. Cells not
mapped yet are blank.

The runs are kept to draw the bar again at another size; a server may report 1-byte
extents, so past ``MAX_RUNS`` runs they are folded into ``FINE_CELLS`` cells of the
export (each its strongest kind), which is still finer than any bar on a screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from nbdtui.editor.device import ExtentView

UNMAPPED, HOLE, ZERO, DATA = 0, 1, 2, 3

MAX_RUNS = 1 << 17  # runs kept before they are folded into FINE_CELLS
FINE_CELLS = 1 << 15

KIND_NAMES = {UNMAPPED: "not mapped", HOLE: "hole", ZERO: "zero", DATA: "data"}
KIND_CHARS = {UNMAPPED: " ", HOLE: "·", ZERO: "░", DATA: "█"}
KIND_STYLES = {
    UNMAPPED: Style(color="grey23"),
    HOLE: Style(color="grey46"),
    ZERO: Style(color="dark_orange"),
    DATA: Style(color="green3"),
}


def extent_kind(extent: ExtentView) -> int:
    """The kind of an ``Extent`` of the base:allocation context."""
    if extent.hole:
        return HOLE
    if extent.zero:
        return ZERO
    return DATA


@dataclass(frozen=True)
class Run:
    """``length`` bytes of one kind from ``offset``."""

    offset: int
    length: int
    kind: int


def cell_range(cell: int, cells: int, size: int) -> tuple[int, int]:
    """The byte range ``[start, end)`` cell ``cell`` of ``cells`` stands for: an even
    share of the export, and at least its first byte when there are more cells than
    bytes (so that a tiny export still fills the bar)."""
    start = cell * size // cells
    end = (cell + 1) * size // cells
    return start, min(max(end, start + 1), size)


def classify(runs: Iterable[Run], size: int, cells: int) -> list[int]:
    """The kind of each of ``cells`` cells over an export of ``size`` bytes: the
    strongest kind among the runs overlapping the cell's :func:`cell_range`."""
    out = [UNMAPPED] * cells
    if size <= 0 or cells <= 0:
        return out
    for run in runs:
        start, end = max(run.offset, 0), min(run.offset + run.length, size)
        if end <= start:
            continue
        # first: the first cell starting at or after ``start``, or the one holding it;
        # last: the last cell starting before ``end``.
        first = min(-(-start * cells // size), ((start + 1) * cells - 1) // size)
        last = min((end * cells - 1) // size, cells - 1)
        for cell in range(first, last + 1):
            if out[cell] < run.kind:
                out[cell] = run.kind
    return out


def fold(runs: list[Run], size: int, mapped: int) -> list[Run]:
    """``runs`` as at most ``FINE_CELLS`` runs: one per fine cell of the export (its
    strongest kind), neighbours of one kind joined, none past ``mapped``."""
    out: list[Run] = []
    for cell, kind in enumerate(classify(runs, size, FINE_CELLS)):
        start, end = cell_range(cell, FINE_CELLS, size)
        end = min(end, mapped)
        if kind == UNMAPPED or end <= start:
            continue
        last = out[-1] if out else None
        if last and last.kind == kind and last.offset + last.length == start:
            out[-1] = Run(last.offset, end - last.offset, kind)
        else:
            out.append(Run(start, end - start, kind))
    return out


class AllocationBar(Widget):
    """Draws the runs given to it; the screen owns the keys that move ``cursor``."""

    DEFAULT_CSS = """
    AllocationBar { height: 6; }
    """

    cursor: reactive[int] = reactive(0)

    class Clicked(Message):
        """The user clicked cell ``cell``."""

        def __init__(self, cell: int) -> None:
            super().__init__()
            self.cell = cell

    def __init__(self, size: int, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.export_size = size
        self.runs: list[Run] = []
        self.mapped = 0  # bytes from 0 whose kind is known
        self._cells: list[int] | None = None

    # ---- data in

    def add_extents(self, extents: Iterable[ExtentView]) -> None:
        new = [Run(e.offset, e.length, extent_kind(e)) for e in extents]
        for run in new:
            last = self.runs[-1] if self.runs else None
            if last and last.kind == run.kind and last.offset + last.length == run.offset:
                self.runs[-1] = Run(last.offset, last.length + run.length, run.kind)
            else:
                self.runs.append(run)
            self.mapped = max(self.mapped, min(run.offset + run.length, self.export_size))
        if len(self.runs) > MAX_RUNS:
            self.runs = fold(self.runs, self.export_size, self.mapped)
        if self._cells is not None:
            # A cell only ever gets stronger: fold the new runs into the cached cells.
            update = classify(new, self.export_size, len(self._cells))
            self._cells = [max(a, b) for a, b in zip(self._cells, update, strict=True)]
        self.refresh()

    def set_all(self, kind: int) -> None:
        """Mark the whole export as one kind (when the server has no allocation map)."""
        self.runs = [Run(0, self.export_size, kind)]
        self.mapped = self.export_size
        self._cells = None
        self.refresh()

    # ---- geometry

    @property
    def cell_count(self) -> int:
        width, height = self.content_size
        return max(width, 1) * max(height, 1)

    @property
    def cells(self) -> list[int]:
        if self._cells is None or len(self._cells) != self.cell_count:
            self._cells = classify(self.runs, self.export_size, self.cell_count)
        return self._cells

    def cell_bytes(self, cell: int) -> tuple[int, int]:
        return cell_range(cell, self.cell_count, self.export_size)

    def cell_kind(self, cell: int) -> int:
        cells = self.cells
        return cells[cell] if 0 <= cell < len(cells) else UNMAPPED

    def text_rows(self) -> list[str]:
        """The bar as plain characters, one string per row (for tests and logs)."""
        width = max(self.content_size.width, 1)
        chars = "".join(KIND_CHARS[kind] for kind in self.cells)
        return [chars[i : i + width] for i in range(0, len(chars), width)]

    def on_resize(self) -> None:
        self._cells = None
        self.cursor = min(self.cursor, self.cell_count - 1)

    def validate_cursor(self, cursor: int) -> int:
        return max(0, min(cursor, self.cell_count - 1))

    # ---- drawing

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        if y >= height or width <= 0:
            return Strip.blank(width)
        if self.export_size == 0:
            text = "empty export" if y == 0 else ""
            return Strip([Segment(text.ljust(width)[:width])])
        cells = self.cells
        segments = []
        cursor_style = Style(reverse=True, bold=True)
        for x in range(width):
            index = y * width + x
            kind = cells[index] if index < len(cells) else UNMAPPED
            style = KIND_STYLES[kind]
            char = KIND_CHARS[kind]
            if index == self.cursor:
                style = style + cursor_style
                char = char if kind != UNMAPPED else "▏"
            segments.append(Segment(char, style))
        return Strip(segments).simplify()

    def watch_cursor(self) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        width = max(self.content_size.width, 1)
        offset = event.get_content_offset(self)
        if offset is None:
            return
        cell = offset.y * width + offset.x
        if 0 <= cell < self.cell_count:
            self.cursor = cell
            self.post_message(self.Clicked(cell))
