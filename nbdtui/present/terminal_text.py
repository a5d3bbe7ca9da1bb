"""Strings from elsewhere (a server, a path, a command line) made safe to show.

An export name, a description, a meta context name or an error message from a server
is any UTF-8 its author chose: an escape sequence in it would clear the screen, set the
window title or draw forged lines when printed raw. :func:`terminal_text` is the one
function that turns such a string into text that is safe on a terminal and in the UI:
every character that a terminal would act on rather than draw becomes visible as an
escape, in the spelling nbdinfo uses for export names (``\\u001b``):

- control characters (C0, DEL and C1: ``\\x9b`` is a CSI of its own on some terminals),
  newlines and tabs included, so that one value stays on one line;
- format characters (bidirectional overrides such as U+202E, zero-width characters),
  line and paragraph separators, unassigned code points, private-use characters;
- lone surrogates: the bytes of a local path that are not UTF-8 (``os.fsdecode``) show
  as ``\\xff``;
- the backslash itself is doubled (``\\\\``), so that the escaped text stands for one
  string only (``backslash=False`` leaves it alone, for messages that already quote
  with ``repr``).

Printable characters of any script stay as they are. Rich/Textual markup (``[red]``)
is a separate matter: the UI escapes markup after this (``tui/markup.py``), or shows the
text as a plain ``Text``. JSON output does not use this: ``json.dumps`` keeps the exact
string and escapes control characters itself.
"""

from __future__ import annotations

# General categories shown escaped: Cc control, Cf format, Cs surrogate, Co private use,
# Cn unassigned, Zl line separator, Zp paragraph separator.
_HIDDEN = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def _category(ch: str) -> str:
    # imported here: the common case (printable ASCII) never needs it, and every
    # command's start imports this module (0.7 M instructions)
    import unicodedata

    return unicodedata.category(ch)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_text(text: str, *, backslash: bool = True) -> str:
    """``text`` with every character a terminal would act on made visible (see above)."""
    if text.isascii() and text.isprintable() and (not backslash or "\\" not in text):
        return text  # the common case, fast
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\" if backslash else ch)
        elif " " <= ch <= "~":
            out.append(ch)
        elif _category(ch) in _HIDDEN:
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)
