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
from textual.widgets import Header, Static
from textual.worker import Worker

from nbdtui.disk.inspect import inspect
from nbdtui.disk.partitions import read_partition_table_async, run_plan_async
from nbdtui.disk.structures.lookup import StructureIndex
from nbdtui.disk.structures.survey import block_reader, survey_plan
from nbdtui.editor.block_status import WINDOW, BlockStatus, describe
from nbdtui.editor.clip_formats import render
from nbdtui.editor.commit import check_undoable, commit, endpoint_of, revert, zero_range
from nbdtui.editor.edits import EditRange, PendingEdits
from nbdtui.editor.extents import next_data, previous_data
from nbdtui.editor.follow import targets
from nbdtui.editor.inspector_layout import inspector_lines
from nbdtui.editor.jumps import JumpList
from nbdtui.editor.repair_staging import stage_repair
from nbdtui.editor.search import Query, find, find_all
from nbdtui.errors import ConflictError, NbdError
from nbdtui.present.offsets import HELP as GOTO_HELP
from nbdtui.present.offsets import parse_alignment, parse_goto
from nbdtui.present.sizes import format_size
from nbdtui.present.terminal_text import terminal_text
from nbdtui.proto.constants import BASE_ALLOCATION
from nbdtui.tui import collector
from nbdtui.tui.dialogs.bookmark_dialog import BookmarkDialog
from nbdtui.tui.dialogs.confirm import ConfirmDialog
from nbdtui.tui.dialogs.copy_dialog import CopyDialog
from nbdtui.tui.dialogs.follow_dialog import FollowDialog
from nbdtui.tui.dialogs.goto_dialog import GotoDialog
from nbdtui.tui.dialogs.journal_dialog import JournalDialog
from nbdtui.tui.dialogs.matches_dialog import MatchesDialog
from nbdtui.tui.dialogs.partition_dialog import PartitionDialog
from nbdtui.tui.dialogs.review_dialog import ReviewDialog
from nbdtui.tui.dialogs.search_dialog import SearchDialog
from nbdtui.tui.dialogs.structure_dialog import Choice, StructureDialog
from nbdtui.tui.screens.editor_transfers import copied_bytes, load_dialog, save_dialog
from nbdtui.tui.widgets.footer import SteadyFooter
from nbdtui.tui.widgets.hexview import HEX_PANE, HexView

if TYPE_CHECKING:
    from nbdtui.client.export import Export
    from nbdtui.disk.partitions import Partition, PartitionTable
    from nbdtui.disk.structures.model import Structure
    from nbdtui.editor.bookmarks import Bookmarks
    from nbdtui.editor.journal import Journal

# How long a jump from a dialog (Ctrl+G...) holds its first frame, at most, for the bytes
# it shows (see EditorScreen._goto_chosen); a slower read lands behind placeholders.
JUMP_FRAME_WAIT = 0.05

# Columns the inspector needs beside the hex view (its border, padding, names and values).
_INSPECTOR_WIDTH = 34

# The footer's keys in each mode, most important first: those that fit the width are shown
# (the first ones fit in 80 columns); the others still work, and F1 lists them all.
_FOOTER_READ_ONLY = ("f1", "e", "ctrl+g", "slash", "i", "p", "escape", "tab", "f2", "f3", "q")
_FOOTER_WRITE = ("f1", "ctrl+s", "ctrl+z", "tab", "ctrl+g", "slash", "escape", "i", "p", "f2")

# Actions bound to keys that type a byte in write mode (hex digits / any character).
_HEX_PANE_TYPED = {"write_mode"}
_TEXT_PANE_TYPED = {
    *_HEX_PANE_TYPED,
    *("search", "search_again", "inspector", "partitions", "mark", "zero", "trim"),
    *("journal", "reload", "follow", "copy_as", "structure", "scan"),
}

# What the footer calls Esc while it does something else than going back (F1 says more).
_FOOTER_SHORT = {"Cancel the write": "Cancel write", "Stop the search": "Stop search"}

