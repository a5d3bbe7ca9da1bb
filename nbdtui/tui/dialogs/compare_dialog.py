"""`C` in the hex editor: the export or image to compare the current export with."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from nbdtui.tui.dialogs.dialog_css import dialog_css


class CompareDialog(ModalScreen[str | None]):
    """Type an NBD URI or a local file's path; Escape cancels."""

    DEFAULT_CSS = dialog_css("CompareDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Compare with", classes="title")
            yield Input(placeholder="nbd://host/export or /path/to/image", id="compare-input")
            yield Label("", id="compare-error", classes="error")
            yield Label(
                "Differences are highlighted; } and { move between them, c copies one "
                "into this export as pending edits.",
                classes="hint",
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            self.query_one("#compare-error", Label).update("Type a URI or a path.")
            return
        self.dismiss(text)
