"""EditorScreen: the sector hex editor of one export.

Read-only until ``e`` (and a confirmation); typed bytes stay pending, highlighted, until
Ctrl+S shows every changed range with its old and new bytes and the user confirms. The
write itself is :func:`nbdtui.editor.commit.commit`: journal first, then write, flush,
mark. Every network call runs in a worker; an error is a notification, never a crash.

Keys with letters that are also hex digits (``e``) are typed as data in write mode's
hex pane, and every printable key is data in write mode's text pane: Escape leaves write
mode, Tab switches panes, and the Ctrl and function keys always work (F1 leaves out the
keys that type).
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.cells import cell_len
from textual import work
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.keys import format_key, key_to_character
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker

from nbdtui.disk.inspect import inspect
from nbdtui.disk.partitions import read_partition_table_async
from nbdtui.editor.commit import check_undoable, commit, endpoint_of, revert, zero_range
from nbdtui.editor.edits import EditRange, PendingEdits
from nbdtui.editor.extents import next_data, previous_data
from nbdtui.editor.goto import HELP as GOTO_HELP
from nbdtui.editor.goto import parse_goto
from nbdtui.editor.search import find
from nbdtui.errors import ConflictError, NbdError
from nbdtui.present.sizes import format_size
from nbdtui.tui.dialogs.confirm import ConfirmDialog
from nbdtui.tui.dialogs.goto_dialog import GotoDialog
from nbdtui.tui.dialogs.journal_dialog import JournalDialog
from nbdtui.tui.dialogs.partition_dialog import PartitionDialog
from nbdtui.tui.dialogs.review_dialog import ReviewDialog
from nbdtui.tui.dialogs.search_dialog import SearchDialog
from nbdtui.tui.widgets.hexview import HEX_PANE, HexView

if TYPE_CHECKING:
    from nbdtui.client.export import Export
    from nbdtui.disk.partitions import Partition, PartitionTable
    from nbdtui.editor.journal import Journal

# Columns the inspector needs beside the hex view (its border, padding, names and values).
_INSPECTOR_WIDTH = 34

# The footer's keys in each mode, most important first: those that fit the width are shown
# (the first ones fit in 80 columns); the others still work, and F1 lists them all.
_FOOTER_READ_ONLY = ("f1", "e", "ctrl+g", "slash", "i", "p", "escape", "tab", "f2", "f3", "q")
_FOOTER_WRITE = ("f1", "ctrl+s", "ctrl+z", "tab", "ctrl+g", "slash", "escape", "i", "p", "f2")

# The most bytes Ctrl+C copies (OSC 52 sends them base64-encoded to the terminal).
MAX_COPY = 64 * 1024

# Actions bound to keys that type a byte in write mode (hex digits / any character).
_HEX_PANE_TYPED = {"write_mode"}
_TEXT_PANE_TYPED = {
    *_HEX_PANE_TYPED,
    *("search", "search_again", "inspector", "partitions", "mark", "zero", "trim"),
    *("journal", "reload"),
}


def on_yes(action: Callable[[], object]) -> Callable[[bool | None], None]:
    """A dialog's callback that runs ``action`` when the answer is yes."""

    def answered(yes: bool | None) -> None:
        if yes:
            action()

    return answered


