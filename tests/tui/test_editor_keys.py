"""Pilot tests of the hex editor's keys: Ctrl+C copies, a key means one thing per mode
(and F1 says which), capabilities are checked before a confirmation, typing stops at
the end of the export, one typed byte is one undo step."""

from __future__ import annotations

import base64
import string

from textual.widgets import Static

from nbdtui.tui.app import NbdtuiApp
from nbdtui.tui.screens.help import HelpScreen
from tests.support.oracles import nbdsh_write
from tests.support.pilot import EditorHarness, notes, press, settle, text_of


def clipboard_writes(app) -> list[str]:
    """Record the OSC 52 sequences the app sends to the terminal; returns the list."""
    sent: list[str] = []
    driver = app._driver
    write = driver.write

    def recording(data: str) -> None:
        if data.startswith("\x1b]52;"):
            sent.append(data)
        write(data)

    driver.write = recording
    return sent


def osc52(text: str) -> str:
    return f"\x1b]52;c;{base64.b64encode(text.encode()).decode()}\a"


async def test_ctrl_c_copies_the_selection_and_does_not_quit(nbdkit):
    server = nbdkit("memory", "1M")
    nbdsh_write(server.uri, 0x10, b"EFI\x00PART")
    app = EditorHarness(server.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        sent = clipboard_writes(app)
        await press(pilot, "down", "shift+right", "shift+right")
        await press(pilot, "ctrl+c")
        assert app.screen is app.editor and not app.closed
        assert sent == [osc52("45 46 49")] and app.clipboard == "45 46 49"
        assert notes(app)[-1] == "Copied 3 bytes as hex."
        assert not any("quit" in n for n in notes(app))
        await press(pilot, "shift+right", "shift+right", "tab", "ctrl+c")
        assert sent[-1] == osc52("EFI.P") and app.clipboard == "EFI.P"
        assert notes(app)[-1] == "Copied 5 bytes as text."
        await press(pilot, "escape", "tab", "ctrl+c")  # no selection: the byte at the cursor
        assert app.clipboard == "50" and notes(app)[-1] == "Copied 1 byte as hex."
        assert app.screen is app.editor and not app.closed


class HelpHarness(EditorHarness):
    """The editor harness with the app's keys: F1 (help), q (quit)..."""

    BINDINGS = NbdtuiApp.BINDINGS

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))


def help_keys(app) -> dict[str, str]:
    """F1's rows as {key label: description}."""
    text = text_of(app.screen.query_one("#help-text", Static))
    keys: dict[str, str] = {}
    for line in text.splitlines():
        label, sep, description = line.strip().partition("  ")
        if sep and description:
            for key in label.split(" / "):
                keys[key] = description.strip()
    return keys


async def test_flush_has_a_key_that_never_types_and_f1_lists_no_typing_key(nbdkit):
    app = HelpHarness(nbdkit("memory", "1M").uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "f1")
        read_only = help_keys(app)
        assert read_only["F5"] == "Flush" and "f" not in read_only
        assert read_only["e"] == "Write mode" and read_only["q"] == "Quit"
        await press(pilot, "escape", "e", "y")
        assert app.editor.writable
        await press(pilot, "f5")
        assert notes(app)[-1].startswith("Flushed") and not app.editor.has_pending_edits()
        await press(pilot, "f")  # a hex digit: typed, and not a command
        assert app.editor.edits.value(0) == 0xF0 and notes(app)[-1].startswith("Flushed")
        await press(pilot, "f1")
        hex_pane = help_keys(app)
        assert hex_pane["F5"] == "Flush" and hex_pane["Esc"] == "Leave write mode"
        assert not [k for k in hex_pane if len(k) == 1 and k in string.hexdigits]
        assert "q" in hex_pane and "e" not in hex_pane  # q is no hex digit: it still quits
        await press(pilot, "escape", "tab", "f1")
        text_pane = help_keys(app)
        assert not [k for k in text_pane if len(k) == 1 and k.isascii() and k.isprintable()]
        assert text_pane["Ctrl+Z"] == "Undo" and text_pane["F5"] == "Flush"
        assert "Ctrl+C" in text_pane and "Tab" in text_pane
        await press(pilot, "escape", "q")  # typed in the text pane, not Quit
        assert app.screen is app.editor and app.editor.edits.value(0) == ord("q")


async def test_trim_and_zero_are_refused_before_the_question_when_unsupported(nbdkit):
    server = nbdkit(
        "eval",
        "get_size=echo 1048576",
        "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
        "pwrite=cat >/dev/null",
        "can_write=exit 0",
        "can_trim=exit 3",
        log=True,
    )
    app = EditorHarness(server.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "e", "y", "v", "pagedown", "down", "v")
        assert app.editor.view.selection == (0, 528)
        await press(pilot, "T")
        assert app.screen is app.editor  # no "Trim 529 bytes?" question
        assert notes(app)[-1] == "This export does not support trim: nothing was changed."
        await press(pilot, "Z")  # nbdkit emulates zero with writes: that one is asked
        assert "Zero 529 bytes now?" in str(app.screen.query_one(".title").render())
        await press(pilot, "n")
    log = server.log_path.read_text()
    assert "Trim" not in log and "Zero" not in log


async def test_a_zero_too_big_to_journal_is_refused_before_the_question(nbdkit):
    app = EditorHarness(nbdkit("memory", "64M").uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "e", "y", "v", "end", "v", "Z")
        assert app.screen is app.editor
        assert "only ranges up to 32 MiB can be journaled" in notes(app)[-1]


async def test_typing_stops_at_the_last_byte_with_a_message(nbdkit):
    for size in ((80, 24), (120, 40)):
        app = EditorHarness(nbdkit("memory", "1M").uri)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await press(pilot, "e", "y", "end", "4", "1")
            editor, last = app.editor, 1024 * 1024 - 1
            assert editor.edits.value(last) == 0x41 and editor.view.cursor == last
            await press(pilot, "4", "2")
            assert editor.edits.value(last) == 0x41 and len(editor.edits) == 1
            assert (
                notes(app)[-1]
                == "End of export: the last byte is at 0xfffff (1048575). Nothing typed."
            )
            await press(pilot, "tab", "x")  # the same in the text pane
            assert editor.edits.value(last) == 0x41
            assert notes(app)[-1].startswith("End of export")
            await press(pilot, "end", "x")  # moving there again: the last byte can be typed
            assert editor.edits.value(last) == ord("x") and editor.view.cursor == last
            await press(pilot, "y")
            assert editor.edits.value(last) == ord("x") and len(editor.edits) == 1
            await press(pilot, "left", "z")  # not at the end: typing moves on as always
            assert editor.edits.value(last - 1) == ord("z") and editor.view.cursor == last


async def test_one_typed_byte_is_one_undo_step(nbdkit):
    app = EditorHarness(nbdkit("memory", "1M").uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "e", "y", "4", "1", "4", "2")
        editor = app.editor
        assert (editor.edits.value(0), editor.edits.value(1)) == (0x41, 0x42)
        await press(pilot, "ctrl+z")
        assert editor.edits.value(1) is None and editor.edits.value(0) == 0x41
        await press(pilot, "ctrl+z")
        assert not editor.has_pending_edits()
        await press(pilot, "ctrl+z")
        assert notes(app)[-1] == "Nothing to undo."
        await press(pilot, "ctrl+y")
        assert editor.edits.value(0) == 0x41 and editor.edits.value(1) is None
