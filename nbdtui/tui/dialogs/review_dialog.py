"""Ctrl+S in the hex editor: the pending edits, old and new bytes, before writing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from nbdtui.editor.edits import EditRange
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape

_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))


def hex_bytes(data: bytes) -> str:
    return data.hex(" ")


def dump(data: bytes) -> str:
    """Hex bytes then their text, padded so that the text columns line up."""
    return f"{hex_bytes(data):<47}  |{data.translate(_PRINTABLE).decode()}|"


def review_text(ranges: Sequence[EditRange], sector_size: int) -> str:
    """Old and new bytes of every range, 16 a line, the changed bytes under each other."""
    lines = []
    for r in ranges:
        sector = r.offset // sector_size
        lines.append(
            f"0x{r.offset:x} ({r.offset}), sector {sector} +{r.offset % sector_size}: "
            f"{r.length} byte{'s' if r.length != 1 else ''}"
        )
        for pos in range(0, r.length, 16):
            lines.append(f"  old {dump(r.old[pos : pos + 16])}")
            lines.append(f"  new {dump(r.new[pos : pos + 16])}")
    return "\n".join(lines)


class ReviewDialog(ModalScreen[bool]):
    """Ctrl+S: every changed range with its old and new bytes; writes only on ``y``."""

    DEFAULT_CSS = (
        dialog_css("ReviewDialog")
        + """
    ReviewDialog > Vertical { width: 84; }
    ReviewDialog #review-ranges { height: auto; max-height: 20; border: round $panel; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(False)", "Cancel"),
        Binding("n", "dismiss(False)", "Cancel", show=False),
        Binding("y", "dismiss(True)", "Write", show=False),
    ]

    def __init__(
        self,
        ranges: Sequence[EditRange],
        sector_size: int,
        target: str,
        title: str = "",
        note: str = "The old bytes go to the undo journal first; J reverts later.",
    ) -> None:
        super().__init__()
        self.ranges, self.sector_size, self.target = ranges, sector_size, target
        self.title_text, self.note = title, note

    def compose(self) -> ComposeResult:
        total = sum(r.length for r in self.ranges)
        count = len(self.ranges)
        with Vertical():
            yield Label(
                self.title_text
                or f"Write {total} byte{'s' if total != 1 else ''} in {count} "
                f"range{'s' if count != 1 else ''}?",
                classes="title",
            )
            yield Label(escape(f"to {self.target}"), classes="hint")
            with VerticalScroll(id="review-ranges"):
                yield Static(review_text(self.ranges, self.sector_size), markup=False)
            yield Label(escape(self.note), classes="hint")
            with Horizontal():
                yield Button("Write (y)", id="yes", variant="error")
                yield Button("Cancel (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_ranges)

    def _fit_ranges(self) -> None:
        """Shrink the list of ranges (it scrolls) so that the whole box, buttons
        included, fits in its 90% of the screen's height."""
        box = self.query_one("#review-ranges", VerticalScroll)
        dialog = self.query_one(Vertical)
        others = sum(
            child.outer_size.height + child.styles.margin.top + child.styles.margin.bottom
            for child in dialog.children
            if child is not box
        )
        room = int(self.size.height * 0.9) - dialog.styles.gutter.height - others
        box.styles.max_height = max(3, min(20, room))  # no relayout when unchanged

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
