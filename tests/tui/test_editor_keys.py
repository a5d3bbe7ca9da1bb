"""Pilot tests of the hex editor's keys: Ctrl+C copies, a key means one thing per mode
(and F1 says which), capabilities are checked before a confirmation, typing stops at
the end of the export, one typed byte is one undo step."""

from __future__ import annotations

import base64

from tests.support.oracles import nbdsh_write
from tests.support.pilot import EditorHarness, notes, press, settle


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
