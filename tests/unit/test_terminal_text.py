"""present/terminal_text: strings from a server or a path made safe to show."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbdtui.present.terminal_text import terminal_text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("disk", "disk"),
        ("", ""),
        ("a\x1b[2Jb", "a\\u001b[2Jb"),  # clear screen
        ("\x1b]0;title\x07", "\\u001b]0;title\\u0007"),  # window title
        ("one\ntwo\r\tthree", "one\\u000atwo\\u000d\\u0009three"),  # forged lines
        ("\x9b31m\x7f", "\\u009b31m\\u007f"),  # C1 CSI, DEL
        ("\u202eevil\u200b", "\\u202eevil\\u200b"),  # bidi override, zero width
        ("a\u2028b\u2029", "a\\u2028b\\u2029"),  # line and paragraph separators
        ("x\U000e0001\ue000", "x\\U000e0001\\ue000"),  # tag, private use
        ("/tmp/a\udcff", "/tmp/a\\xff"),  # a path byte that is not UTF-8
        ("a\\b", "a\\\\b"),  # unambiguous: one string only
        ("é ü 日本語 ☃", "é ü 日本語 ☃"),  # printable text of any script stays
        ("[red]x[/]", "[red]x[/]"),  # markup is the UI's business
    ],
)
def test_terminal_text(text: str, shown: str) -> None:
    assert terminal_text(text) == shown


def test_backslash_false_leaves_backslashes_and_still_escapes() -> None:
    assert terminal_text("'a\\x1b' \x1b", backslash=False) == "'a\\x1b' \\u001b"


@given(st.text())
def test_never_a_control_character_and_idempotent_without_backslash(text: str) -> None:
    shown = terminal_text(text)
    hidden = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
    assert not [ch for ch in shown if unicodedata.category(ch) in hidden], repr(shown)
    assert terminal_text(shown, backslash=False) == shown
