"""Text from the network or the export as the UI shows it: safe inside Textual markup,
and export names with the default export spelled out."""

from __future__ import annotations

from nbdtui.present.terminal_text import terminal_text


def escape_markup(text: str) -> str:
    """``text`` (an export name, a server message, a key such as ``[``) safe inside
    Textual markup. Textual's own ``escape`` leaves a lone ``[`` alone, which its parser
    then takes for the start of a tag; every ``[`` is escaped here. Control characters
    and escape sequences are made visible first (``terminal_text``)."""
    return terminal_text(text, backslash=False).replace("[", "\\[")


def shown_name(name: str) -> str:
    """An export name as the UI shows it (the default export's name is empty), every
    control character made visible as the CLI shows it (``terminal_text``)."""
    return terminal_text(name) if name else '""  (default)'
