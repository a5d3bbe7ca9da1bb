"""``o`` in the hex editor: jump to where an integer at the cursor points."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nbdtui.editor.follow import Target
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class FollowDialog(ModalScreen[int | None]):
    """The integers at ``cursor`` as offsets and sectors; Enter jumps to one."""

    DEFAULT_CSS = dialog_css("FollowDialog", list_height=14)
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, cursor: int, found: list[Target]) -> None:
        super().__init__()
        self.cursor = cursor
        self.found = found

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Follow the value at 0x{self.cursor:x}", classes="title")
            yield OptionList(
                *(Option(escape(t.label), id=str(i)) for i, t in enumerate(self.found)),
                id="follow-list",
            )
            yield Label("Enter jumps (Ctrl+O comes back) · Esc cancels", classes="hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.found[event.option_index].offset)
