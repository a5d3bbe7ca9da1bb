"""Every match of a search (Ctrl+L in the search dialog): a list to jump through."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape


class MatchesDialog(ModalScreen[int | None]):
    """The offsets of the matches, each with its sector and where it is; Enter jumps to
    one."""

    DEFAULT_CSS = dialog_css("MatchesDialog", width=96, list_height=20)
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(
        self,
        what: str,
        hits: Sequence[int],
        more: bool,
        where: Callable[[int], str],
        current: int | None = None,
    ) -> None:
        super().__init__()
        self.what, self.hits, self.more, self.where = what, hits, more, where
        self.current = current

    def compose(self) -> ComposeResult:
        count = len(self.hits)
        title = f"{count}{'+' if self.more else ''} match{'' if count == 1 else 'es'} of "
        with Vertical():
            yield Label(escape(title + self.what), classes="title")
            if not self.hits:
                yield Label("Nothing found in the export.")
                return
            yield OptionList(
                *(Option(escape(self._row(o)), id=str(o)) for o in self.hits), id="matches"
            )
            hint = "Enter jumps to a match"
            if self.more:
                hint += f"; only the first {count} are listed"
            yield Label(hint, classes="hint")

    def on_mount(self) -> None:
        current = self.current
        if current is not None and current in self.hits:
            self.query_one(OptionList).highlighted = list(self.hits).index(current)

    def _row(self, offset: int) -> str:
        where = self.where(offset)
        return f"0x{offset:012x}  {offset:>15}  {where}"

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.dismiss(int(event.option.id))