# F1 says where a key means something else than in hexedit, HxD or ImHex.
KEY_NOTES = (
    "Unlike hexedit/HxD/ImHex: Ctrl+S writes the pending edits after a review (it saves "
    "no file); Ctrl+E saves bytes to a local file (HxD: select block); Ctrl+L loads one "
    "as pending edits (hexedit: redraw); F3 finds the next match, as in HxD (switch "
    "exports with Ctrl+P, Switch export); Ctrl+T changes the sector size; Home/End go "
    "to the start/end of the export, like Ctrl+Home/End."
)


def on_yes(action: Callable[[], object]) -> Callable[[bool | None], None]:
    """A dialog's callback that runs ``action`` when the answer is yes."""

    def answered(yes: bool | None) -> None:
        if yes:
            action()

    return answered


class EditorScreen(Screen[None]):
    """Hex view, inspector, overlays and status line for one open export."""

    KEY_NOTES = KEY_NOTES
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
        Binding("ctrl+f", "find", "Search"),
        Binding("question_mark", "search(True)", "Search backward", show=False),
        Binding("n", "search_again(False)", "Next match", show=False),
        Binding("f3", "find_next", "Next match", show=False),
        Binding("N", "search_again(True)", "Previous match", show=False),
        Binding("shift+f3", "find_previous", "Previous match", show=False),
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
        Binding("home,ctrl+home", "home", "Start of export", show=False),
        Binding("end,ctrl+end", "end", "End of export", show=False),
        Binding("tab", "switch_pane", "Hex/text"),
        Binding("right_square_bracket", "extent(True)", "Next data extent", show=False),
        Binding("left_square_bracket", "extent(False)", "Previous data extent", show=False),
        Binding("i", "inspector", "Inspector"),
        Binding("ctrl+down", "scroll_inspector(1)", "Inspector: scroll down", show=False),
        Binding("ctrl+up", "scroll_inspector(-1)", "Inspector: scroll up", show=False),
        Binding("o", "follow", "Follow the value at the cursor", show=False),
        Binding("ctrl+b", "bookmarks", "Bookmarks"),
        Binding("ctrl+o,ctrl+left", "jump_back", "Jump back", show=False),
        Binding("ctrl+k,ctrl+right", "jump_forward", "Jump forward", show=False),
        Binding("p", "partitions", "Partitions"),
        Binding("R", "structure", "Structure here: fields, backups, repairs", show=False),
        Binding("S", "scan", "Scan for filesystems", show=False),
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
        Binding("y", "copy_as", "Copy as hex, text or a C array", show=False),
        Binding("ctrl+e", "save_file", "Save bytes to a local file", show=False),
        Binding("ctrl+l", "load_file", "Load a local file as pending edits", show=False),
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
        self,
        export: Export,
        *,
        journal: Journal | None = None,
        sector_size: int = 512,
        bookmarks: Bookmarks | None = None,
    ) -> None:
        super().__init__()
        self.export = export
        self._journal = journal
        self.bookmarks = bookmarks
        self.jumps = JumpList()
        self.block_status = BlockStatus(export.size)
        self._block_status_window: int | None = None  # the window being asked about
        # Without base:allocation every byte would read as "data": say nothing instead.
        self._block_status_failed = not self._has_block_status()
        self.edits = PendingEdits()
        self.writable = False
        self.table: PartitionTable | None = None
        self.table_message = "reading the partition table…"
        self._starts: list[int] = []
        self.structures = StructureIndex()  # filesystems found, for names of fields
        self._search: Query | None = None
        self._search_worker: Worker[None] | None = None
        self._search_state = ""
        self._busy = ""
        self._write_worker: Worker[None] | None = None
        self._was_reconnecting = False
        self._pane = HEX_PANE
        self._sector_size = sector_size
        name = terminal_text(export.name) if export.name else "(default export)"
        self.title = f"{name} · {format_size(export.size)}"
        endpoint = getattr(export, "endpoint", None)
        self.sub_title = terminal_text(getattr(endpoint, "display", "") or "")

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
        yield SteadyFooter(show_command_palette=False)  # Ctrl+P works, F1 lists it

    @property
    def view(self) -> HexView:
        return self.query_one(HexView)

    def on_mount(self) -> None:
        if not self.query(HexView):
            # The app is closing as this screen mounts (Ctrl+Q right after an export
            # opened): its widgets are gone already, and there is nothing to start.
            return
        self.view.focus()
        self.view.request_blocks()
        self._load_partitions()
        self._refresh_status()
        self.set_interval(0.5, self._watch_connection)
        self.call_after_refresh(collector.freeze)  # see nbdtui.tui.collector

    def on_unmount(self) -> None:
        collector.thaw()  # this screen's objects can be freed now

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
            if active is None or self.key_types(key):
                continue  # q types in the text pane: no "q Quit" there
            now = _FOOTER_SHORT.get(self.describe_key(key) or "")
            if now:  # the footer's Esc says "Back" unless it stops a write or a search
                active = active._replace(
                    binding=dataclasses.replace(active.binding, description=now)
                )
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

    def describe_key(self, key: str) -> str | None:
        """What ``key`` does at this moment, when that differs from its binding's
        description (F1 and the footer show it): Esc does the first thing that applies."""
        if key != "escape":
            return None
        if self._writing():
            return "Cancel the write"
        if self._search_worker is not None and self._search_worker.is_running:
            return "Stop the search"
        if self.is_mounted and self.view.selection is not None:
            return "Clear the selection"
        if self.writable:
            return "Leave write mode"
        return None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A write or a search starts or ends: Esc means something else now."""
        if event.worker.group in ("write", "search"):
            self.refresh_bindings()

    def has_pending_edits(self) -> bool:
        return bool(self.edits)

    def pending_edits(self) -> int:
        """Pending bytes (the export list and F3 show the count)."""
        return len(self.edits)

    def goto(self, offset: int) -> None:
        """Put the cursor on ``offset`` (the app shell calls this)."""
        self.jump_to(offset)

    def jump_to(self, offset: int) -> None:
        """Move the cursor to ``offset`` as a jump: Ctrl+O comes back."""
        self.jumps.record(self.view.cursor, offset)
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
        return f"p{part.index} {terminal_text(part.name) if part.name else part.type_name}"

    def _header_label(self, sector: int) -> str:
        size = self.view.sector_size
        names = self.structures.names_in(sector * size, (sector + 1) * size)
        part = self.partition_at(sector * size)
        if part is not None:
            first = part.start == sector * size
            names.insert(0, f"{'start of ' if first else ''}{self._part_name(part)}")
        return " · ".join(names)

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
        allocation = self._allocation_at(cur)
        if allocation:
            parts.append(allocation)
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
        place = self.structures.place_at(cur)
        if place is not None:
            parts.append(place.describe())
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
        stacked = self.query_one("#editor-body").has_class("stacked")
        lines = [f"at 0x{view.cursor:x}"] + ([] if stacked else [""])  # stacked: no room
        if data is None:
            lines.append("connection lost" if view.fetch_lost else "loading…")
        else:
            room = self.query_one("#inspector-fields").size.width or 30
            # A value decoded from the export's bytes (text among them) is shown safe.
            fields = [
                dataclasses.replace(f, value=terminal_text(f.value, backslash=False))
                for f in inspect(data)
            ]
            lines += inspector_lines(fields, room, cell_len)
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
        self._load_structures()

    @work(group="structures", exclusive=True, exit_on_error=False)
    async def _load_structures(self) -> None:
        """The filesystems on the export, to name sectors and fields (in the background)."""
        read = block_reader(self.export.read, self.export.size)
        try:
            survey = await run_plan_async(survey_plan(self.export.size), read)
        except Exception:  # a read error: the editor works on without the names
            return
        self.structures = StructureIndex(survey)
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
        self.jump_to(0)

    def action_end(self) -> None:
        self.jump_to(self.export.size - 1)

    def action_switch_pane(self) -> None:
        self.view.switch_pane()

    def action_mark(self) -> None:
        self.view.toggle_mark()

    def action_copy(self) -> None:
        """Ctrl+C: the selection (else the byte under the cursor) to the clipboard, as
        hex bytes from the hex pane, as text (``.`` for non-printables) from the text pane."""
        self._copy("hex" if self.view.pane == HEX_PANE else "text")

    def action_copy_as(self) -> None:
        """``y``: the same bytes, in a format chosen in a dialog (hex, text, C array)."""
        lo, hi = self.view.selection or (self.view.cursor, self.view.cursor)
        what = f"{hi - lo + 1} byte{'' if hi == lo else 's'} at 0x{lo:x}"
        self.app.push_screen(CopyDialog(what), self._copy)

    def _copy(self, kind: str | None) -> None:
        if kind is None:
            return
        got = copied_bytes(self.view)
        if isinstance(got, str):
            self.notify(got, severity="warning")
            return
        offset, data = got
        self.app.copy_to_clipboard(render(kind, data, offset))
        shown_as = {"hex": "hex", "text": "text", "c": "a C array"}[kind]
        self.notify(f"Copied {len(data)} byte{'' if len(data) == 1 else 's'} as {shown_as}.")

    def action_save_file(self) -> None:
        self.app.push_screen(save_dialog(self.export, self.edits, self.view), self._file_done)

    def action_load_file(self) -> None:
        if not self.writable:
            self.notify("Enter write mode (e) first: a loaded file becomes pending edits.")
            return
        self.app.push_screen(load_dialog(self.export, self.edits, self.view), self._file_done)

    def _file_done(self, message: str | None) -> None:
        if message:
            self.notify(message)
            self._refresh_status()

    def action_goto(self) -> None:
        view = self.view

        def parse(text: str) -> int:
            return parse_goto(
                text, cursor=view.cursor, size=self.export.size, sector_size=view.sector_size
            )

        hint = f"{GOTO_HELP}; sectors are {view.sector_size} bytes"
        self.app.push_screen(GotoDialog(parse, hint), self._goto_chosen)

    async def _goto_chosen(self, offset: int | None) -> None:
        """A dialog's jump (Ctrl+G, a match, a bookmark, a pointer followed): its first
        frame waits, a little, for the bytes it shows.

        Textual draws at most one frame per 1/60 s. A frame drawn with placeholders as
        the dialog closed made the bytes, read a millisecond later, wait for the next
        frame or the one after (40-50 ms from Enter). So the jump is made at once (keys
        typed after Enter move from the target), but no frame is drawn until the
        blocks on screen are read or JUMP_FRAME_WAIT has passed (then placeholders, as
        before). Nothing blocks: the hex view's worker reads, this only awaits it.
        """
        if offset is None:
            return
        self.jump_to(offset)
        view = self.view
        if view.in_flight:
            with self.app.batch_update():
                await view.loaded(JUMP_FRAME_WAIT)
            self.check_idle()

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
            self.jump_to(found)

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
        self._forget_block_status()
        self._load_partitions()

    # ---- search -------------------------------------------------------------------

    def action_search(self, backward: bool) -> None:
        def read_alignment(text: str) -> tuple[int, int] | None:
            return parse_alignment(text, sector_size=self.view.sector_size)

        dialog = SearchDialog(backward, read_alignment, self._search)
        self.app.push_screen(dialog, lambda query: self._search_chosen(query, backward))

    def action_find(self) -> None:
        self.action_search(False)

    def action_find_next(self) -> None:
        self.action_search_again(False)

    def action_find_previous(self) -> None:
        self.action_search_again(True)

    def _search_chosen(self, query: Query | None, backward: bool) -> None:
        if query is None:
            return
        self._search = query
        if query.list_all:
            self._search_worker = self._run_find_all(query)
        else:
            self._start_search(backward)

    def action_search_again(self, backward: bool) -> None:
        if self._search is None:
            self.notify("Nothing to repeat: search with /, ? or Ctrl+F first.")
            return
        self._start_search(backward)

    def _start_search(self, backward: bool) -> None:
        if self._search is None:
            return
        cursor = self.view.cursor
        start = cursor - 1 if backward else cursor + 1
        self._search_worker = self._run_search(self._search, start, backward)

    def _search_progress(self) -> Callable[[int, int], None]:
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
        return progress

    def _match_place(self, offset: int) -> str:
        """Where a match is, for the list of matches: sector, and partition."""
        ss = self.view.sector_size
        part = self.partition_at(offset)
        where = f"sector {offset // ss} +{offset % ss}"
        return f"{where}  {self._part_name(part)}" if part else where

    @work(group="search", exclusive=True, exit_on_error=False)
    async def _run_find_all(self, query: Query) -> None:
        progress = self._search_progress()
        try:
            hits, more = await find_all(
                self.export, query.pattern.data, align=query.align, progress=progress
            )
        except NbdError as error:
            self.notify(str(error), title="Search failed", severity="error")
            return
        finally:
            self._search_state = ""
            self._refresh_status()
        dialog = MatchesDialog(query.describe(), hits, more, self._match_place, self.view.cursor)
        self.app.push_screen(dialog, self._goto_chosen)

    @work(group="search", exclusive=True, exit_on_error=False)
    async def _run_search(self, query: Query, start: int, backward: bool) -> None:
        began = time.monotonic()
        progress = self._search_progress()
        pattern = query.pattern.data
        try:
            hit = await find(
                self.export,
                pattern,
                start,
                backward=backward,
                align=query.align,
                progress=progress,
            )
        except NbdError as error:
            self.notify(str(error), title="Search failed", severity="error")
            return
        finally:
            self._search_state = ""
            self._refresh_status()
        what = query.describe()
        if hit is None:
            way = "before" if backward else "after"
            self.notify(f"Not found {way} 0x{self.view.cursor:x}: {what}.", title="Search")
            return
        self.jump_to(hit)
        self.view.select_from = hit + len(pattern) - 1
        self.view.refresh()
        took = time.monotonic() - began
        self.notify(f"Found at 0x{hit:x} ({took:.1f} s): {what}.", title="Search")

    # ---- panels -------------------------------------------------------------------

    def action_inspector(self) -> None:
        self.query_one("#inspector").toggle_class("shown")
        self._refresh_inspector()
        self.call_after_refresh(self._refresh_inspector)  # laid out: its width is known

    def action_scroll_inspector(self, lines: int) -> None:
        box = self.query_one("#inspector", VerticalScroll)
        if box.has_class("shown"):
            box.scroll_relative(y=lines * 3, animate=False)
        else:
            self.notify("The inspector is hidden: i shows it.")

    def action_partitions(self) -> None:
        dialog = PartitionDialog(self.table, self.table_message, self.structures.summary)
        self.app.push_screen(dialog, self._part_chosen)

    def action_structure(self) -> None:
        structure = self.structures.structure_at(self.view.cursor)
        if structure is None:
            self.notify("No filesystem, volume or partition table is known here.")
            return

        def chosen(choice: Choice | None) -> None:
            if choice is None:
                return
            kind, value = choice
            if kind == "jump":
                self.jump_to(int(value))
            elif not self.writable:
                self.notify("Enter write mode (e) first: a repair is staged as pending edits.")
            else:
                self._stage_repair(structure, value)

        self.app.push_screen(StructureDialog(structure), chosen)

    @work(group="repair", exclusive=True, exit_on_error=False)
    async def _stage_repair(self, structure: Structure, action: str) -> None:
        try:
            ranges, count = await stage_repair(structure, action, self.export, self.edits)
        except NbdError as error:  # the repair cannot be made: nothing staged
            self.notify(str(error), title="Nothing staged", severity="error")
            return
        self.view.refresh()
        self._refresh_status()
        if ranges:
            self.notify(f"Staged {count} byte(s) in {ranges} range(s): Ctrl+S reviews them.")
        else:
            self.notify("Nothing to change.")

    def action_scan(self) -> None:
        from nbdtui.tui.dialogs.scan_dialog import ScanDialog  # (loads every decoder)

        dialog = ScanDialog(self.export)

        def chosen(offset: int | None) -> None:
            if dialog.found:  # what the survey missed gets names and repairs too
                self.structures = self.structures.with_found(dialog.found)
                self.view.refresh()
            self._part_chosen(offset)

        self.app.push_screen(dialog, chosen)

    def _part_chosen(self, offset: int | None) -> None:
        if offset is not None:
            self.jump_to(offset)

    # ---- jump list, bookmarks, follow, block status --------------------------------

    def action_jump_back(self) -> None:
        self._jump_or_say(
            self.jumps.back(self.view.cursor), "No earlier place: Ctrl+O goes back after a jump."
        )

    def action_jump_forward(self) -> None:
        self._jump_or_say(self.jumps.forward(self.view.cursor), "Nothing to go forward to.")

    def _jump_or_say(self, place: int | None, nowhere: str) -> None:
        if place is None:
            self.notify(nowhere)
        else:
            self.view.jump(place)

    def action_bookmarks(self) -> None:
        if self.bookmarks is None:
            self.notify("Bookmarks are not available: their database could not be opened.")
            return
        dialog = BookmarkDialog(
            self.bookmarks, endpoint_of(self.export), self.view.cursor, self.view.sector_size
        )
        self.app.push_screen(dialog, self._goto_chosen)

    def action_follow(self) -> None:
        view = self.view
        data = view.bytes_at(view.cursor, 16)
        if data is None:
            self.notify("The bytes at the cursor are not loaded yet.")
            return
        found = targets(inspect(data), self.export.size, view.sector_size)
        if not found:
            self.notify(f"No integer at 0x{view.cursor:x} points inside this export.")
            return
        self.app.push_screen(FollowDialog(view.cursor, found), self._goto_chosen)

    def _allocation_at(self, offset: int) -> str:
        """``data``, ``zero`` or ``hole`` at ``offset`` ("" until the server answered)."""
        span = self.block_status.at(offset)
        if span is not None:
            return describe(span)
        window = offset - offset % WINDOW
        if not self._block_status_failed and self._block_status_window != window:
            self._block_status_window = window
            self._load_block_status(offset)
        return ""

    @work(group="block-status", exclusive=True, exit_on_error=False)
    async def _load_block_status(self, offset: int) -> None:
        try:
            await self.block_status.load(self.export, offset)
        except NbdError:
            self._block_status_failed = True  # not asked again until a reload
            return
        finally:
            self._block_status_window = None
        self._refresh_status()

    def _has_block_status(self) -> bool:
        return self.export.negotiated.context_id(BASE_ALLOCATION) is not None

    def _forget_block_status(self) -> None:
        self.block_status.forget()
        self._block_status_failed = not self._has_block_status()
        self._refresh_status()

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
            "Typed bytes will only change what this editor shows: nothing you type is "
            f"written to {self._target()} until you review every change and confirm it "
            "with Ctrl+S. Z (zero), T (trim) and J (revert a journal entry) are not staged: "
            "each writes as soon as you confirm its own question. Every write keeps the "
            "old bytes in the undo journal first."
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
        name = terminal_text(self.export.name) if self.export.name else "(default export)"
        return f"{name} at {terminal_text(endpoint_of(self.export))}"

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
            self._forget_block_status()
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
            "This writes to the export as soon as you confirm (it is not staged for "
            "Ctrl+S); the old bytes go to the undo journal first."
        )
        if trim:
            question += " After a trim the export may read back anything."
        self.app.push_screen(
            ConfirmDialog(f"{what} {length} bytes now?", question, f"{what} now", "Cancel"),
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
            self._forget_block_status()
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
        from nbdtui.tui.screens.diff_view import CompareScreen, open_side

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
            note="Confirming writes these ranges now (not staged for Ctrl+S). Ranges that "
            "no longer hold these 'old' bytes stop the revert; the revert is journaled too.",
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
            self._forget_block_status()
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
