"""The look every modal dialog shares: a bordered box in the middle, a bold title, an
error line, warnings, muted hints and the buttons on the right; a dialog's own width and
the height of its list."""

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
{name} .problem {{ color: $warning; }}
{name} .hint {{ color: $text-muted; }}
{name} Horizontal {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 2; }}
"""


def dialog_css(name: str, *, width: int | None = None, list_height: int | None = None) -> str:
    """The shared rules for the dialog class ``name`` (its ``DEFAULT_CSS``, to which a
    dialog may append its own): ``width`` columns wide (default 76), an OptionList at
    most ``list_height`` lines high (as high as its options with no ``list_height``)."""
    css = _CSS.format(name=name)
    if width is not None:
        css += f"{name} > Vertical {{ width: {width}; }}\n"
    if list_height is not None:
        css += f"{name} OptionList {{ height: auto; max-height: {list_height}; }}\n"
    return css
