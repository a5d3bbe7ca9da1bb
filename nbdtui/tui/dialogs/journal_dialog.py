"""``J`` in the hex editor: the undo journal of the export, an entry to revert."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nbdtui.editor.journal import JournalEntry
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class JournalDialog(ModalScreen[int | None]):
    """``J``: the journal entries of this export; Enter picks one to revert."""

    DEFAULT_CSS = dialog_css("JournalDialog", width=96, list_height=16)
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, entries: Sequence[JournalEntry]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Undo journal of this export", classes="title")
            if not self.entries:
                yield Label("Nothing was written to this export yet.")
                return
            yield OptionList(
                *(Option(self._row(e), id=str(e.id)) for e in self.entries), id="journal"
            )
            yield Label("Enter reverts the entry (after a confirmation)", classes="hint")

    @staticmethod
    def _row(e: JournalEntry) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.created))
        note = f"  {e.note}" if e.note else ""
        return escape(
            f"#{e.id:<5} {when}  {e.state:<8}  {e.range_count} range(s), {e.byte_count} B{note}"
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.dismiss(int(event.option.id))
