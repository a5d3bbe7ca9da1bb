"""CompareScreen: the export being edited (A) above a second export or image (B).

Both hex views move together; bytes that differ are highlighted in both as the
comparison (:mod:`nbdtui.editor.compare`, in a worker) finds them. ``}``/``{`` go to the
next/previous difference, ``l`` lists them, ``c`` copies the difference under the cursor
(or the selection) from B into A as pending edits of the editor: they are reviewed,
journaled, written and flushed by the editor's Ctrl+S like bytes typed by hand.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, ClassVar, Protocol

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from nbdtui.editor.compare import Piece, ReadInto, differences, plan, zero_ranges
from nbdtui.editor.difference_list import DifferenceList, stage_copy
from nbdtui.editor.edits import PendingEdits
from nbdtui.errors import NbdError
from nbdtui.present.sizes import format_size
from nbdtui.tui.widgets.hexview import HexView

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from nbdtui.editor.device import ExtentView

MAX_COPY = 1024 * 1024  # bytes one `c` stages (pending edits are kept byte by byte)
LIST_LIMIT = 1000  # differences shown in the list


class Side(Protocol):
    """What the screen reads of each side (an Export, a LocalImage)."""

    @property
    def size(self) -> int: ...
    async def read(self, offset: int, length: int) -> bytes: ...
    def iter_extents(self, offset: int, length: int) -> AsyncIterator[ExtentView]: ...


@contextlib.asynccontextmanager
async def open_side(text: str, connect_timeout: float = 10.0) -> AsyncIterator[Side]:
    """The other side of a comparison: an NBD endpoint (anything with ``://`` or a
    scheme starting ``nbd``, as ``nbdtui diff`` and ``copy`` tell them) or a local
    file. Raises NbdError or OSError."""
    if "://" in text or re.match(r"(?i)^\s*nbd[a-z+]*:", text):
        from nbdtui.client.api import open as open_export

        async with open_export(text, connect_timeout=connect_timeout) as export:
            yield export
        return
    from nbdtui.editor.local_image import LocalImage

    with LocalImage(text) as image:
        yield image


def _reader(side: Side) -> ReadInto:
    """The side's bytes the way the comparison reads them (through ``read``: the
    editor's connections stay free for the views)."""

    async def read_into(offset: int, view: memoryview) -> None:
        view[:] = await side.read(offset, len(view))

    return read_into


