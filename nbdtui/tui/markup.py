"""Text from the network or the export as the UI shows it: safe inside Textual markup,
and export names with the default export spelled out."""

from __future__ import annotations


def escape_markup(text: str) -> str:
    """``text`` (an export name, a server message, a key such as ``[``) safe inside
    Textual markup. Textual's own ``escape`` leaves a lone ``[`` alone, which its parser
    then takes for the start of a tag; every ``[`` is escaped here."""
    return text.replace("[", "\\[")


def shown_name(name: str) -> str:
    """An export name as the UI shows it (the default export's name is empty)."""
    return name if name else '""  (default)'