class EditorScreen(Screen[None]):
    """Hex view, inspector, overlays and status line for one open export."""

    DEFAULT_CSS = """
    EditorScreen #editor-body { height: 1fr; }
    EditorScreen #inspector {
        width: 1fr; min-width: 30; display: none; border-left: solid $panel; padding-left: 1;
        scrollbar-size-vertical: 1;
    }
    EditorScreen #inspector.shown { display: block; }
    EditorScreen #editor-body.stacked { layout: vertical; }
    EditorScreen #editor-body.stacked #inspector {
        width: 1fr; min-width: 0; height: 11; border-left: none; border-top: solid $panel;
    }
    EditorScreen #editor-status { height: 1; background: $panel; color: $text; padding: 0 1; }
    EditorScreen #editor-status.write { background: $warning 40%; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "goto", "Go to"),
        Binding("slash", "search(False)", "Search"),
        Binding("question_mark", "search(True)", "Search backward", show=False),
        Binding("n", "search_again(False)", "Next match", show=False),
        Binding("N", "search_again(True)", "Previous match", show=False),
        Binding("up", "move(-16)", "Up a line", show=False),
        Binding("down", "move(16)", "Down a line", show=False),
        Binding("left", "move(-1)", "Previous byte", show=False),
        Binding("right", "move(1)", "Next byte", show=False),
        Binding("shift+up", "select(-16)", "Select up", show=False),
        Binding("shift+down", "select(16)", "Select down", show=False),
        Binding("shift+left", "select(-1)", "Select left", show=False),
        Binding("shift+right", "select(1)", "Select right", show=False),
        Binding("pageup", "page(-1)", "Previous sector", show=False),
        Binding("pagedown", "page(1)", "Next sector", show=False),
        Binding("home", "home", "Start of export", show=False),
        Binding("end", "end", "End of export", show=False),
        Binding("tab", "switch_pane", "Hex/text"),
        Binding("right_square_bracket", "extent(True)", "Next data extent", show=False),
        Binding("left_square_bracket", "extent(False)", "Previous data extent", show=False),
        Binding("i", "inspector", "Inspector"),
        Binding("p", "partitions", "Partitions"),
        Binding("e", "write_mode", "Write mode"),
        Binding("u,ctrl+z", "undo", "Undo", show=False),
        Binding("ctrl+y", "redo", "Redo", show=False),
        Binding("ctrl+s", "commit", "Commit"),
        # Priority: Textual's own Ctrl+C (the screen's copy of selected text, the app's
        # "Do you want to quit?") never sees the hex view's selection.
        Binding(
            "ctrl+c,super+c",
            "copy",
            "Copy (hex pane: hex, text pane: text)",
            show=False,
            priority=True,
        ),
        Binding("v", "mark", "Mark selection start/end", show=False),
        Binding("Z", "zero", "Zero the selection", show=False),
        Binding("T", "trim", "Trim the selection", show=False),
        Binding("f5", "flush", "Flush", show=False),
        Binding("J", "journal", "Journal (revert)", show=False),
        Binding("f4", "compare", "Compare with another export or image", show=False),
        Binding("r", "reload", "Reload from the export", show=False),
        Binding("ctrl+t", "sector_size", "Sector size", show=False),
        Binding("escape", "escape", "Back"),
    ]

    def __init__(
        self, export: Export, *, journal: Journal | None = None, sector_size: int = 512
    ) -> None:
        super().__init__()
        self.export = export
        self._journal = journal
        self.edits = PendingEdits()
        self.writable = False
        self.table: PartitionTable | None = None
        self.table_message = "reading the partition table…"
        self._starts: list[int] = []
        self._search: tuple[bytes, str] | None = None
        self._search_worker: Worker[None] | None = None
        self._search_state = ""
        self._busy = ""
        self._write_worker: Worker[None] | None = None
        self._was_reconnecting = False
        self._pane = HEX_PANE
        self._sector_size = sector_size
        self.title = f"{export.name or '(default export)'}"
        endpoint = getattr(export, "endpoint", None)
        self.sub_title = getattr(endpoint, "display", "") or ""

    # ---- building -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="editor-body"):
            view = HexView(
                self.export.read, self.export.size, sector_size=self._sector_size, id="hexview"
            )
            view.edits = self.edits
            view.header_label = self._header_label
            yield view
            with VerticalScroll(id="inspector", can_focus=False):
                yield Static("", id="inspector-fields", markup=False)
        yield Static("", id="editor-status", markup=False)
        yield Footer(show_command_palette=False)  # Ctrl+P works, F1 lists it

    @property
    def view(self) -> HexView:
        return self.query_one(HexView)

    def on_mount(self) -> None:
        self.view.focus()
        self.view.request_blocks()
        self._load_partitions()
        self._refresh_status()
        self.set_interval(0.5, self._watch_connection)

    def on_resize(self) -> None:
        """Too narrow for the inspector beside the hex view: it goes below it."""
        body = self.query_one("#editor-body", Horizontal)
        body.set_class(self.size.width < self.view.line_width + _INSPECTOR_WIDTH, "stacked")
        self.call_after_refresh(self._refresh_inspector)
        self.refresh_bindings()  # the footer shows as many keys as fit

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """Every active key; only the mode's most important ones that fit the width are
        marked to be shown in the footer (see ``_FOOTER_READ_ONLY``)."""
        bindings = super().active_bindings
        order = _FOOTER_WRITE if self.writable else _FOOTER_READ_ONLY
        room = self.size.width
        shown: dict[str, ActiveBinding] = {}
        for key in order:
            active = bindings.get(key)
            if active is None:
                continue
            width = cell_len(self.app.get_key_display(active.binding))
            width += cell_len(active.binding.description) + 3  # as the Footer draws it
            if width <= room:
                room -= width
                shown[key] = active._replace(binding=dataclasses.replace(active.binding, show=True))
        hidden = {
            key: active._replace(binding=dataclasses.replace(active.binding, show=False))
            for key, active in bindings.items()
            if key not in shown
        }
        return {**shown, **hidden}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """In write mode, keys that type bytes are not commands: hide those from the
        footer (Escape leaves write mode)."""
        if self.writable and self.is_mounted:
            typed = _TEXT_PANE_TYPED if self.view.pane != HEX_PANE else _HEX_PANE_TYPED
            if action in typed:
                return False
        return True

    def key_types(self, key: str) -> bool:
        """Whether ``key`` (a binding's key) types a byte here now, instead of running
        its command: F1 leaves such keys out."""
        if not (self.writable and self.is_mounted):
            return False
        return self.view.types(key_to_character(key) or format_key(key))

    def has_pending_edits(self) -> bool:
        return bool(self.edits)

    def goto(self, offset: int) -> None:
        """Put the cursor on ``offset`` (the app shell calls this)."""
        self.view.jump(offset)

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            from nbdtui.editor.journal import Journal

            self._journal = Journal()
        return self._journal

    # ---- status, inspector, partition labels ---------------------------------------

    def on_hex_view_moved(self) -> None:
        if self.view.pane != self._pane:
            self._pane = self.view.pane
            self.refresh_bindings()
        self._refresh_status()
        self._refresh_inspector()

    def on_hex_view_loaded(self) -> None:
        self._refresh_status()
        self._refresh_inspector()

    def partition_at(self, offset: int) -> Partition | None:
        if self.table is None:
            return None
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0:
            part = self.table.partitions[index]
            if part.start <= offset < part.start + part.size and not part.is_extended:
                return part
        return None

    def _part_name(self, part: Partition) -> str:
        return f"p{part.index} {part.name or part.type_name}"

    def _header_label(self, sector: int) -> str:
        part = self.partition_at(sector * self.view.sector_size)
        if part is None:
            return ""
        first = part.start == sector * self.view.sector_size
        return f"{'start of ' if first else ''}{self._part_name(part)}"

    def _connection_note(self) -> str:
        """What the status line says about a lost connection ("" when it is fine)."""
        export = self.export
        if export.reconnecting:
            stats = export.connection_stats()  # PooledConnectionStats: with oldest_age
            ages = [getattr(s, "oldest_age", 0.0) for s in stats if s.state == "reconnecting"]
            delay = export.reconnect_delay
            note = f"connection lost: reconnecting… {max(ages, default=0):.0f} s of {delay:g} s"
        elif self.view.fetch_lost:
            note = f"connection lost: {self.view.fetch_error} (r: reconnect)"
        else:
            return ""
        if self._writing():
            note += " · Esc cancels the write"
        return note

    def _writing(self) -> bool:
        return self._write_worker is not None and self._write_worker.is_running

    def _watch_connection(self) -> None:
        """Every half second: show the connection's state; once a reconnect ends, fetch
        again what its loss left unread."""
        reconnecting = self.export.reconnecting
        if self._was_reconnecting and not reconnecting and self.view.fetch_lost:
            self.view.retry()
        if reconnecting or self._was_reconnecting or self.view.fetch_lost:
            self._refresh_status()
        self._was_reconnecting = reconnecting

    def _refresh_status(self) -> None:
        if not self.is_mounted:
            return
        view = self.view
        cur = view.cursor
        parts = [f"0x{cur:x} = {cur}", f"sector {cur // view.sector_size}"]
        part = self.partition_at(cur)
        if part is not None:
            parts.append(self._part_name(part))
        if view.selection:
            lo, hi = view.selection
            parts.append(f"sel 0x{lo:x}–0x{hi:x} ({hi - lo + 1} B)")
        mode = "READ-ONLY"
        if self.writable:
            mode = "WRITE (hex pane)" if view.pane == HEX_PANE else "WRITE (text pane: keys type)"
        if self.writable or self.edits:
            mode += f" · {len(self.edits)} pending"
        parts.append(mode)
        block = view.cache.block_at(cur)
        bad = block.bad_at(cur, view.sector_size) if block else None
        if bad:
            parts.append(f"UNREADABLE sector: {bad}")
        lost = self._connection_note()
        if lost:
            parts.append(lost)
        elif view.fetch_error:
            parts.append(f"read error: {view.fetch_error}")
        elif view.in_flight:
            parts.append("loading…")
        if self._search_state:
            parts.append(self._search_state)
        if self._busy:
            parts.append(self._busy)
        status = self.query_one("#editor-status", Static)
        # One line (height: 1, full width): new text never moves anything, so repaint
        # the line alone rather than lay the whole screen out again on every key.
        status.update(" │ ".join(parts), layout=False)
        status.set_class(self.writable, "write")

    def _refresh_inspector(self) -> None:
        box = self.query_one("#inspector", VerticalScroll)
        if not box.has_class("shown"):
            return
        view = self.view
        data = view.bytes_at(view.cursor, 16)
        lines = [f"at 0x{view.cursor:x}", ""]
        if data is None:
            lines.append("connection lost" if view.fetch_lost else "loading…")
        else:
            fields = inspect(data)
            room = self.query_one("#inspector-fields").size.width or 30
            names = min(max(len(f.name) for f in fields), room // 2)
            # Wide and short (below the hex view): two fields a line when both fit.
            half = (room - 2) // 2 if room >= 60 else 0
            pending = ""  # a short field waiting for a second one on its line
            for f in fields:
                row = f"{f.name:<{names}}  {f.value}"
                if half and cell_len(row) <= half:
                    if pending:
                        lines.append(f"{pending:<{half}}  {row}")
                        pending = ""
                    else:
                        pending = row
                    continue
                if pending:
                    lines.append(pending)
                    pending = ""
                if max(names, len(f.name)) + 2 + cell_len(f.value) <= room:
                    lines.append(row)
                else:  # a long value goes on a line of its own
                    lines += [f.name, f"  {f.value}"]
            if pending:
                lines.append(pending)
        self.query_one("#inspector-fields", Static).update("\n".join(lines))

    @work(group="partitions", exclusive=True, exit_on_error=False)
    async def _load_partitions(self) -> None:
        try:
            table = await read_partition_table_async(self.export.read, self.export.size, None)
        except Exception as error:  # a read error, or bytes no decoder expected
            self.table, self.table_message = None, f"cannot read the partition table: {error}"
        else:
            self.table, self.table_message = table, ""
        parts = self.table.partitions if self.table else ()
        self._starts = [p.start for p in parts]
        self.view.refresh()
        self._refresh_status()

    # ---- navigation ---------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.view.move(delta)

    def action_select(self, delta: int) -> None:
        self.view.move(delta, extend=True)

    def action_page(self, sectors: int) -> None:
        self.view.page(sectors)

    def action_home(self) -> None:
        self.view.jump(0)

    def action_end(self) -> None:
        self.view.jump(self.export.size - 1)

    def action_switch_pane(self) -> None:
        self.view.switch_pane()

    def action_mark(self) -> None:
        self.view.toggle_mark()

    def action_copy(self) -> None:
        """Ctrl+C: the selection (else the byte under the cursor) to the clipboard, as
        hex bytes from the hex pane, as text (``.`` for non-printables) from the text pane."""
        view = self.view
        lo, hi = view.selection or (view.cursor, view.cursor)
        length = hi - lo + 1
        if view.size_bytes == 0:
            self.notify("The export is empty: nothing to copy.")
            return
        if length > MAX_COPY:
            self.notify(
                f"The selection has {length} bytes: copy at most {format_size(MAX_COPY)}.",
                severity="warning",
            )
            return
        data = view.bytes_at(lo, length)
        ss = view.sector_size
        unreadable = any(
            (block := view.cache.block_at(sector)) is not None and block.bad_at(sector, ss)
            for sector in range(lo - lo % ss, hi + 1, ss)
        )
        if data is None or len(data) < length or unreadable:
            self.notify("Not copied: some of these bytes are not loaded or unreadable.")
            return
        if view.pane == HEX_PANE:
            text, shown_as = data.hex(" "), "hex"
        else:
            text, shown_as = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data), "text"
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {length} byte{'' if length == 1 else 's'} as {shown_as}.")

    def action_goto(self) -> None:
        view = self.view

        def parse(text: str) -> int:
            return parse_goto(
                text, cursor=view.cursor, size=self.export.size, sector_size=view.sector_size
            )

        hint = f"{GOTO_HELP}; sectors are {view.sector_size} bytes"
        self.app.push_screen(GotoDialog(parse, hint), self._goto_chosen)

    def _goto_chosen(self, offset: int | None) -> None:
        if offset is not None:
            self.view.jump(offset)

    @work(group="extent", exclusive=True, exit_on_error=False)
    async def action_extent(self, forward: bool) -> None:
        self._set_busy("looking for data…")
        try:
            if forward:
                found = await next_data(self.export, self.view.cursor, self.export.size)
            else:
                found = await previous_data(self.export, self.view.cursor)
        except NbdError as error:
            self.notify(str(error), title="Block status", severity="error")
            return
        finally:
            self._set_busy("")
        if found is None:
            where = "after" if forward else "before"
            self.notify(f"No allocated data {where} 0x{self.view.cursor:x}.")
        else:
            self.view.jump(found)

    def _set_busy(self, text: str) -> None:
        self._busy = text
        self._refresh_status()

    def action_sector_size(self) -> None:
        sizes = [512, 4096]
        minimum = getattr(self.export.info, "block_minimum", None)
        if minimum and minimum % 16 == 0 and minimum not in sizes:
            sizes.append(minimum)
        current = self.view.sector_size
        new = sizes[(sizes.index(current) + 1) % len(sizes)] if current in sizes else 512
        self.view.set_sector_size(new)
        self.notify(f"Sectors are now {new} bytes.")

    def action_reload(self) -> None:
        if self.view.fetch_lost and not self.export.reconnecting:
            self.export.reconnect()  # it gave up: try again now
        self.view.invalidate()
        self._load_partitions()

    # ---- search -------------------------------------------------------------------

    def action_search(self, backward: bool) -> None:
        last = self._search[1] if self._search else ""
        text_mode = last.startswith("t:")
        dialog = SearchDialog(backward, last[2:], text_mode)
        self.app.push_screen(dialog, lambda found: self._search_chosen(found, backward))

    def _search_chosen(self, chosen: tuple[bytes, str] | None, backward: bool) -> None:
        if chosen is not None:
            self._search = chosen
            self._start_search(backward)

    def action_search_again(self, backward: bool) -> None:
        if self._search is None:
            self.notify("Nothing to repeat: search with / or ? first.")
            return
        self._start_search(backward)

    def _start_search(self, backward: bool) -> None:
        if self._search is None:
            return
        pattern = self._search[0]
        cursor = self.view.cursor
        start = cursor - 1 if backward else cursor + 1
        self._search_worker = self._run_search(pattern, start, backward)

    @work(group="search", exclusive=True, exit_on_error=False)
    async def _run_search(self, pattern: bytes, start: int, backward: bool) -> None:
        began = time.monotonic()
        last_shown = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last_shown
            now = time.monotonic()
            if now - last_shown > 0.1:
                last_shown = now
                self._search_state = f"searching {100 * done // max(total, 1)}% (Esc stops)"
                self._refresh_status()

        self._search_state = "searching… (Esc stops)"
        self._refresh_status()
        try:
            hit = await find(self.export, pattern, start, backward=backward, progress=progress)
        except NbdError as error:
            self.notify(str(error), title="Search failed", severity="error")
            return
        finally:
            self._search_state = ""
            self._refresh_status()
        if hit is None:
            way = "before" if backward else "after"
            self.notify(f"Not found {way} 0x{self.view.cursor:x}.", title="Search")
            return
        self.view.jump(hit)
        self.view.select_from = hit + len(pattern) - 1
        self.view.refresh()
        self.notify(f"Found at 0x{hit:x} ({time.monotonic() - began:.1f} s).", title="Search")

    # ---- panels -------------------------------------------------------------------

    def action_inspector(self) -> None:
        self.query_one("#inspector").toggle_class("shown")
        self._refresh_inspector()
        self.call_after_refresh(self._refresh_inspector)  # laid out: its width is known

    def action_partitions(self) -> None:
        self.app.push_screen(PartitionDialog(self.table, self.table_message), self._part_chosen)

    def _part_chosen(self, offset: int | None) -> None:
        if offset is not None:
            self.view.jump(offset)

    # ---- write mode and edits -----------------------------------------------------

    def _set_writable(self, writable: bool) -> None:
        self.writable = writable
        self.view.writable = writable
        self.refresh_bindings()
        self._refresh_status()

    def action_write_mode(self) -> None:
        if self.writable:
            self._leave_write_mode()
            return
        if self.export.info.read_only:
            self.notify(
                "The server exports this read-only: it cannot be changed from here.",
                title="Write mode not available",
                severity="error",
            )
            return
        question = (
            "Typed bytes will only change what this editor shows. Nothing is written to "
            f"{self._target()} until you review every change and confirm it with Ctrl+S; "
            "the old bytes are kept in the undo journal first."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._set_writable(True)

        self.app.push_screen(
            ConfirmDialog("Enter write mode?", question, "Enter write mode", "Stay read-only"),
            answered,
        )

    def _leave_write_mode(self) -> None:
        if not self.edits:
            self._set_writable(False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._discard()
                self._set_writable(False)

        self._ask_discard("Leave write mode?", answered)

    def _ask_discard(self, title: str, answered: Callable[[bool | None], None]) -> None:
        question = f"{len(self.edits)} pending byte(s) were not written. Drop them?"
        self.app.push_screen(ConfirmDialog(title, question, "Drop them", "Keep"), answered)

    def _discard(self) -> None:
        self.edits.clear()
        self.view.refresh()
        self._refresh_status()

    def action_undo(self) -> None:
        offset = self.edits.undo()
        if offset is None:
            self.notify("Nothing to undo.")
        else:
            self.view.jump(offset)

    def action_redo(self) -> None:
        offset = self.edits.redo()
        if offset is None:
            self.notify("Nothing to redo.")
        else:
            self.view.jump(offset)

    def _target(self) -> str:
        return f"{self.export.name or '(default export)'} at {endpoint_of(self.export)}"

    def action_commit(self) -> None:
        if not self.edits:
            self.notify("There are no pending edits to write.")
            return
        dialog = ReviewDialog(self.edits.ranges(), self.view.sector_size, self._target())
        self.app.push_screen(dialog, on_yes(self._start_commit))

    def _start_commit(self) -> None:
        self._write_worker = self._do_commit()

    @work(group="write", exclusive=True, exit_on_error=False)
    async def _do_commit(self) -> None:
        count, ranges = len(self.edits), len(self.edits.ranges())
        self._set_busy("writing…")
        try:
            entry = await commit(self.export, self.edits, self.journal)
        except asyncio.CancelledError:
            self.notify(
                "The server did not acknowledge the write: your edits are still pending "
                "(its journal entry, if any, is marked failed).",
                title="Write cancelled",
                severity="warning",
                timeout=15,
            )
            raise
        except (NbdError, OSError) as error:
            self.notify(
                f"{error}. Your edits are still pending.",
                title="Commit failed",
                severity="error",
                timeout=15,
            )
            return
        finally:
            self._set_busy("")
            self.view.invalidate()
        self.edits.clear()
        self._load_partitions()
        self._refresh_status()
        self.notify(f"Wrote {count} byte(s) in {ranges} range(s); journal entry #{entry}.")

    # ---- flush, zero, trim, revert ------------------------------------------------

    @work(group="write", exclusive=True, exit_on_error=False)
    async def action_flush(self) -> None:
        if not self.export.info.can_flush:
            self.notify("This export does not support flush.")
            return
        try:
            await self.export.flush()
        except NbdError as error:
            self.notify(str(error), title="Flush failed", severity="error")
            return
        self.notify("Flushed: the server says everything written is on stable storage.")

    def _check_can_write(self) -> bool:
        if not self.writable:
            self.notify("Enter write mode (e) first.", severity="warning")
            return False
        if self.edits:
            self.notify("Commit (Ctrl+S) or undo the pending edits first.", severity="warning")
            return False
        return True

    def action_zero(self) -> None:
        self._zero_or_trim(trim=False)

    def action_trim(self) -> None:
        self._zero_or_trim(trim=True)

    def _zero_or_trim(self, trim: bool) -> None:
        if not self._check_can_write():
            return
        what = "Trim" if trim else "Zero"
        # Refuse what the export cannot do before asking, not after the user said yes.
        if not (self.export.info.can_trim if trim else self.export.info.can_zero):
            self.notify(
                f"This export does not support {what.lower()}: nothing was changed.",
                title=f"{what} not available",
                severity="error",
            )
            return
        selection = self.view.selection
        if selection is None:
            self.notify("Select a range first (Shift+arrows, or v at each end).")
            return
        lo, hi = selection
        length, ss = hi - lo + 1, self.view.sector_size
        try:
            check_undoable(length, what.lower())
        except ValueError as exc:
            self.notify(f"{exc}.", severity="error")
            return
        question = (
            f"{what} {length} bytes ({format_size(length)}): 0x{lo:x}–0x{hi:x} "
            f"({lo}–{hi}), sectors {lo // ss}–{hi // ss} of {self._target()}. "
            "The old bytes go to the undo journal first."
        )
        if trim:
            question += " After a trim the export may read back anything."
        self.app.push_screen(
            ConfirmDialog(f"{what} {length} bytes?", question, what, "Cancel"),
            on_yes(lambda: self._do_zero(lo, length, trim)),
        )

    @work(group="write", exclusive=True, exit_on_error=False)
    async def _do_zero(self, offset: int, length: int, trim: bool) -> None:
        try:
            entry = await zero_range(self.export, self.journal, offset, length, trim=trim)
        except (NbdError, ValueError, OSError) as error:
            self.notify(str(error), title="Not done", severity="error", timeout=15)
            return
        finally:
            self.view.invalidate()
        self.view.clear_selection()
        done = "Trimmed" if trim else "Zeroed"
        self.notify(f"{done} {length} byte(s); journal entry #{entry}.")

    def action_compare(self) -> None:
        from nbdtui.tui.dialogs.compare_dialog import CompareDialog

        def chosen(text: str | None) -> None:
            if text is not None:
                self._compare(text)

        self.app.push_screen(CompareDialog(), chosen)

    @work(group="compare-open", exclusive=True, exit_on_error=False)
    async def _compare(self, text: str) -> None:
        """Open the other side, show the compare screen, close the other side after."""
        from nbdtui.tui.screens.compare import CompareScreen, open_side

        try:
            async with open_side(text) as other:
                screen = CompareScreen(
                    self.export,
                    other,
                    edits=self.edits,
                    writable=self.writable,
                    labels=(self.export.name or "(default export)", text),
                    sector_size=self.view.sector_size,
                )
                await self.app.push_screen_wait(screen)
        except (NbdError, OSError) as error:
            self.notify(str(error), title="Compare", severity="error")
        self.view.refresh()
        self._refresh_status()

    def action_journal(self) -> None:
        try:
            entries = [
                e
                for e in self.journal.entries(endpoint_of(self.export), limit=200)
                if e.export == self.export.name
            ]
        except (NbdError, OSError) as error:
            self.notify(str(error), title="Journal", severity="error")
            return
        self.app.push_screen(JournalDialog(entries), self._journal_chosen)

    def _journal_chosen(self, entry_id: int | None) -> None:
        if entry_id is None or not self._check_can_write():
            return
        try:
            entry = self.journal.get(entry_id)
        except (NbdError, OSError) as error:
            self.notify(str(error), title="Journal", severity="error")
            return
        ranges = [EditRange(r.offset, r.new, r.old) for r in entry.ranges]
        dialog = ReviewDialog(
            ranges,
            self.view.sector_size,
            self._target(),
            title=f"Revert journal entry #{entry_id} ({entry.state})?",
            note="Ranges that no longer hold these 'old' bytes stop the revert; "
            "the revert is journaled too.",
        )
        self.app.push_screen(dialog, on_yes(lambda: self._do_revert(entry_id, False)))

    @work(group="write", exclusive=True, exit_on_error=False)
    async def _do_revert(self, entry_id: int, force: bool) -> None:
        try:
            await revert(self.export, self.journal, entry_id, force=force)
        except ConflictError as error:
            if not force and "no longer" in str(error):
                self.app.push_screen(
                    ConfirmDialog("Revert anyway?", str(error), "Revert anyway", "Cancel"),
                    on_yes(lambda: self._do_revert(entry_id, True)),
                )
            else:
                self.notify(str(error), title="Not reverted", severity="error", timeout=15)
            return
        except (NbdError, OSError) as error:
            self.notify(str(error), title="Revert failed", severity="error", timeout=15)
            return
        finally:
            self.view.invalidate()
        self._load_partitions()
        self.notify(f"Reverted journal entry #{entry_id}.")

    # ---- leaving ------------------------------------------------------------------

    def action_escape(self) -> None:
        if self._writing():
            assert self._write_worker is not None
            self._write_worker.cancel()
        elif self._search_worker is not None and self._search_worker.is_running:
            self._search_worker.cancel()
            self._search_state = ""
            self._refresh_status()
            self.notify("Search stopped.")
        elif self.view.selection is not None:
            self.view.clear_selection()
        elif self.writable:
            self._leave_write_mode()
        else:
            self.leave()

    def leave(self) -> None:
        """Close the editor, asking first when edits are pending."""
        if not self.edits:
            self.dismiss(None)
            return
        self._ask_discard("Close the editor?", on_yes(lambda: self.dismiss(None)))