class CompareScreen(Screen[None]):
    """A (editable through ``edits``) above B; dismissed with Escape."""

    DEFAULT_CSS = """
    CompareScreen { layout: vertical; }
    CompareScreen #compare-body { height: 1fr; }
    CompareScreen #compare-sides { width: 1fr; }
    CompareScreen .compare-title { height: 1; background: $panel; padding: 0 1; }
    CompareScreen HexView { height: 1fr; }
    CompareScreen #compare-list { width: 22; height: 1fr; display: none; }
    CompareScreen.listing #compare-list { display: block; }
    CompareScreen #compare-status { height: 1; background: $panel; padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right_curly_bracket", "difference(True)", "Next diff"),
        Binding("left_curly_bracket", "difference(False)", "Prev diff"),
        Binding("l", "list", "List"),
        Binding("c", "copy_from_other", "Copy B→A"),
        Binding("o", "other_side", "Other side"),
        Binding("escape", "close", "Back"),
    ]

    def __init__(
        self,
        a: Side,
        b: Side,
        *,
        edits: PendingEdits | None = None,
        writable: bool = False,
        labels: tuple[str, str] = ("A", "B"),
        sector_size: int = 512,
    ) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.edits = edits if edits is not None else PendingEdits()
        self.writable = writable
        self.labels = labels
        self.diffs = DifferenceList()
        self.error: str | None = None
        self._sector_size = sector_size
        self._syncing = False
        self._listed = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-body"):
            with Vertical(id="compare-sides"):
                yield from self._side(0)
                yield from self._side(1)
            yield OptionList(id="compare-list")
        yield Static("", id="compare-status", markup=False)
        yield Footer(show_command_palette=False)

    def _side(self, index: int) -> ComposeResult:
        side = (self.a, self.b)[index]
        name = "ab"[index]
        yield Static(self._title(index), classes="compare-title", markup=False)
        view = HexView(side.read, side.size, sector_size=self._sector_size, id=f"compare-{name}")
        if index == 0:
            view.edits = self.edits
        view.marks = self.diffs
        yield view

    def _title(self, index: int) -> str:
        side = (self.a, self.b)[index]
        name = "AB"[index]
        return f"{name}: {self.labels[index]}  ({format_size(side.size)})"

    @property
    def view_a(self) -> HexView:
        return self.query_one("#compare-a", HexView)

    @property
    def view_b(self) -> HexView:
        return self.query_one("#compare-b", HexView)

    def _focused_view(self) -> HexView:
        return self.view_b if self.focused is self.view_b else self.view_a

    def on_mount(self) -> None:
        self.title = f"Compare {self.labels[0]} with {self.labels[1]}"
        self.view_a.focus()
        for view in (self.view_a, self.view_b):
            view.request_blocks()
        self._refresh_status()
        self._scan()

    # ---- the comparison -----------------------------------------------------------

    @work(group="compare", exclusive=True, exit_on_error=False)
    async def _scan(self) -> None:
        end = min(self.a.size, self.b.size)

        try:
            zeros_a = await zero_ranges(self.a, 0, end)
            zeros_b = await zero_ranges(self.b, 0, end)

            def reached(piece: Piece) -> None:
                self.diffs.scanned = max(self.diffs.scanned, piece.end)

            found = differences(
                plan(zeros_a, zeros_b, 0, end),
                _reader(self.a),
                _reader(self.b),
                in_flight=4,
                on_piece=reached,
            )
            async with contextlib.aclosing(found):
                async for run in found:
                    self.diffs.add(run)
                    self._found()
            self.diffs.scanned = end
            self.diffs.complete = True
        except NbdError as exc:
            self.error = str(exc)
            self.notify(f"Comparison stopped: {exc}", severity="error")
        self._found()

    def _found(self) -> None:
        for view in (self.view_a, self.view_b):
            view.refresh()
        listing = self.query_one("#compare-list", OptionList)
        new = self.diffs.runs[self._listed : LIST_LIMIT]
        if new:
            listing.add_options(
                [Option(f"{r.offset:#x} {r.length}", id=str(r.offset)) for r in new]
            )
            self._listed += len(new)
        self._refresh_status()

    def _refresh_status(self) -> None:
        d = self.diffs
        end = min(self.a.size, self.b.size)
        if self.error is not None:
            state = f"stopped: {self.error}"
        elif d.complete:
            state = "done"
        else:
            state = f"comparing… {100 * d.scanned // max(end, 1)}%"
        cursor = self._focused_view().cursor if self.is_mounted else 0
        parts = [f"{len(d)} differences ({state})", f"cursor {cursor:#x}"]
        if self.a.size != self.b.size:
            parts.append("sizes differ")
        if self.edits:
            parts.append(f"{len(self.edits)} bytes pending (Ctrl+S in the editor)")
        self.query_one("#compare-status", Static).update("  │  ".join(parts))

    # ---- moving -------------------------------------------------------------------

    def on_hex_view_moved(self, event: HexView.Moved) -> None:
        if self._syncing:
            return
        source = self._focused_view()
        other = self.view_b if source is self.view_a else self.view_a
        self._syncing = True
        try:
            if other.size_bytes:
                other.jump(min(source.cursor, other.size_bytes - 1))
                if other.top != source.top:
                    other.scroll_rows(source.top - other.top)
        finally:
            self._syncing = False
        self._refresh_status()

    def _go(self, offset: int) -> None:
        self._focused_view().jump(offset)

    def action_difference(self, forward: bool) -> None:
        cursor = self._focused_view().cursor
        run = self.diffs.next_after(cursor) if forward else self.diffs.previous_before(cursor)
        if run is None:
            more = "" if self.diffs.complete else " (still comparing)"
            self.notify(f"No {'next' if forward else 'previous'} difference{more}.")
            return
        self._go(run.offset)

    def action_list(self) -> None:
        self.toggle_class("listing")
        listing = self.query_one("#compare-list", OptionList)
        if self.has_class("listing"):
            listing.focus()
        else:
            self.view_a.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.view_a.focus()
            self._go(int(event.option.id))

    def action_other_side(self) -> None:
        (self.view_b if self.focused is not self.view_b else self.view_a).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    # ---- copying ------------------------------------------------------------------

    def _copy_range(self) -> tuple[int, int] | None:
        view = self._focused_view()
        selection = view.selection
        if selection is not None:
            return selection[0], selection[1] + 1 - selection[0]
        run = self.diffs.run_at(view.cursor)
        return None if run is None else (run.offset, run.length)

    def action_copy_from_other(self) -> None:
        if not self.writable:
            self.notify("Enter write mode in the editor (e) to copy into A.", severity="warning")
            return
        chosen = self._copy_range()
        if chosen is None:
            self.notify("Put the cursor on a difference, or select a range, to copy it.")
            return
        offset, length = chosen
        length = min(length, self.a.size - offset, self.b.size - offset)
        if length > MAX_COPY:
            self.notify(
                f"Copy at most {format_size(MAX_COPY)} at once (select a smaller range).",
                severity="warning",
            )
            return
        self._copy(offset, length)

    @work(group="copy", exclusive=True, exit_on_error=False)
    async def _copy(self, offset: int, length: int) -> None:
        try:
            theirs = await self.b.read(offset, length)
            ours = await self.a.read(offset, length)
        except NbdError as exc:
            self.notify(f"Could not read the range: {exc}", severity="error")
            return
        stage_copy(self.edits, offset, theirs, ours)
        self.view_a.clear_selection()
        self.view_a.refresh()
        self.notify(f"{length} bytes at {offset:#x} staged from B: review with Ctrl+S.")
        self._refresh_status()
