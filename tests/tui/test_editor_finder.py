"""Pilot tests of the editor's search (text or hex, guessed and said; at an alignment;
every match in a list), its hexedit/HxD keys, copy as, and save/load through local
files, against real servers (nbdkit, qemu-nbd) with libnbd and e2fsprogs as oracles."""

from __future__ import annotations

import re
import subprocess

from textual.binding import Binding
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets._footer import FooterKey

from nbdtui.tui.app import NbdtuiApp
from nbdtui.tui.dialogs.copy_dialog import CopyDialog
from nbdtui.tui.dialogs.file_dialog import FileDialog
from nbdtui.tui.dialogs.matches_dialog import MatchesDialog
from nbdtui.tui.dialogs.search_dialog import SearchDialog
from nbdtui.tui.screens.help import HelpScreen
from nbdtui.tui.screens.sector_editor import EditorScreen
from tests.support.oracles import nbdcopy_out, nbdsh_write
from tests.support.pilot import EditorHarness, notes, press, settle, status, text_of
from tests.support.requirements import require


class HelpHarness(EditorHarness):
    """The editor with the app's keys (F1, F3, q)."""

    BINDINGS = NbdtuiApp.BINDINGS

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))


def footer_keys(app) -> dict[str, str]:
    """The footer's keys as drawn: {key: description}."""
    return {key.key: key.description for key in app.screen.query(FooterKey)}


def label(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Label).render())


async def search_for(pilot, text: str, *keys: str, key: str = "slash") -> None:
    """Open the search dialog with ``key``, type ``text``, then press ``keys``."""
    await press(pilot, key)
    assert isinstance(pilot.app.screen, SearchDialog)
    await pilot.press(*text)
    await pilot.pause()
    for k in keys:
        await press(pilot, k)


# ---- search -----------------------------------------------------------------------------


async def test_text_that_is_not_hex_is_searched_as_text_and_the_dialog_says_so(nbdkit):
    server = nbdkit("memory", "4M")
    nbdsh_write(server.uri, 0x1234, b"find the NEEDLE here")
    nbdsh_write(server.uri, 0x30000, bytes.fromhex("cafe"))
    nbdsh_write(server.uri, 0x31000, b"cafe")
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        await search_for(pilot, "NEEDLE")
        assert label(app, "#search-as").startswith('Searching text "NEEDLE" (6 bytes), guessed')
        await press(pilot, "enter")
        assert view.cursor == 0x1234 + 9 and view.selection == (0x123D, 0x1242)
        assert re.fullmatch(
            r'Found at 0x123d \([\d.]+ s\): text "NEEDLE" \(6 bytes\)\.', notes(app)[-1]
        )
        # Hex digits are hex bytes; Ctrl+T reads them as text instead.
        await search_for(pilot, "cafe")
        assert "hex bytes ca fe (2 bytes), guessed · Ctrl+T: as text" in label(app, "#search-as")
        await press(pilot, "enter")
        assert view.cursor == 0x30000
        await search_for(pilot, "", "ctrl+t")  # the last search comes back; read as text
        assert app.screen.query_one("#find", Input).value == "cafe"
        assert 'text "cafe" (4 bytes), forced · Ctrl+T: as hex' in label(app, "#search-as")
        await press(pilot, "enter")
        assert view.cursor == 0x31000
        # Bad hex, forced: the error stays in the dialog, on one line.
        await search_for(pilot, "", "ctrl+t", "ctrl+u")
        await pilot.press(*"zz", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SearchDialog)
        assert label(app, "#search-error") == "not hex bytes: 'zz' (quote text: \"zz\")"


async def test_hexedit_keys_find_next_previous_and_go_to_both_ends(nbdkit):
    server = nbdkit("memory", "1M")
    for where in (0x100, 0x5000, 0x9000):
        nbdsh_write(server.uri, where, b"MARK")
    app = HelpHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        await search_for(pilot, "MARK", "enter", key="ctrl+f")
        assert view.cursor == 0x100
        await press(pilot, "f3")
        assert view.cursor == 0x5000 and isinstance(app.screen, type(app.editor))
        await press(pilot, "n")
        assert view.cursor == 0x9000
        await press(pilot, "shift+f3")
        assert view.cursor == 0x5000
        await press(pilot, "ctrl+end")
        assert view.cursor == (1 << 20) - 1
        await press(pilot, "ctrl+home")
        assert view.cursor == 0
        # Write mode, text pane: n types; F3 still finds the next match.
        await press(pilot, "e", "y", "tab", "n")
        assert app.editor.edits.value(0) == ord("n") and view.cursor == 1
        await press(pilot, "f3")
        assert view.cursor == 0x100
        assert "q Quit" not in str(app.screen.query_one("Footer").render())
        footer_keys = [b.binding.key for b in app.screen.active_bindings.values() if b.binding.show]
        assert "q" not in footer_keys


