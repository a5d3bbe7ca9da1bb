"""``/``, ``?`` and Ctrl+F in the hex editor: what to search for, and where.

The text is read as hex bytes when it is hex bytes and as text otherwise; the line under
it says which, as it is typed, and Ctrl+T reads it the other way. A second line limits
matches to an alignment (``0x438 mod 1024``). Enter finds the next match, Ctrl+L lists
them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from nbdtui.editor.pattern import PatternError, parse_pattern
from nbdtui.editor.search import Alignment, Query
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape

# Reads the alignment line: (modulus, remainder), None when blank; ValueError when bad.
AlignmentReader = Callable[[str], "tuple[int, int] | None"]


class SearchDialog(ModalScreen[Query | None]):
    """Returns the :class:`Query` to run, or ``None`` (Esc)."""

    DEFAULT_CSS = dialog_css("SearchDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+t", "toggle_text", "Hex/text"),
        Binding("ctrl+l", "list_all", "List all matches"),
    ]

    def __init__(
        self, backward: bool, read_alignment: AlignmentReader, last: Query | None = None
    ) -> None:
        super().__init__()
        self.backward = backward
        self.read_alignment = read_alignment
        self.last = last
        self.mode = last.mode if last else "guess"

    def compose(self) -> ComposeResult:
        direction = "backward" if self.backward else "forward"
        last = self.last
        with Vertical():
            yield Label(f"Search {direction}", classes="title")
            yield Input(
                last.text if last else "", placeholder="de ad be ef, 0x55aa or EFI PART", id="find"
            )
            yield Label("", id="search-as")
            yield Label("Only at offsets (blank: anywhere)")
            yield Input(
                last.align_text if last else "",
                placeholder="0x438 mod 1024 (≡ 0x38 mod 1024), s1 (sector starts)",
                id="search-align",
            )
            yield Label("", id="search-error", classes="error")
            yield Label(
                "Enter: next match · Ctrl+L: list all · Ctrl+T: hex/text · "
                "n, F3 repeat (N, Shift+F3 back) · Esc stops a running search. "
                "Searches the export's bytes, not pending edits.",
                classes="hint",
            )

    def on_mount(self) -> None:
        self._show_reading()

    def _show_reading(self) -> None:
        """The line under the input: how the text is read now."""
        text = self.query_one("#find", Input).value
        line = self.query_one("#search-as", Label)
        if not text:
            line.update("Hex bytes or text: guessed as you type (Ctrl+T: the other way)")
            return
        try:
            pattern = parse_pattern(text, self.mode)
        except PatternError as error:
            line.update(escape(f"Cannot search: {error}"))
            return
        other = "text" if pattern.kind == "hex" else "hex"
        how = "forced" if self.mode != "guess" else "guessed"
        line.update(escape(f"Searching {pattern.describe()}, {how} · Ctrl+T: as {other}"))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "find":
            self._show_reading()
        self.query_one("#search-error", Label).update("")

    def action_toggle_text(self) -> None:
        text = self.query_one("#find", Input).value
        try:
            kind = parse_pattern(text, self.mode).kind
        except PatternError:
            kind = "hex" if self.mode == "hex" else "text"
        self.mode = "hex" if kind == "text" else "text"
        self._show_reading()

    def action_list_all(self) -> None:
        self._submit(list_all=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(list_all=False)

    def _submit(self, list_all: bool) -> None:
        text = self.query_one("#find", Input).value
        align_text = self.query_one("#search-align", Input).value
        error = self.query_one("#search-error", Label)
        try:
            pattern = parse_pattern(text, self.mode)
        except PatternError as exc:
            error.update(escape(str(exc)))
            return
        try:
            aligned = self.read_alignment(align_text)
        except ValueError as exc:
            error.update(escape(f"Alignment: {exc}"))
            return
        align = Alignment(*aligned) if aligned else None
        self.dismiss(Query(text, self.mode, pattern, align, align_text, list_all))
