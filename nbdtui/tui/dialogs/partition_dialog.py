"""``p`` in the hex editor: the partition table and its problems."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nbdtui.disk.partitions import Partition, PartitionTable
from nbdtui.present.sizes import format_size
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class PartitionDialog(ModalScreen[int | None]):
    """``p``: the partition table and its problems; Enter jumps to a partition."""

    DEFAULT_CSS = dialog_css("PartitionDialog", width=96, list_height=16)
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(
        self,
        table: PartitionTable | None,
        message: str = "",
        filesystem: Callable[[int], str] | None = None,
    ) -> None:
        super().__init__()
        self.table = table
        self.message = message
        #: The filesystem of the partition that starts at a byte offset ("ext4 'root'").
        self.filesystem = filesystem or (lambda start: "")

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
            options = [
                Option(self._row(p, self.filesystem(p.start)), id=str(p.start))
                for p in table.partitions
            ]
            if options:
                yield OptionList(*options, id="partitions")
                yield Label("Enter jumps to the first sector of a partition", classes="hint")
            else:
                yield Label("The table lists no partitions.")

    @staticmethod
    def _row(p: Partition, filesystem: str = "") -> str:
        name = f"  {p.name!r}" if p.name else ""
        row = (
            f"{p.index:>3}  {p.type_name:<22.22}  sectors {p.first_lba:>10}–{p.last_lba:<10}"
            f"  {format_size(p.size):>10}{name}"
        )
        row = escape(row)  # each line escaped on its own: the line break is ours
        if filesystem:  # a second line: what the partition holds
            row += f"\n     {escape(filesystem)}"
        return row

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.dismiss(int(event.option.id))
