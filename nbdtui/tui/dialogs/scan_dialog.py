"""``S`` in the hex editor: scan the whole export for filesystems and volumes (after a
partition table was wiped, say) and jump to one with Enter."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nbdtui.disk.structures.model import Structure
from nbdtui.editor.signature_scan import Scannable, data_ranges, scan
from nbdtui.errors import NbdError
from nbdtui.present.sizes import format_size
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class ScanDialog(ModalScreen[int | None]):
    """The structures ``nbdtui scan`` finds, one a line; Enter jumps to its start.
    Escape closes the dialog, and stops a scan still running."""

    DEFAULT_CSS = dialog_css("ScanDialog", width=110, list_height=16)
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, export: Scannable) -> None:
        super().__init__()
        self.export = export
        self.found: list[Structure] | None = None  # None while the scan runs

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Filesystems and volumes on the export", classes="title")
            yield Label(
                f"Scanning {format_size(self.export.size)} (holes skipped)…", id="scan-status"
            )
            yield OptionList(id="scan-found")
            yield Label("Enter jumps to the start of a filesystem or volume", classes="hint")

    def on_mount(self) -> None:
        self._scan()

    @work(group="scan", exclusive=True, exit_on_error=False)
    async def _scan(self) -> None:
        status = self.query_one("#scan-status", Label)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            status.update(f"Scanning… {format_size(done)} of {format_size(total)} read")

        try:
            ranges = await data_ranges(self.export)
            total = sum(hi - lo for lo, hi in ranges)
            result = await scan(self.export, ranges, advance)
        except NbdError as exc:
            status.update(escape(f"The scan stopped: {exc}"))
            status.add_class("error")
            return
        self.found = found = result.structures
        options = self.query_one("#scan-found", OptionList)
        options.add_options([Option(self._row(s), id=str(s.offset)) for s in found])
        bad = result.unreadable
        note = f"; {format_size(sum(hi - lo for lo, hi in bad))} could not be read" if bad else ""
        if found:
            status.update(f"{len(found)} found{note}")
            options.highlighted = 0
            options.focus()
        else:
            status.update(f"No filesystem or volume signature found{note}.")

    @staticmethod
    def _row(s: Structure) -> str:
        size = format_size(s.size) if s.size else "?"
        label = f"{s.label!r}" if s.label else ""
        damaged = "  ⚠ " + "; ".join(s.problems) if s.problems else ""
        return escape(f"{s.offset:>14}  {s.type:<17}  {size:>10}  {label:<18} {s.uuid}{damaged}")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.dismiss(int(event.option.id))
