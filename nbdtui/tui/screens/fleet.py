"""The fleet screen (``nbdtui --inventory FILE``): one row an endpoint with its live status.

Every endpoint gets the doctor's quick steps (:func:`nbdtui.client.diagnosis.check_many.check_all`)
when the screen opens, every :data:`REFRESH_SECONDS` after that and on ``r`` (unless a
round is still running); each row changes as its check ends. ``s`` sorts by status
(down first), ``l`` by latency (slowest first); Enter opens the endpoint.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from nbdtui.client.diagnosis.check_many import Checked, check_all
from nbdtui.client.diagnosis.inventory import Problem, Target
from nbdtui.present.sizes import format_size
from nbdtui.present.terminal_text import terminal_text
from nbdtui.tui.markup import escape_markup
from nbdtui.tui.widgets.titlebar import TitleBar
from nbdtui.uri import Endpoint

REFRESH_SECONDS = 60.0
COLUMNS = ("status", "endpoint", "size", "mode", "latency", "problem")
CHECKING = "…"


class FleetScreen(Screen[None]):
    """The endpoints of an inventory and how each is doing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=True),
        Binding("r", "refresh", "Refresh"),
        Binding("s", "sort_status", "Sort by status"),
        Binding("l", "sort_latency", "Sort by latency"),
        Binding("escape", "back", "Back"),
    ]

    class OpenRequested(Message):
        """Open this endpoint (the app's usual way)."""

        def __init__(self, endpoint: Endpoint) -> None:
            super().__init__()
            self.endpoint = endpoint

    def __init__(
        self,
        targets: list[Target],
        problems: list[Problem] | None = None,
        *,
        name: str = "inventory",
        jobs: int = 16,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.targets = targets
        self.problems = list(problems or [])
        self.inventory_name = name
        self.jobs = jobs
        self.connect_timeout = connect_timeout
        self.results: dict[str, Checked] = {}
        self.rounds = 0
        self.checking = False
        self.last_round: float | None = None
        self.sub_title = f"Fleet {name}"

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("", id="fleet-summary")
        table: DataTable[Text | str] = DataTable(id="fleet", cursor_type="row", zebra_stripes=True)
        table.border_title = "Endpoints"
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#fleet", DataTable)
        for key, label in zip(
            COLUMNS, ("Status", "Endpoint", "Size", "Mode", "Latency", "Problem"), strict=True
        ):
            table.add_column(label, key=key)
        for i in range(len(self.targets)):
            table.add_row(*self._cells(str(i)).values(), key=str(i))
        for problem in self.problems:
            self.notify(str(problem), title="Inventory", severity="warning", timeout=10)
        self._summary()
        self.set_interval(REFRESH_SECONDS, self._tick)
        self.check_round()

    # ---- checking

    def _tick(self) -> None:
        if not self.checking:  # a long round is not cut short by the next one
            self.check_round()

    def action_refresh(self) -> None:
        if self.checking:
            self.notify("Checking already: each row changes as its check ends.", timeout=3)
            return
        self.check_round()

    @work(group="fleet", exclusive=True, exit_on_error=False)
    async def check_round(self) -> None:
        index = {id(t): str(i) for i, t in enumerate(self.targets)}
        self.checking = True
        self._summary()
        try:
            await check_all(
                self.targets,
                jobs=self.jobs,
                connect_timeout=self.connect_timeout,
                on_result=lambda checked: self.show(index[id(checked.target)], checked),
            )
        finally:
            self.checking = False
        self.rounds += 1
        self.last_round = time.time()
        self._summary()

    def _cells(self, key: str) -> dict[str, Text | str]:
        item = self.targets[int(key)]
        checked = self.results.get(key)
        if checked is None:
            label = Text(terminal_text(item.label))
            return dict(zip(COLUMNS, (CHECKING, label, "", "", "", ""), strict=True))
        d = checked.diagnosis
        failed = d.failed
        return {
            "status": Text("up", style="bold green")
            if failed is None
            else Text("DOWN", "bold red"),
            "endpoint": Text(terminal_text(item.label)),
            "size": Text(format_size(d.size), justify="right") if d.size is not None else "-",
            "mode": "-" if d.read_only is None else ("ro" if d.read_only else "rw"),
            "latency": (
                Text(f"{d.latency * 1000:.2f} ms", justify="right")
                if d.latency is not None
                else "-"
            ),
            # Never markup: the detail quotes what the server sent.
            "problem": Text(terminal_text(f"{failed.name}: {failed.detail}", backslash=False))
            if failed
            else "",
        }

    def show(self, key: str, checked: Checked) -> None:
        """Put one endpoint's outcome in its row."""
        self.results[key] = checked
        if not self.is_mounted:
            return
        table = self.query_one("#fleet", DataTable)
        for column, value in self._cells(key).items():
            if column != "endpoint":
                table.update_cell(key, column, value)
        self._summary()

    def _summary(self) -> None:
        if not self.is_mounted:
            return
        up = sum(1 for c in self.results.values() if c.diagnosis.ok)
        down = len(self.results) - up
        waiting = len(self.targets) - len(self.results)
        parts = [
            f"[b]{escape_markup(self.inventory_name)}[/]",
            f"{len(self.targets)} endpoints",
            f"[green]{up} up[/]",
            f"[red]{down} down[/]" if down else "0 down",
        ]
        if waiting:
            parts.append(f"{waiting} not checked yet")
        if self.problems:
            n = len(self.problems)
            parts.append(f"[yellow]{n} unreadable line{'s' if n != 1 else ''}[/]")
        if self.checking:
            parts.append("[dim]checking…[/]")
        elif self.last_round is not None:
            parts.append(
                f"[dim]checked {time.strftime('%H:%M:%S', time.localtime(self.last_round))}[/]"
            )
        self.query_one("#fleet-summary", Static).update("   ".join(parts))

    # ---- sorting and opening

    def _status_rank(self, key: str) -> tuple[int, str]:
        checked = self.results.get(key)
        if checked is None:
            return (1, "")
        failed = checked.diagnosis.failed
        return (0, failed.name) if failed else (2, "")

    def _latency(self, key: str) -> float:
        checked = self.results.get(key)
        if checked is None or checked.diagnosis.latency is None:
            return -1.0
        return checked.diagnosis.latency

    def action_sort_status(self) -> None:
        table = self.query_one("#fleet", DataTable)
        keys = [str(row.value) for row in table.rows]
        self._reorder(sorted(keys, key=lambda k: (self._status_rank(k), int(k))))

    def action_sort_latency(self) -> None:
        table = self.query_one("#fleet", DataTable)
        keys = [str(row.value) for row in table.rows]
        self._reorder(sorted(keys, key=lambda k: (-self._latency(k), int(k))))

    def _reorder(self, order: list[str]) -> None:
        """Show the rows in ``order`` (row keys); the cursor stays on its endpoint."""
        table = self.query_one("#fleet", DataTable)
        current = self._highlighted_key()
        table.clear()
        for key in order:
            table.add_row(*self._cells(key).values(), key=key)
        if current is not None:
            table.move_cursor(row=table.get_row_index(current))

    def row_order(self) -> list[str]:
        """The endpoints' labels, top to bottom."""
        table = self.query_one("#fleet", DataTable)
        return [self.targets[int(str(row.key.value))].label for row in table.ordered_rows]

    def _highlighted_key(self) -> str | None:
        table = self.query_one("#fleet", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    def _highlighted(self) -> Target | None:
        key = self._highlighted_key()
        return None if key is None else self.targets[int(key)]

    def action_open(self) -> None:
        item = self._highlighted()
        if item is not None:
            self.post_message(self.OpenRequested(item.endpoint))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_back(self) -> None:
        self.app.pop_screen()
