"""``/`` and ``?`` in the hex editor: the bytes or text to search for."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label

from nbdtui.editor.search import PatternError, parse_pattern
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class SearchDialog(ModalScreen[tuple[bytes, str] | None]):
    """``/`` and ``?``: hex bytes or text; returns ``(pattern, what was typed)``."""

    DEFAULT_CSS = dialog_css("SearchDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+t", "toggle_text", "Text/hex"),
    ]

    def __init__(self, backward: bool, last: str = "", text_mode: bool = False) -> None:
        super().__init__()
        self.backward = backward
        self.last = last
        self.text_mode = text_mode

    def compose(self) -> ComposeResult:
        direction = "backward" if self.backward else "forward"
        with Vertical():
            yield Label(f"Search {direction}", classes="title")
            yield Input(self.last, placeholder='de ad be ef, 0x55aa or "EFI PART"', id="find")
            yield Checkbox("Text (Ctrl+T)", self.text_mode, id="search-text")
            yield Label("", id="search-error", classes="error")
            yield Label(
                "Searches the export's bytes, not pending edits. n / N repeat; "
                "Esc stops a running search.",
                classes="hint",
            )

    def action_toggle_text(self) -> None:
        box = self.query_one("#search-text", Checkbox)
        box.value = not box.value

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text_mode = self.query_one("#search-text", Checkbox).value
        try:
            pattern = parse_pattern(event.value, text_mode=text_mode)
        except PatternError as error:
            self.query_one("#search-error", Label).update(escape(str(error)))
            return
        self.dismiss((pattern, ("t:" if text_mode else "x:") + event.value))
