"""``R`` in the hex editor: the structure under the cursor. Its checks, its backups and
how each compares with it (Enter jumps to one), its fields (offset, name, value; Enter on
one that locates something jumps there), and the repairs that can be staged as pending
edits."""

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
    ("restore-backup", "Repair: restore from the backup copy"),
    ("fix-checksums", "Repair: recompute the checksums"),
)

#: What the dialog returns: ("repair", action) or ("jump", offset).
Choice = tuple[str, str]


class StructureDialog(ModalScreen[Choice | None]):
    """A structure's checks, backups and fields; Enter stages a repair or follows a field."""

    DEFAULT_CSS = dialog_css("StructureDialog", width=110, list_height=20)
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
            if not s.backups:
                yield Label("No backup copy.")
            options = [Option(text, id=f"repair:{action}") for action, text in ACTIONS]
            for index, b in enumerate(s.backups):
                state = "matches" if b.matches else "differs: " + ", ".join(b.differences)
                sound = "" if b.sound else " (fails its own checks)"
                row = f"backup {b.label} at 0x{b.at:x}: {state}{sound}"
                options.append(Option(escape(row), id=f"backup:{index}"))
            for index, f in enumerate(s.fields):
                follow = f"  → 0x{f.target:x}" if f.target is not None else ""
                row = f"0x{f.at:08x}  {f.name:<28.28} {f.value}{follow}"
                options.append(Option(escape(row), id=f"field:{index}"))
            yield OptionList(*options)
            yield Label(
                "Enter: a repair is staged as pending edits (Ctrl+S reviews and writes it);"
                " a backup or field jumps to it, or to where the field points",
                classes="hint",
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        kind, _, value = (event.option.id or "").partition(":")
        if kind == "repair":
            self.dismiss(("repair", value))
        elif kind == "backup":
            self.dismiss(("jump", str(self.structure.backups[int(value)].at)))
        elif kind == "field":
            f = self.structure.fields[int(value)]
            self.dismiss(("jump", str(f.target if f.target is not None else f.at)))
