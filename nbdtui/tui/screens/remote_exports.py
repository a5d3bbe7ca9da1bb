"""The server screen: every export of one server, to open one or several."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from nbdtui.present.describe import protocol_line
from nbdtui.present.sizes import format_size
from nbdtui.present.terminal_text import terminal_text
from nbdtui.proto.client_events import ExportsListed
from nbdtui.proto.types import ExportDetails
from nbdtui.tui.markup import escape_markup, shown_name
from nbdtui.tui.widgets.titlebar import TitleBar
from nbdtui.uri import Endpoint

MARK = "●"


class ServerScreen(Screen[None]):
    """The exports of ``endpoint`` as NBD_OPT_LIST (and INFO) gave them; ``open_here``
    tells which of them are open in this app (name → pending edit count), shown in the
    "Open" column whenever the screen comes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=True),
        Binding("space", "mark", "Mark"),
        Binding("o", "open_marked", "Open marked"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "back", "Back"),
    ]

    class OpenRequested(Message):
        """Open these exports of ``endpoint`` (each through the shared pool)."""

        def __init__(self, endpoint: Endpoint, names: list[str]) -> None:
            super().__init__()
            self.endpoint = endpoint
            self.names = names

    class RefreshRequested(Message):
        def __init__(self, screen: ServerScreen) -> None:
            super().__init__()
            self.screen = screen

    def __init__(
        self,
        endpoint: Endpoint,
        listed: ExportsListed,
        open_here: Callable[[Endpoint], dict[str, int]] | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.open_here = open_here
        self.opened: dict[str, int] = {}
        self.listed = listed
        self.marked: set[str] = set()
        self.sub_title = f"Server {terminal_text(endpoint.display)}"

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("", id="server-summary")
        table: DataTable[Text | str] = DataTable(
            id="exports", cursor_type="row", zebra_stripes=True
        )
        table.border_title = "Exports"
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#exports", DataTable)
        table.add_column(" ", key="mark", width=1)
        table.add_column("Name", key="name")
        table.add_column("Size", key="size")
        table.add_column("Bytes", key="bytes")
        table.add_column("Read-only", key="ro")
        table.add_column("Open", key="open")
        table.add_column("Description", key="description")
        self.set_listed(self.listed)

    def set_listed(self, listed: ExportsListed) -> None:
        """Show a (new) listing; marks of exports still listed are kept."""
        self.listed = listed
        names = {item.name for item in listed.exports}
        self.marked &= names
        self.opened = self.open_here(self.endpoint) if self.open_here else {}
        count = len(listed.exports)
        protocol = protocol_line(
            listed.protocol, listed.structured, listed.tls, listed.tls_verified
        )
        summary = (
            f"[b]{escape_markup(self.endpoint.display)}[/]   "
            f"{protocol}   "
            f"[dim]{count} export{'s' if count != 1 else ''}[/]"
        )
        self.query_one("#server-summary", Static).update(summary)
        table = self.query_one("#exports", DataTable)
        table.clear()
        for item in listed.exports:
            table.add_row(*self._row(item), key=item.name)

    def _row(self, item: ExportDetails) -> list[Text | str]:
        info = item.info
        description = Text(
            terminal_text(item.description or (info.description if info else "") or "")
        )
        mark = Text(MARK, style="bold") if item.name in self.marked else Text(" ")
        name = Text(shown_name(item.name), style="dim italic" if not item.name else "bold")
        opened = self._open_cell(item.name)
        if info is None:
            return [mark, name, "?", "?", "?", opened, description]
        return [
            mark,
            name,
            Text(format_size(info.size), justify="right"),
            Text(str(info.size), justify="right"),
            "yes" if info.read_only else "no",
            opened,
            description,
        ]

    def _open_cell(self, name: str) -> Text:
        if name not in self.opened:
            return Text("")
        pending = self.opened[name]
        if not pending:
            return Text("open", style="bold")
        return Text(f"open, {pending} pending", style="bold yellow")

    def on_screen_resume(self) -> None:
        """Back from an export: which are open (and their pending edits) may have changed."""
        if self.is_mounted and self.open_here is not None:
            opened = self.open_here(self.endpoint)
            if opened != self.opened:
                self.opened = opened
                table = self.query_one("#exports", DataTable)
                for item in self.listed.exports:
                    table.update_cell(item.name, "open", self._open_cell(item.name))

    # ---- actions

    def _highlighted(self) -> str | None:
        table = self.query_one("#exports", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def action_open(self) -> None:
        name = self._highlighted()
        if name is not None:
            self.post_message(self.OpenRequested(self.endpoint, [name]))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.OpenRequested(self.endpoint, [event.row_key.value]))

    def action_mark(self) -> None:
        name = self._highlighted()
        if name is None:
            return
        self.marked ^= {name}
        table = self.query_one("#exports", DataTable)
        cell = Text(MARK, style="bold") if name in self.marked else Text(" ")
        table.update_cell(name, "mark", cell)
        table.action_cursor_down()

    def action_open_marked(self) -> None:
        order = [item.name for item in self.listed.exports]
        names = [n for n in order if n in self.marked] or [
            n for n in [self._highlighted()] if n is not None
        ]
        if names:
            self.post_message(self.OpenRequested(self.endpoint, names))

    def action_refresh(self) -> None:
        self.post_message(self.RefreshRequested(self))

    def action_back(self) -> None:
        self.dismiss()
