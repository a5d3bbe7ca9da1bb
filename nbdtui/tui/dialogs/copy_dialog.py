"""``y`` in the hex editor: copy the selection as hex, raw text or a C array."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nbdtui.editor.clip_formats import FORMATS
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class CopyDialog(ModalScreen[str | None]):
    """Returns the format chosen (``hex``, ``text`` or ``c``), or ``None``."""

    DEFAULT_CSS = dialog_css("CopyDialog") + "CopyDialog OptionList { height: auto; }\n"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("h", "dismiss('hex')", "Hex", show=False),
        Binding("t", "dismiss('text')", "Text", show=False),
        Binding("c", "dismiss('c')", "C array", show=False),
    ]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(escape(f"Copy {self.what} as"), classes="title")
            yield OptionList(
                *(
                    Option(escape(f"{key[0]}  {label}"), id=key)
                    for key, label, _formatter in FORMATS
                ),
                id="copy-formats",
            )
            yield Label(
                "Enter or h / t / c: to the clipboard (OSC 52: works over SSH)", classes="hint"
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