async def test_f1_says_what_f3_and_esc_do_now_and_where_keys_differ(nbdkit):
    server = nbdkit("memory", "1M", filters=["delay"], extra_options=["wdelay=30"])
    app = HelpHarness(server.uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "f1")
        text = text_of(app.screen.query_one("#help-text", Static))
        rows = {line.strip().partition("  ")[0]: line for line in text.splitlines()}
        assert "F3 / Shift+F3" not in rows  # F3 and Shift+F3 are on the rows of n and N
        assert re.search(r"n / F3\s+Next match", text)
        assert re.search(r"N / Shift\+F3\s+Previous match", text)
        assert re.search(r"/ / Ctrl\+F\s+Search", text)
        assert "Exports" not in text  # the app's F3: here F3 finds the next match
        assert "Ctrl+S writes the pending edits after a review" in text
        assert re.search(r"Esc\s+Back", text)
        await press(pilot, "escape", "e", "y", "4", "1", "ctrl+s")
        await pilot.press("y")
        await pilot.pause(0.3)  # the write waits 30 s for the server
        assert app.editor._writing()
        await pilot.press("f1")
        await pilot.pause()
        text = text_of(app.screen.query_one("#help-text", Static))
        assert re.search(r"Esc\s+Cancel the write", text) and not re.search(r"Esc\s+Back", text)
        await pilot.press("escape")  # closes the help
        await pilot.pause()
        assert footer_keys(app)["escape"] == "Cancel write"
        await pilot.press("escape")  # cancels the write
        await settle(pilot)
        assert not app.editor._writing() and app.editor.edits.value(0) == 0x41
        assert footer_keys(app)["escape"] == "Back"
        assert any("did not acknowledge" in n for n in notes(app))


async def test_find_all_at_an_alignment_lists_every_ext4_superblock(tmp_path, nbdkit):
    require("mkfs.ext4")
    require("dumpe2fs")
    image = tmp_path / "ext4.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "1024", str(image), "64M"], check=True)
    dump = subprocess.run(
        ["dumpe2fs", str(image)], capture_output=True, text=True, check=True
    ).stdout
    backups = [int(b) for b in re.findall(r"Backup superblock at (\d+)", dump)]
    assert backups  # 64 MiB of 1 KiB blocks: groups of 8 MiB, backups in 1, 3, 5, 7
    expected = [0x438] + [b * 1024 + 0x38 for b in backups]
    server = nbdkit("file", str(image))
    app = EditorHarness(server.uri)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await search_for(pilot, "53 ef", "tab")
        await pilot.press(*"0x438 mod 1024")
        await press(pilot, "ctrl+l")
        assert isinstance(app.screen, MatchesDialog)
        title = label(app, ".title")
        assert title == f"{len(expected)} matches of hex bytes 53 ef (2 bytes) at 0x38 mod 1024"
        options = app.screen.query_one(OptionList)
        listed = [int(str(options.get_option_at_index(i).id)) for i in range(options.option_count)]
        assert listed == expected
        await press(pilot, "down", "down", "enter")  # the second backup superblock
        assert app.editor.view.cursor == expected[2]
        # Anywhere: 53 ef also occurs where no superblock is (or not: but never fewer).
        await search_for(pilot, "", "tab", "ctrl+u", "ctrl+l")
        assert isinstance(app.screen, MatchesDialog)
        assert "at 0x38" not in label(app, ".title")
        anywhere = app.screen.query_one(OptionList)
        assert anywhere.option_count >= len(expected)


# ---- copy as, save, load ----------------------------------------------------------------


async def test_copy_as_hex_text_and_a_c_array(nbdkit):
    server = nbdkit("memory", "1M")
    nbdsh_write(server.uri, 0x10, b"EFI\x00PART")
    app = EditorHarness(server.uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "down", *["shift+right"] * 7, "y")
        assert isinstance(app.screen, CopyDialog)
        assert label(app, ".title") == "Copy 8 bytes at 0x10 as"
        await press(pilot, "c")
        assert app.clipboard == (
            "/* 8 bytes from offset 0x10 */\n"
            "unsigned char data[8] = {\n"
            "    0x45, 0x46, 0x49, 0x00, 0x50, 0x41, 0x52, 0x54\n"
            "};\n"
        )
        assert notes(app)[-1] == "Copied 8 bytes as a C array."
        await press(pilot, "y", "t")
        assert app.clipboard == "EFI.PART"
        await press(pilot, "y", "down", "enter")  # the second entry: text, by Enter
        assert app.clipboard == "EFI.PART"
        await press(pilot, "y", "h")
        assert app.clipboard == "45 46 49 00 50 41 52 54"


