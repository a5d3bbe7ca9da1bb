"""What the search dialog's text means: hex bytes or text, guessed or chosen.

=================  ==========================================================
mode ``guess``     hex bytes when the text is hex bytes (``de ad be ef``,
                   ``0xdeadbeef``, ``de,ad``), quoted text without its quotes
                   (``"EFI PART"``), and anything else as the text typed
                   (``NEEDLE``); the :class:`Pattern` says which it took
mode ``hex``       hex bytes or quoted text only; anything else is an error
mode ``text``      the text exactly as typed (UTF-8), quotes included
=================  ==========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbdtui.errors import PatternError

MAX_PATTERN = 4096
MODES = ("guess", "hex", "text")

_HEX_TEXT = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class Pattern:
    """The bytes to look for, and how the typed text was read: ``hex`` or ``text``."""

    data: bytes
    kind: str

    def describe(self, limit: int = 40) -> str:
        """``hex bytes 53 ef`` or ``text "NEEDLE"`` (shortened), with its length."""
        n = len(self.data)
        if self.kind == "hex":
            shown = self.data[: limit // 3].hex(" ") + (" …" if n > limit // 3 else "")
            what = f"hex bytes {shown}"
        else:
            text = self.data.decode(errors="replace")
            what = f'text "{text[:limit]}{"…" if len(text) > limit else ""}"'
        return f"{what} ({n} byte{'' if n == 1 else 's'})"


def _hex_digits(text: str) -> str | None:
    """The hex digits of ``text`` when it is written as hex bytes, else ``None``."""
    tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    digits = "".join(t[2:] if t.lower().startswith("0x") else t for t in tokens)
    return digits if _HEX_TEXT.fullmatch(digits) else None


def _quoted(text: str) -> str | None:
    text = text.strip()
    if len(text) >= 2 and text[0] in "\"'" and text[-1] == text[0]:
        return text[1:-1]
    return None


def _checked(pattern: Pattern) -> Pattern:
    if not pattern.data:
        raise PatternError("nothing to search for")
    if len(pattern.data) > MAX_PATTERN:
        raise PatternError(f"pattern longer than {MAX_PATTERN} bytes")
    return pattern


def parse_pattern(text: str, mode: str = "guess") -> Pattern:
    """The bytes ``text`` stands for in ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}")
    if mode == "text":
        return _checked(Pattern(text.encode(), "text"))
    quoted = _quoted(text)
    if quoted is not None:
        return _checked(Pattern(quoted.encode(), "text"))
    digits = _hex_digits(text)
    if digits is not None and len(digits) % 2 == 0:
        return _checked(Pattern(bytes.fromhex(digits), "hex"))
    if mode == "guess" and text.strip():
        return _checked(Pattern(text.encode(), "text"))
    shown = text.strip()
    if not shown:
        raise PatternError("type hex bytes (de ad be ef) or text (EFI PART)")
    if digits is not None:
        raise PatternError(f"odd number of hex digits in {shown!r}")
    raise PatternError(f'not hex bytes: {shown!r} (quote text: "{shown}")')
