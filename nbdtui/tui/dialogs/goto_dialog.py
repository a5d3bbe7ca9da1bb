"""Ctrl+G in the hex editor: an offset to go to."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class GotoDialog(ModalScreen[int | None]):
    """Ctrl+G: type an offset; ``parse`` turns it into one or raises ValueError."""

    DEFAULT_CSS = dialog_css("GotoDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, parse: Callable[[str], int], hint: str) -> None:
        super().__init__()
        self.parse = parse
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Go to offset", classes="title")
            yield Input(placeholder="0x1000, 4096, 64K, s2048, +s1, -16, end", id="goto-input")
            yield Label("", id="goto-error", classes="error")
            yield Label(escape(self.hint), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            offset = self.parse(event.value)
        except ValueError as error:
            self.query_one("#goto-error", Label).update(escape(str(error)))
            return
        self.dismiss(offset)
