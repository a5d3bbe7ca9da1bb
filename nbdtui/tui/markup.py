"""Text from the network or the export made safe inside Textual markup."""

from __future__ import annotations


def escape_markup(text: str) -> str:
    """``text`` (an export name, a server message, a key such as ``[``) safe inside
    Textual markup. Textual's own ``escape`` leaves a lone ``[`` alone, which its parser
    then takes for the start of a tag; every ``[`` is escaped here."""
    return text.replace("[", "\\[")
