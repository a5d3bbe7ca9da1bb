"""Ctrl+B in the hex editor: the export's named bookmarks, to add, jump to or delete."""

from __future__ import annotations

import sqlite3
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from nbdtui.editor.bookmarks import Bookmark, Bookmarks
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class BookmarkDialog(ModalScreen[int | None]):
    """Type a name and Enter: a bookmark at the cursor. Enter on one in the list jumps
    there, Del removes it. Dismisses with the offset to go to, or None."""

    DEFAULT_CSS = dialog_css("BookmarkDialog", list_height=12)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("delete", "delete", "Delete bookmark"),
    ]

    def __init__(self, store: Bookmarks, endpoint: str, cursor: int, sector_size: int) -> None:
        super().__init__()
        self.store = store
        self.endpoint = endpoint
        self.cursor = cursor
        self.sector_size = sector_size
        self.marks: list[Bookmark] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Bookmarks", classes="title")
            yield Input(
                placeholder=f"name for 0x{self.cursor:x} (Enter adds it)", id="bookmark-name"
            )
            yield Label("", id="bookmark-error", classes="error")
            yield OptionList(id="bookmark-list")
            yield Label(
                "Tab/↓ to the list · Enter jumps · Del deletes · Esc closes", classes="hint"
            )

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        try:
            self.marks = self.store.list(self.endpoint)
        except sqlite3.Error as error:
            self._error(f"cannot read the bookmarks: {error}")
            self.marks = []
        options = self.query_one("#bookmark-list", OptionList)
        options.clear_options()
        ss = self.sector_size
        width = max((len(mark.name) for mark in self.marks), default=0)
        for mark in self.marks:
            where = f"0x{mark.offset:<10x}  sector {mark.offset // ss}"
            options.add_option(Option(f"{escape(mark.name.ljust(width))}  [dim]{where}[/]"))
        if not self.marks:
            options.add_option(Option("[dim]no bookmarks on this export yet[/]", disabled=True))

    def _error(self, text: str) -> None:
        self.query_one("#bookmark-error", Label).update(escape(text))

    def on_input_changed(self) -> None:
        self._error("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            mark = self.store.add(self.endpoint, event.value, self.cursor)
        except (ValueError, sqlite3.Error) as error:
            self._error(str(error))
            return
        event.input.value = ""
        self._show()
        self.notify(f"Bookmark {mark.name!r} at 0x{mark.offset:x}.")

    def on_key(self, event: events.Key) -> None:
        if event.key == "down" and self.query_one("#bookmark-name", Input).has_focus:
            self.query_one("#bookmark-list", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_index < len(self.marks):
            self.dismiss(self.marks[event.option_index].offset)

    def action_delete(self) -> None:
        options = self.query_one("#bookmark-list", OptionList)
        index = options.highlighted
        if not options.has_focus or index is None or index >= len(self.marks):
            return
        mark = self.marks[index]
        try:
            self.store.delete(self.endpoint, mark.name)
        except sqlite3.Error as error:
            self._error(str(error))
            return
        self._show()
        if self.marks:
            options.highlighted = min(index, len(self.marks) - 1)
        self.notify(f"Bookmark {mark.name!r} deleted.")
