"""F1: every key binding of the app and of the screen underneath, read from BINDINGS.

The list is built from the ``BINDINGS`` class attributes (walking each class's MRO the
way Textual merges them), so it cannot drift from what the keys really do.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from nbdtui.tui.markup import escape_markup


def class_bindings(node: DOMNode) -> list[Binding]:
    """The bindings ``node``'s class declares, subclasses first, one per key."""
    seen: set[str] = set()
    found: list[Binding] = []
    for cls in type(node).__mro__:
        bindings = cls.__dict__.get("BINDINGS")
        if bindings:
            for binding in Binding.make_bindings(bindings):
                if binding.key not in seen and not binding.system:
                    seen.add(binding.key)
                    found.append(binding)
        if not cls.__dict__.get("inherit_bindings", True):
            break
    return found


def app_bindings(app: App[Any]) -> list[Binding]:
    found = class_bindings(app)
    if app.ENABLE_COMMAND_PALETTE and all(b.action != "command_palette" for b in found):
        found.append(Binding(app.COMMAND_PALETTE_BINDING, "command_palette", "Command palette"))
    return found


_KEY_NAMES = {
    "escape": "Esc",
    "enter": "Enter",
    "delete": "Del",
    "space": "Space",
    "tab": "Tab",
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "home": "Home",
    "end": "End",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "slash": "/",
    "question_mark": "?",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "full_stop": ".",
    "comma": ",",
    "minus": "-",
    "plus": "+",
}


def key_label(key: str) -> str:
    """``ctrl+d`` → ``Ctrl+D``, ``f1`` → ``F1``, ``escape`` → ``Esc``."""
    parts = key.split("+")
    *mods, last = parts
    name = _KEY_NAMES.get(last) or (
        last.upper() if len(last) <= 3 else last.replace("_", " ").capitalize()
    )
    if len(last) == 1 and not mods:
        name = last
    return "+".join([m.capitalize() for m in mods] + [name])


def _describe(binding: Binding) -> str:
    if binding.description:
        return binding.description
    return binding.action.replace("_", " ").replace("app.", "")


def binding_table(bindings: list[Binding]) -> str:
    """Rows of ``key  description``, keys merged when they do the same thing."""
    merged: dict[str, list[str]] = {}
    for binding in bindings:
        label = binding.key_display or key_label(binding.key)
        merged.setdefault(_describe(binding), []).append(label)
    width = max((len(" / ".join(keys)) for keys in merged.values()), default=0)
    return "\n".join(
        f"  [b]{escape_markup(' / '.join(keys).ljust(width))}[/b]  {escape_markup(text)}"
        for text, keys in merged.items()
    )


class HelpScreen(ModalScreen[None]):
    """Keys of the screen under it, then the app-wide keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("f1", "dismiss", "Close"),
    ]

    def __init__(self, screen: Screen[Any]) -> None:
        super().__init__()
        self.target = screen

    def compose(self) -> ComposeResult:
        app = self.app
        title = self.target.sub_title or type(self.target).__name__
        sections = []
        # A screen where some keys type (the editor's write mode) says which: those are
        # not commands there now, so they are left out.
        types = getattr(self.target, "key_types", None)
        # A key whose meaning depends on the moment (Esc) is described as it is now.
        describe = getattr(self.target, "describe_key", None)

        def now(bindings: list[Binding]) -> list[Binding]:
            kept = [b for b in bindings if not (types and types(b.key))]
            if describe is None:
                return kept
            return [
                dataclasses.replace(b, description=describe(b.key) or b.description) for b in kept
            ]

        screen_bindings = class_bindings(self.target)
        screen_keys = now(screen_bindings)
        if screen_keys:
            sections.append(f"[b $accent]{escape_markup(title)}[/]\n" + binding_table(screen_keys))
        # An app key the screen binds too does what the screen says, not the app.
        own = {key for b in screen_bindings for key in b.key.split(",")}
        everywhere = [b for b in app_bindings(app) if b.key not in own]
        sections.append("[b $accent]Everywhere[/]\n" + binding_table(now(everywhere)))
        if len(screen_keys) < len(screen_bindings):
            sections.append("Keys that type a byte here now are left out (Esc leaves write mode).")
        notes = getattr(self.target, "KEY_NOTES", "")
        if notes:
            sections.append(escape_markup(notes))
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Keys"
            body.border_subtitle = "Esc or F1 to close"
            yield Static("\n\n".join(sections), id="help-text")