async def test_save_a_range_to_a_file_and_load_a_file_as_pending_edits(tmp_path, qemu_nbd):
    image = tmp_path / "disk.img"
    original = bytes(range(256)) * 4096  # 1 MiB
    image.write_bytes(original)
    server = qemu_nbd(image, export="disk", unix=True)
    app = EditorHarness(server.uri, journal=tmp_path / "journal.sqlite3")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        # Save sector 2 (the range the dialog offers is the cursor's sector).
        await press(pilot, "pagedown", "pagedown", "ctrl+e")
        assert isinstance(app.screen, FileDialog)
        assert app.screen.query_one("#file-range", Input).value == "0x400+512"
        saved = tmp_path / "sector2.bin"
        app.screen.query_one("#file-path", Input).value = str(saved)
        await press(pilot, "enter")
        assert saved.read_bytes() == original[1024:1536]
        assert notes(app)[-1] == f"Saved 512 bytes from 0x400 to {saved}."
        # Saving over an existing file is refused, in the dialog, on one line.
        await press(pilot, "ctrl+e")
        app.screen.query_one("#file-path", Input).value = str(saved)
        app.screen.query_one("#file-range", Input).value = "end-s1..end"
        await press(pilot, "enter")
        assert isinstance(app.screen, FileDialog)
        assert label(app, "#file-error") == f"{saved} exists already: nothing was saved"
        await press(pilot, "escape")
        # Load needs write mode; a file of the wrong size for the range is refused.
        await press(pilot, "ctrl+l")
        assert notes(app)[-1].startswith("Enter write mode (e) first")
        patch = tmp_path / "patch.bin"
        patch.write_bytes(b"LOADED FROM A FILE")
        await press(pilot, "e", "y", "ctrl+l")
        app.screen.query_one("#file-path", Input).value = str(patch)
        app.screen.query_one("#file-range", Input).value = "s1+s1"
        await press(pilot, "enter")
        assert label(app, "#file-error") == f"{patch} has 18 bytes, the range 512: nothing loaded"
        app.screen.query_one("#file-range", Input).value = "0x1000"
        await press(pilot, "enter")
        assert not isinstance(app.screen, FileDialog)
        assert notes(app)[-1] == (
            f"Loaded {patch} at 0x1000: 18 byte(s) pending; Ctrl+S to review."
        )
        assert "18 pending" in status(app)
        assert nbdcopy_out(server.uri)[0x1000:0x1012] == original[0x1000:0x1012]  # not yet
        await press(pilot, "u")  # one undo step takes the whole file back
        assert not app.editor.has_pending_edits()
        await press(pilot, "ctrl+y", "ctrl+s", "y")
        assert "Wrote 18 byte(s) in 1 range(s)" in notes(app)[-1]
    written = nbdcopy_out(server.uri)
    assert written[0x1000:0x1012] == b"LOADED FROM A FILE"
    assert written[:0x1000] == original[:0x1000] and written[0x1012:] == original[0x1012:]


async def test_a_revert_conflict_names_the_byte_that_changed(tmp_path, nbdkit):
    server = nbdkit("memory", "1M")
    app = EditorHarness(server.uri, journal=tmp_path / "journal.sqlite3")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "ctrl+g")
        await pilot.press(*"0x100", "enter")
        await press(pilot, "e", "y", *"41424344", "ctrl+s", "y")
        assert "Wrote 4 byte(s)" in notes(app)[-1]
        nbdsh_write(server.uri, 0x102, b"?")  # someone else changes the third byte
        await press(pilot, "J", "enter", "y")
        question = str(app.screen.query_one("#confirm-text", Static).render())
        assert question.startswith(
            "the byte at offset 258 (0x102) is 0x3f, not 0x43 (in the range at 256 (0x100), +2)"
        )


def test_every_editor_key_in_f1_has_an_action():
    for binding in Binding.make_bindings(EditorScreen.BINDINGS):
        name = binding.action.split("(")[0]
        assert callable(getattr(EditorScreen, f"action_{name}", None)), binding
