"""The look every modal dialog shares: a bordered box in the middle, a bold title, an
error line, muted hints and the buttons on the right."""

from __future__ import annotations

_CSS = """
{name} {{ align: center middle; background: $background 60%; }}
{name} > Vertical {{
    width: 76; max-width: 100%; height: auto; max-height: 90%;
    border: thick $accent; background: $surface; padding: 0 1;
}}
{name} Label {{ width: 1fr; }}
{name} .title {{ text-style: bold; width: 1fr; }}
{name} .error {{ color: $error; height: auto; }}
{name} .hint {{ color: $text-muted; }}
{name} Horizontal {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 2; }}
"""


def dialog_css(name: str) -> str:
    """The shared rules for the dialog class ``name`` (its ``DEFAULT_CSS``, to which a
    dialog may append its own)."""
    return _CSS.format(name=name)
