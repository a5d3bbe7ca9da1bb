"""F3: pick one of the open exports (or the server/connect screens) to switch to."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from nbdtui.tui.markup import escape_markup


class SwitcherScreen(ModalScreen[str | None]):
    """Dismisses with the chosen mode name, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("f3", "dismiss(None)", "Close"),
    ]

    def __init__(self, entries: list[tuple[str, str]], current: str) -> None:
        """``entries`` are (mode, label) pairs, in order."""
        super().__init__()
        self.entries = entries
        self.current = current

    def compose(self) -> ComposeResult:
        options = OptionList(
            *(
                Option(("▸ " if mode == self.current else "  ") + escape_markup(label), id=mode)
                for mode, label in self.entries
            ),
            id="switcher",
        )
        options.border_title = "Switch to"
        options.border_subtitle = "Enter choose · Esc close"
        yield options

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        modes = [mode for mode, _ in self.entries]
        if self.current in modes:
            options.highlighted = modes.index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)
