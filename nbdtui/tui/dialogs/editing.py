"""Modal dialogs of the hex editor: goto, search, confirm, review, partitions, journal.

Every dialog closes with Escape and returns ``None`` (or ``False``) then; errors in what
was typed show under the input and keep the dialog open. Text from the export or the
server is escaped before it reaches markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from nbdtui.editor.edits import EditRange
from nbdtui.editor.search import parse_pattern
from nbdtui.errors import PatternError
from nbdtui.present.sizes import format_size
from nbdtui.tui.dialogs.confirm import escape_markup as escape

_CSS = """
{name} {{ align: center middle; background: $background 60%; }}
{name} > Vertical {{
    width: 76; max-width: 100%; height: auto; max-height: 90%;
    border: thick $accent; background: $surface; padding: 0 1;
}}
{name} .title {{ text-style: bold; width: 1fr; }}
{name} .error {{ color: $error; height: auto; }}
{name} .hint {{ color: $text-muted; }}
{name} Horizontal {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 2; }}
"""


_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))


def hex_bytes(data: bytes) -> str:
    return data.hex(" ")


def dump(data: bytes) -> str:
    """Hex bytes then their text, padded so that the text columns line up."""
    return f"{hex_bytes(data):<47}  |{data.translate(_PRINTABLE).decode()}|"


class GotoDialog(ModalScreen[int | None]):
    """Ctrl+G: type an offset; ``parse`` turns it into one or raises ValueError."""

    DEFAULT_CSS = _CSS.format(name="GotoDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, parse: Callable[[str], int], hint: str) -> None:
        super().__init__()
        self.parse = parse
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Go to offset", classes="title")
            yield Input(placeholder="0x1000, 4096, 64K, s2048, +s1, -16, end", id="goto-input")
            yield Label("", id="goto-error", classes="error")
            yield Label(escape(self.hint), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            offset = self.parse(event.value)
        except ValueError as error:
            self.query_one("#goto-error", Label).update(escape(str(error)))
            return
        self.dismiss(offset)


class SearchDialog(ModalScreen[tuple[bytes, str] | None]):
    """``/`` and ``?``: hex bytes or text; returns ``(pattern, what was typed)``."""

    DEFAULT_CSS = _CSS.format(name="SearchDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+t", "toggle_text", "Text/hex"),
    ]

    def __init__(self, backward: bool, last: str = "", text_mode: bool = False) -> None:
        super().__init__()
        self.backward = backward
        self.last = last
        self.text_mode = text_mode

    def compose(self) -> ComposeResult:
        direction = "backward" if self.backward else "forward"
        with Vertical():
            yield Label(f"Search {direction}", classes="title")
            yield Input(self.last, placeholder='de ad be ef, 0x55aa or "EFI PART"', id="find")
            yield Checkbox("Text (Ctrl+T)", self.text_mode, id="search-text")
            yield Label("", id="search-error", classes="error")
            yield Label(
                "Searches the export's bytes, not pending edits. n / N repeat; "
                "Esc stops a running search.",
                classes="hint",
            )

    def action_toggle_text(self) -> None:
        box = self.query_one("#search-text", Checkbox)
        box.value = not box.value

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text_mode = self.query_one("#search-text", Checkbox).value
        try:
            pattern = parse_pattern(event.value, text_mode=text_mode)
        except PatternError as error:
            self.query_one("#search-error", Label).update(escape(str(error)))
            return
        self.dismiss((pattern, ("t:" if text_mode else "x:") + event.value))


class ConfirmDialog(ModalScreen[bool]):
    """A question with a yes button and a no button; ``No`` has the focus."""

    DEFAULT_CSS = _CSS.format(name="ConfirmDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(False)", "No"),
        Binding("n", "dismiss(False)", "No", show=False),
        Binding("y", "dismiss(True)", "Yes", show=False),
    ]

    def __init__(self, title: str, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.title_text, self.question, self.yes, self.no = title, question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(escape(self.title_text), classes="title")
            yield Static(escape(self.question), id="confirm-text")
            with Horizontal():
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button(f"{self.no} (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


def review_text(ranges: Sequence[EditRange], sector_size: int) -> str:
    """Old and new bytes of every range, 16 a line, the changed bytes under each other."""
    lines = []
    for r in ranges:
        sector = r.offset // sector_size
        lines.append(
            f"0x{r.offset:x} ({r.offset}), sector {sector} +{r.offset % sector_size}: "
            f"{r.length} byte{'s' if r.length != 1 else ''}"
        )
        for pos in range(0, r.length, 16):
            lines.append(f"  old {dump(r.old[pos : pos + 16])}")
            lines.append(f"  new {dump(r.new[pos : pos + 16])}")
    return "\n".join(lines)


class ReviewDialog(ModalScreen[bool]):
    """Ctrl+S: every changed range with its old and new bytes; writes only on ``y``."""

    DEFAULT_CSS = (
        _CSS.format(name="ReviewDialog")
        + """
    ReviewDialog > Vertical { width: 84; }
    ReviewDialog #review-ranges { height: auto; max-height: 20; border: round $panel; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(False)", "Cancel"),
        Binding("n", "dismiss(False)", "Cancel", show=False),
        Binding("y", "dismiss(True)", "Write", show=False),
    ]

    def __init__(
        self,
        ranges: Sequence[EditRange],
        sector_size: int,
        target: str,
        title: str = "",
        note: str = "The old bytes go to the undo journal first; J reverts later.",
    ) -> None:
        super().__init__()
        self.ranges, self.sector_size, self.target = ranges, sector_size, target
        self.title_text, self.note = title, note

    def compose(self) -> ComposeResult:
        total = sum(r.length for r in self.ranges)
        count = len(self.ranges)
        with Vertical():
            yield Label(
                self.title_text
                or f"Write {total} byte{'s' if total != 1 else ''} in {count} "
                f"range{'s' if count != 1 else ''}?",
                classes="title",
            )
            yield Label(escape(f"to {self.target}"), classes="hint")
            with VerticalScroll(id="review-ranges"):
                yield Static(review_text(self.ranges, self.sector_size), markup=False)
            yield Label(escape(self.note), classes="hint")
            with Horizontal():
                yield Button("Write (y)", id="yes", variant="error")
                yield Button("Cancel (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class PartitionDialog(ModalScreen[int | None]):
    """``p``: the partition table and its problems; Enter jumps to a partition."""

    DEFAULT_CSS = (
        _CSS.format(name="PartitionDialog")
        + """
    PartitionDialog > Vertical { width: 96; }
    PartitionDialog OptionList { height: auto; max-height: 16; }
    PartitionDialog .problem { color: $warning; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, table, message: str = "") -> None:
        super().__init__()
        self.table = table
        self.message = message

    def compose(self) -> ComposeResult:
        table = self.table
        with Vertical():
            if table is None:
                yield Label("Partitions", classes="title")
                yield Label(escape(self.message or "No MBR or GPT partition table found."))
                return
            title = f"{table.scheme.upper()} partition table, {table.sector_size}-byte sectors"
            if table.disk_id:
                title += f", disk {table.disk_id}"
            yield Label(escape(title), classes="title")
            for problem in table.problems:
                yield Label(escape(f"⚠ {problem}"), classes="problem")
            options = [Option(self._row(p), id=str(p.start)) for p in table.partitions]
            if options:
                yield OptionList(*options, id="partitions")
                yield Label("Enter jumps to the first sector of a partition", classes="hint")
            else:
                yield Label("The table lists no partitions.")

    @staticmethod
    def _row(p) -> str:
        name = f"  {p.name!r}" if p.name else ""
        return escape(
            f"{p.index:>3}  {p.type_name:<22.22}  sectors {p.first_lba:>10}–{p.last_lba:<10}"
            f"  {format_size(p.size):>10}{name}"
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))


class JournalDialog(ModalScreen[int | None]):
    """``J``: the journal entries of this export; Enter picks one to revert."""

    DEFAULT_CSS = (
        _CSS.format(name="JournalDialog")
        + """
    JournalDialog > Vertical { width: 96; }
    JournalDialog OptionList { height: auto; max-height: 16; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, entries: Sequence) -> None:
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
    def _row(e) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.created))
        note = f"  {e.note}" if e.note else ""
        return escape(
            f"#{e.id:<5} {when}  {e.state:<8}  {e.range_count} range(s), {e.byte_count} B{note}"
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))
