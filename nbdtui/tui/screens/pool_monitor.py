"""The pool screen: every connection nbdtui holds, refreshed twice a second.

Rates are computed here from the byte counters of two successive refreshes. A
connection whose oldest request in flight has waited more than a few seconds shows as
*stalled* (with that age); one being reopened after a loss shows as *reconnecting* (with
how long it has been trying); one lent to the threads of a bulk transfer as *lent*.
The summary counts the bulk transfers that went the event-loop way instead (no stream
could be lent, or a request failed on a thread). ``c`` closes the selected connection
and opens a new one: the requests in flight on it are sent again (see
:mod:`nbdtui.client.recovery`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from nbdtui.present.sizes import format_size
from nbdtui.present.terminal_text import terminal_text
from nbdtui.tui.markup import escape_markup
from nbdtui.tui.widgets.titlebar import TitleBar

REFRESH_SECONDS = 0.5

STATE_STYLES = {
    "ready": "bold green",
    "lent": "bold cyan",  # to the threads of a bulk transfer (nbdtui.client.bulk)
    "connecting": "yellow",
    "reconnecting": "bold yellow",
    "stalled": "bold red",
    "closing": "yellow",
    "closed": "dim",
}
# A request waiting longer than this makes its connection show as stalled (the pool
# reports ``stalled`` itself; this is for stats that only carry ``oldest_age``).
STALL_SECONDS = 3.0


def field(stat: Any, name: str, default: Any = None) -> Any:
    """A field of a stats record, whether it is an object or a mapping."""
    if isinstance(stat, dict):
        return stat.get(name, default)
    return getattr(stat, name, default)


@dataclass
class Sample:
    when: float
    read: int
    written: int


def rate(now: Sample, before: Sample | None) -> tuple[float, float]:
    """Bytes per second read and written between two samples (0 for the first)."""
    if before is None or now.when <= before.when:
        return 0.0, 0.0
    elapsed = now.when - before.when
    return (
        max(now.read - before.read, 0) / elapsed,
        max(now.written - before.written, 0) / elapsed,
    )


def per_second(value: float) -> str:
    return "—" if value <= 0 else f"{format_size(int(value))}/s"


def state_text(stat: Any) -> Text:
    """The State cell: the state, ``stalled 4.2 s`` for a connection whose oldest
    request has waited that long, ``reconnecting 3 s`` with how long it has tried."""
    state = str(field(stat, "state", "?"))
    age = float(field(stat, "oldest_age", 0.0) or 0.0)
    stalled = field(stat, "stalled", None)
    if stalled is None:
        stalled = age >= STALL_SECONDS
    if state == "ready" and stalled:
        return Text(f"stalled {age:.1f} s", style=STATE_STYLES["stalled"])
    if state == "reconnecting" and age > 0:
        return Text(f"reconnecting {age:.0f} s", style=STATE_STYLES[state])
    return Text(state, style=STATE_STYLES.get(state, ""))


def bulk_fallbacks(stats: Iterable[Any]) -> int:
    """Bulk transfers that went the event-loop way, over every export (each row of an
    export carries its export's count)."""
    per_export: dict[tuple[str, str], int] = {}
    for stat in stats:
        key = (str(field(stat, "endpoint", "")), str(field(stat, "export", "")))
        count = int(field(stat, "bulk_fallbacks", 0) or 0)
        per_export[key] = max(per_export.get(key, 0), count)
    return sum(per_export.values())


def default_cancel(conn_id: int) -> bool:
    """Close and reopen connection ``conn_id`` of any pool of the process."""
    from nbdtui.client.pool import cancel_connection

    return cancel_connection(conn_id)


ConnectionStats = Callable[[], list[tuple[str, Any]]]
Cancel = Callable[[int], "bool | Awaitable[bool]"]


class PoolScreen(Screen[None]):
    """Connections with endpoint, export, state, window occupancy, rates and errors."""

    SUB_TITLE = "Connections"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("f2", "back", "Back", show=False),
        Binding("p", "toggle_pause", "Pause"),
        Binding("c", "cancel_connection", "Cancel"),
    ]

    def __init__(
        self,
        stats: ConnectionStats,
        *,
        interval: float = REFRESH_SECONDS,
        cancel: Cancel | None = None,
    ) -> None:
        super().__init__()
        self.stats = stats
        self.interval = interval
        self.cancel = cancel or default_cancel
        self.samples: dict[str, Sample] = {}
        self.latest: dict[str, Any] = {}  # key -> stats of the last refresh
        self.paused = False

    def compose(self) -> ComposeResult:
        yield TitleBar()
        table: DataTable[Text | str] = DataTable(
            id="connections", cursor_type="row", zebra_stripes=True
        )
        table.border_title = "Connections"
        yield table
        yield Static("", id="pool-summary")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#connections", DataTable)
        for label, key in (
            ("Endpoint", "endpoint"),
            ("Export", "export"),
            ("State", "state"),
            ("Window", "window"),
            ("Read/s", "read_rate"),
            ("Write/s", "write_rate"),
            ("Errors", "errors"),
            ("Requests", "requests"),
            ("Read", "read"),
            ("Written", "written"),
        ):
            table.add_column(label, key=key)
        self.refresh_stats()
        self.set_interval(self.interval, self.refresh_stats)

    def action_back(self) -> None:
        self.dismiss()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.refresh_stats(force=True)

    async def action_cancel_connection(self) -> None:
        """Close the selected connection and open a new one (for a stalled one)."""
        table = self.query_one("#connections", DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        stat = self.latest.get(str(key))
        conn_id = field(stat, "conn_id", 0) if stat is not None else 0
        where = field(stat, "endpoint", "?") if stat is not None else "?"
        if not conn_id:
            self.notify("This row is not a connection that can be cancelled.", severity="warning")
            return
        try:
            done = self.cancel(int(conn_id))
            if isinstance(done, Awaitable):
                done = await done
        except Exception as exc:  # someone else's code: report, never crash
            self.notify(f"Cannot cancel the connection: {exc}", severity="error")
            return
        if done:
            self.notify(f"Closing the connection to {where} and opening a new one.")
        else:
            self.notify("That connection is gone already.", severity="warning")
        self.refresh_stats(force=True)

    def refresh_stats(self, force: bool = False) -> None:
        if self.paused and not force:
            return
        try:
            records = self.stats()
        except Exception as exc:  # the pool is someone else's code: report, never crash
            self.query_one("#pool-summary", Static).update(f"cannot read the pool: {exc}")
            return
        table = self.query_one("#connections", DataTable)
        now = time.monotonic()
        seen: set[str] = set()
        total_read = total_written = 0.0
        self.latest = {str(key): stat for key, stat in records}
        for key, stat in records:
            seen.add(key)
            row, read_rate, write_rate = self._row(key, stat, now)
            total_read += read_rate
            total_written += write_rate
            if key in table.rows:
                for column, value in zip(table.columns, row, strict=True):
                    table.update_cell(key, column, value)
            else:
                table.add_row(*row, key=key)
        for gone in [k.value for k in table.rows if k.value is not None and k.value not in seen]:
            table.remove_row(gone)
            self.samples.pop(gone, None)
        paused = "   [b $warning]paused[/]" if self.paused else ""
        count = len(records)
        summary = (
            f"{count} connection{'s' if count != 1 else ''}   "
            f"read {per_second(total_read)}   written {per_second(total_written)}"
            f"   [dim]every {self.interval:g} s[/]{paused}"
        )
        fallbacks = bulk_fallbacks(s for _, s in records)
        if fallbacks:
            summary += (
                f"   bulk transfers on the event loop: {fallbacks}"
                " [dim](no stream to lend, or a thread failed)[/]"
            )
        stalled = sum(1 for _, s in records if str(state_text(s)).startswith("stalled"))
        if stalled:
            summary += f"   [b $error]{stalled} stalled[/] (c: cancel and reconnect)"
        errors = [(k, field(s, "error")) for k, s in records if field(s, "error")]
        if errors:
            summary += f"\n[$error]last error: {escape_markup(str(errors[-1][1]))}[/]"
        elif not records:
            summary += "\n[dim]No connection is open: open an export first.[/]"
        self.query_one("#pool-summary", Static).update(summary)

    def _row(self, key: str, stat: Any, now: float) -> tuple[list[Text | str], float, float]:
        """The cells of ``stat``'s row, then its read and write rates (bytes/s)."""
        read = int(field(stat, "bytes_read", 0) or 0)
        written = int(field(stat, "bytes_written", 0) or 0)
        sample = Sample(now, read, written)
        read_rate, write_rate = rate(sample, self.samples.get(key))
        self.samples[key] = sample
        in_flight = field(stat, "in_flight", 0)
        window = field(stat, "window", 0)
        errors = int(field(stat, "errors", 0) or 0)
        export = field(stat, "export", "")
        return (
            [
                Text(terminal_text(str(field(stat, "endpoint", "?")))),
                Text(terminal_text(export)) if export else Text('""', style="dim"),
                state_text(stat),
                Text(f"{in_flight}/{window}", justify="right"),
                Text(per_second(read_rate), justify="right"),
                Text(per_second(write_rate), justify="right"),
                Text(str(errors), style="bold red" if errors else "", justify="right"),
                Text(str(field(stat, "requests", "")), justify="right"),
                Text(format_size(read), justify="right"),
                Text(format_size(written), justify="right"),
            ],
            read_rate,
            write_rate,
        )
