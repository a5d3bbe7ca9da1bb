"""The export screen: what the server said about one export, and its allocation bar."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from nbdtui.errors import NbdError
from nbdtui.present.describe import block_sizes, flag_words, protocol_line, tls_state
from nbdtui.present.sizes import format_size
from nbdtui.present.terminal_text import terminal_text
from nbdtui.proto.types import ExportInfo
from nbdtui.tui.markup import escape_markup, shown_name
from nbdtui.tui.widgets.allocation import (
    DATA,
    HOLE,
    KIND_CHARS,
    KIND_NAMES,
    KIND_STYLES,
    UNMAPPED,
    ZERO,
    AllocationBar,
)
from nbdtui.tui.widgets.titlebar import TitleBar

if TYPE_CHECKING:
    from nbdtui.client.export import Export
    from nbdtui.tui.session import Session

BASE_ALLOCATION = "base:allocation"
SECTOR = 512


def details_rows(export: Export) -> list[tuple[str, str]]:
    """(label, value) rows describing an open export."""
    info: ExportInfo = export.info
    negotiated = export.negotiated
    rows = [
        ("Size", f"{format_size(info.size)} ({info.size:,} bytes)"),
        ("Read-only", "yes" if info.read_only else "no"),
        ("Supports", flag_words(info)),
        ("Block sizes", block_sizes(info)),
        (
            "Protocol",
            protocol_line(
                negotiated.protocol, negotiated.structured, negotiated.tls, negotiated.tls_verified
            ),
        ),
        ("Meta contexts", _names(name for name, _ in negotiated.meta_contexts)),
    ]
    if negotiated.available_contexts is not None:
        rows.append(("Available", _names(negotiated.available_contexts)))
    if info.description:
        rows.append(("Description", terminal_text(info.description)))
    return rows


def _names(names: Iterable[str]) -> str:
    """Meta context names from the server, made safe to show, or ``none``."""
    return ", ".join(terminal_text(name) for name in names) or "none"


def legend() -> Text:
    parts: list[tuple[str, Style | str] | str] = []
    for kind in (DATA, ZERO, HOLE):
        parts += [(KIND_CHARS[kind] * 2, KIND_STYLES[kind]), f" {KIND_NAMES[kind]}   "]
    parts.append(("  ←→↑↓ move · Tab next change · Enter edit here · click a cell", "dim"))
    return Text.assemble(*parts)


class ExportScreen(Screen[None]):
    """Details and allocation of one open export; the base screen of its mode."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "edit", "Edit here"),
        Binding("e", "edit_start", "Edit from 0"),
        Binding("left", "move(-1)", "Previous cell", show=False),
        Binding("right", "move(1)", "Next cell", show=False),
        Binding("up", "move_row(-1)", "Cell above", show=False),
        Binding("down", "move_row(1)", "Cell below", show=False),
        Binding("home", "move_to(0)", "First cell", show=False),
        Binding("end", "move_to(-1)", "Last cell", show=False),
        Binding("tab", "next_kind", "Next change of kind", show=False),
        Binding("r", "remap", "Remap"),
        Binding("w", "close_export", "Close export"),
        Binding("escape", "back", "Back"),
    ]

    class EditRequested(Message):
        def __init__(self, screen: ExportScreen, offset: int) -> None:
            super().__init__()
            self.screen = screen
            self.offset = offset

    class CloseRequested(Message):
        def __init__(self, screen: ExportScreen) -> None:
            super().__init__()
            self.screen = screen

    class BackRequested(Message):
        pass

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.export = session.export
        name = terminal_text(self.export.name) if self.export.name else "(default export)"
        self.sub_title = f"{name} on {terminal_text(session.endpoint.display)}"
        self.map_error: str | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("", id="open-exports")
        details = Static(self._details_markup(), id="details")
        details.border_title = "Export"
        yield details
        with Vertical(id="allocation") as box:
            box.border_title = "Allocation"
            yield AllocationBar(self.export.size, id="bar")
            yield Static(legend(), id="legend")
            yield Static("", id="cursor-info")
        yield Footer()

    def _details_markup(self) -> str:
        rows = details_rows(self.export)
        width = max(len(label) for label, _ in rows)
        uri = self.session.endpoint.uri
        head = f"[dim]{'URI':<{width}}[/]  {escape_markup(uri)}"
        negotiated = self.export.negotiated
        state = tls_state(negotiated.tls, negotiated.tls_verified)
        style = "b $success" if negotiated.tls_verified else "b reverse $warning"
        lines = [head]
        for label, value in rows:
            shown = escape_markup(value)
            if label == "Protocol" and negotiated.tls:  # unverified TLS stands out
                shown = shown.replace(state, f"[{style}]{state}[/]", 1)
            lines.append(f"[dim]{label:<{width}}[/]  {shown}")
        return "\n".join(lines)

    def on_mount(self) -> None:
        self.load_map()

    def on_screen_resume(self) -> None:
        self.show_open_exports()

    @property
    def bar(self) -> AllocationBar:
        return self.query_one("#bar", AllocationBar)

    # ---- the open-exports line ("tabs")

    def show_open_exports(self) -> None:
        sessions = getattr(self.app, "sessions", {})
        parts = []
        for session in sessions.values():
            label = escape_markup(shown_name(session.export.name).split("  ")[0])
            if session is self.session:
                parts.append(f"[reverse b] {label} [/]")
            else:
                parts.append(f"[@click=app.switch_export('{session.mode}')] {label} [/]")
        tabs = self.query_one("#open-exports", Static)
        tabs.display = len(parts) > 1
        tabs.update(f"[dim]Open:[/] {' '.join(parts)}   [dim]F3 switches[/]")

    # ---- the allocation map (a worker; never blocks a frame)

    @work(exclusive=True, group="map", exit_on_error=False)
    async def load_map(self) -> None:
        bar = self.bar
        size = self.export.size
        self.map_error = None
        bar.runs, bar.mapped = [], 0
        if size == 0:
            self._update_cursor_info()
            return
        if self.export.negotiated.context_id(BASE_ALLOCATION) is None:
            bar.set_all(DATA)
            self.map_error = (
                "the server gives no allocation map (base:allocation): all shown as data"
            )
            self._update_cursor_info()
            return
        pos = 0
        try:
            while pos < size:
                # One reply at a time (at most MAX_STATUS_EXTENTS merged extents): the
                # bar folds what it keeps, so memory stays bounded whatever the server
                # reports (1-byte extents, say).
                extents = await self.export.allocation(pos, size - pos)
                bar.add_extents(extents)
                pos = extents[-1].offset + extents[-1].length
                self._update_cursor_info()
        except NbdError as exc:
            self.map_error = f"block status failed: {exc}"
            self.notify(self.map_error, severity="error", title="Allocation map")
        except Exception as exc:  # never a traceback on screen
            self.map_error = f"block status failed: {exc!r}"
            self.notify(self.map_error, severity="error", title="Allocation map")
        self._update_cursor_info()

    def _update_cursor_info(self) -> None:
        bar = self.bar
        size = self.export.size
        info = self.query_one("#cursor-info", Static)
        if size == 0:
            info.update("[dim]empty export[/]")
            return
        start, end = bar.cell_bytes(bar.cursor)
        kind = bar.cell_kind(bar.cursor)
        percent = 100 * bar.mapped // size
        mapped = "" if bar.mapped >= size else f"   [dim]mapped {percent}%…[/]"
        line = (
            f"cell {bar.cursor + 1}/{bar.cell_count}   "
            f"[b]{start:#x}[/]–{max(end - 1, start):#x}   "
            f"({format_size(end - start)})   [b]{KIND_NAMES[kind]}[/]{mapped}"
        )
        if self.map_error:
            line += f"\n[$warning]{escape_markup(self.map_error)}[/]"
        info.update(line)

    def on_allocation_bar_clicked(self, event: AllocationBar.Clicked) -> None:
        self._update_cursor_info()

    def on_resize(self) -> None:
        self.call_after_refresh(self._update_cursor_info)

    # ---- actions

    def action_move(self, delta: int) -> None:
        self.bar.cursor += delta
        self._update_cursor_info()

    def action_move_row(self, delta: int) -> None:
        self.bar.cursor += delta * max(self.bar.content_size.width, 1)
        self._update_cursor_info()

    def action_move_to(self, cell: int) -> None:
        self.bar.cursor = cell if cell >= 0 else self.bar.cell_count - 1
        self._update_cursor_info()

    def action_next_kind(self) -> None:
        """Move to the next cell whose kind differs from the cursor's."""
        bar = self.bar
        cells = bar.cells
        here = cells[bar.cursor] if cells else UNMAPPED
        for cell in range(bar.cursor + 1, len(cells)):
            if cells[cell] != here:
                bar.cursor = cell
                break
        self._update_cursor_info()

    @property
    def cursor_offset(self) -> int:
        start, _ = self.bar.cell_bytes(self.bar.cursor)
        return start - start % SECTOR

    def action_edit(self) -> None:
        self.post_message(self.EditRequested(self, self.cursor_offset))

    def action_edit_start(self) -> None:
        self.post_message(self.EditRequested(self, 0))

    def action_remap(self) -> None:
        self.load_map()

    def action_close_export(self) -> None:
        self.post_message(self.CloseRequested(self))

    def action_back(self) -> None:
        self.post_message(self.BackRequested())
