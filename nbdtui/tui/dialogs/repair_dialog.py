"""``R`` in the hex editor: the structure under the cursor, its checks and backups, and
the repairs that can be staged as pending edits."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nbdtui.disk.structures.model import Structure
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape

ACTIONS = (
    ("restore-backup", "Restore from the backup copy"),
    ("fix-checksums", "Recompute the checksums"),
)


class RepairDialog(ModalScreen[str | None]):
    """The structure's checks and backups; Enter stages the chosen repair."""

    DEFAULT_CSS = (
        dialog_css("RepairDialog")
        + """
    RepairDialog > Vertical { width: 96; }
    RepairDialog OptionList { height: auto; }
    RepairDialog .problem { color: $warning; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, structure: Structure) -> None:
        super().__init__()
        self.structure = structure

    def compose(self) -> ComposeResult:
        s = self.structure
        title = f"{s.name or s.type} at {s.at} (0x{s.at:x})"
        if s.label:
            title += f", label {s.label!r}"
        with Vertical():
            yield Label(escape(title), classes="title")
            for c in s.checks:
                values = f": stored {c.stored}, computed {c.computed}" if c.computed else ""
                state = "ok" if c.ok else "FAILED"
                yield Label(escape(f"{c.name} {state}{values}"), classes="" if c.ok else "problem")
            for b in s.backups:
                state = "matches" if b.matches else "differs: " + ", ".join(b.differences)
                sound = "" if b.sound else " (fails its own checks)"
                yield Label(escape(f"backup {b.label} at 0x{b.at:x}: {state}{sound}"))
            if not s.backups:
                yield Label("No backup copy.")
            yield OptionList(*(Option(text, id=action) for action, text in ACTIONS))
            yield Label(
                "Enter stages the repair as pending edits: Ctrl+S reviews and writes them",
                classes="hint",
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
