"""Stands in for the hex editor in builds that do not have it yet."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from nbdtui.tui.widgets.titlebar import TitleBar


class PlaceholderEditor(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back")]

    def __init__(self, export: Any) -> None:
        super().__init__()
        self.export = export
        self.offset = 0
        self.sub_title = "Editor"

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("", id="placeholder")
        yield Footer()

    def goto(self, offset: int) -> None:
        self.offset = offset
        self.query_one("#placeholder", Static).update(
            f"The hex editor is not part of this build.\n\nIt would open at offset {offset:#x}."
        )
