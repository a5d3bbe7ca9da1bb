"""Pilot tests of the editor's layout at 80x24 and 120x40: what is on screen, read from
the rendered screen (the inspector, the dialogs' text and buttons, the footer)."""

from __future__ import annotations

import re

import pytest
from textual.containers import VerticalScroll
from textual.widgets import Label

from nbdtui.tui.dialogs.partition_dialog import PartitionDialog
from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.tui.screens.sector_editor import EditorScreen
from nbdtui.uri import parse
from tests.support.pilot import EditorHarness, press, settle, wait_for

SIZES = [(80, 24), (120, 40)]


def screen_lines(app) -> list[str]:
    """The text of every row of the terminal, as drawn."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def dialog_text(app) -> str:
    """The words inside the dialog's box (between its side borders), one line."""
    inside = []
    for line in screen_lines(app):
        if line.count("█") >= 2:
            inside.append(line[line.index("█") + 1 : line.rindex("█")])
    return re.sub(r"\s+", " ", " ".join(inside))


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


async def goto(pilot, text: str) -> None:
    await press(pilot, "ctrl+g")
    await pilot.press(*text, "enter")
    await settle(pilot)


# ---- dialogs wrap their text ---------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_goto_errors_wrap_inside_the_dialog(demo_uri, size):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for typed in ("2T", "0x1g"):
            await press(pilot, "ctrl+g")
            await pilot.press(*typed, "enter")
            await pilot.pause()
            error = flat(str(app.screen.query_one("#goto-error", Label).render()))
            assert len(error) > 70  # longer than the dialog is wide
            assert error in dialog_text(app)
            await press(pilot, "escape")


async def make_ranges(pilot, count: int) -> None:
    await press(pilot, "e", "y")
    for _ in range(count):
        await press(pilot, "1", "right", "right")


@pytest.mark.parametrize("size", SIZES)
async def test_review_of_many_ranges_scrolls_and_keeps_its_buttons(demo_uri, tmp_path, size):
    app = EditorHarness(demo_uri, journal=tmp_path / "journal.sqlite3")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await make_ranges(pilot, 25)
        await press(pilot, "ctrl+s")
        await pilot.pause()
        text = dialog_text(app)
        assert "Write 25 bytes in 25 ranges?" in text
        assert "Write (y)" in text and "Cancel (n)" in text
        assert "The old bytes go to the undo journal first; J reverts later." in text
        box = app.screen.query_one("#review-ranges", VerticalScroll)
        assert box.max_scroll_y > 0  # the ranges scroll inside the box
        await press(pilot, "y")  # the buttons' keys still work
        assert not app.editor.edits

        await press(pilot, "J")
        await press(pilot, "enter")
        await pilot.pause()
        text = dialog_text(app)
        target = flat(str(app.screen.query_one(".hint", Label).render()))
        assert target.startswith("to disk at")
        # the socket's path is longer than a line: it is folded, no character lost
        assert target.replace(" ", "") in text.replace(" ", "")
        assert "Ranges that no longer hold these 'old' bytes stop the revert; " in text
        assert "the revert is journaled too." in text
        assert "Write (y)" in text and "Cancel (n)" in text


# ---- the inspector -------------------------------------------------------------------


@pytest.mark.parametrize("size", [*SIZES, (90, 30)])
async def test_inspector_shows_labels_and_values(demo_uri, size):
    app = EditorHarness(demo_uri)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await press(pilot, "i")
        await goto(pilot, "0x1fe")  # the MBR signature 55 aa
        await pilot.pause()
        lines = screen_lines(app)
        assert any("at 0x1fe" in line for line in lines)
        for name, value in [("u16 LE", "43605"), ("i16 LE", "-21931"), ("u8", "85")]:
            shown = [line for line in lines if re.search(rf"\b{name}\s+{value}\b", line)]
            assert shown, f"{name} {value} not on screen"
        inspector = app.editor.query_one("#inspector")
        assert inspector.region.width >= 30 and inspector.region.right <= size[0]
        # the hex view keeps its rows, the cursor's among them
        assert any(line.startswith("000001f0  ") for line in lines)
        await press(pilot, "i")
        assert not any("at 0x1fe" in line for line in screen_lines(app))


# ---- the footer ----------------------------------------------------------------------


async def open_editor(app, pilot, uri: str) -> EditorScreen:
    """The real app: the export's screen, then Enter for its editor."""
    endpoint = parse(uri)
    app.open_exports(endpoint, [endpoint.export])
    await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
    await pilot.pause(0.2)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
    editor: EditorScreen = app.screen
    await wait_for(pilot, lambda: not editor.view.in_flight)
    await pilot.pause()
    return editor


def footer(app) -> str:
    return screen_lines(app)[-1]


def assert_footer_fits(app, width: int, *wanted: str) -> None:
    line = footer(app)
    assert "▏" not in line and line.rstrip().endswith(wanted[-1])  # nothing cut
    assert [w for w in wanted if w not in line] == []
    positions = [line.index(w) for w in wanted]
    assert positions == sorted(positions)  # the most important first
    assert len(line) == width


@pytest.mark.parametrize("size", SIZES)
async def test_footer_shows_the_modes_main_keys_uncut(make_app, demo_uri, size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        editor = await open_editor(app, pilot, demo_uri)
        read_only = ["f1 Help", "e Write mode", "^g Go to", "/ Search", "i Inspector"]
        read_only += ["p Partitions", "esc Back"]
        if size[0] >= 120:
            read_only += ["tab Hex/text", "f2 Connections", "q Quit"]
        assert_footer_fits(app, size[0], *read_only)

        # keys left out of the footer still work
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PartitionDialog))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is editor)

        await pilot.press("e")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: editor.writable)
        await pilot.pause()
        write = ["f1 Help", "^s Commit", "^z Undo", "tab Hex/text", "^g Go to", "/ Search"]
        write += ["esc Back"]
        if size[0] >= 120:
            write += ["i Inspector", "p Partitions", "f2 Connections"]
        assert_footer_fits(app, size[0], *write)
        assert "Write mode" not in footer(app)

        await pilot.press("1")  # typed: a pending edit, undone by the footer's ^z
        await pilot.pause()
        assert editor.edits
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert not editor.edits


async def test_footer_is_not_rebuilt_when_a_dialog_closes_but_is_when_its_keys_change(
    make_app, demo_uri
):
    from textual.widgets._footer import FooterKey

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_editor(app, pilot, demo_uri)
        keys = list(editor.query(FooterKey))
        assert keys and "e Write mode" in footer(app)

        await pilot.press("ctrl+g")  # the dialog opens and closes: the same keys
        await wait_for(pilot, lambda: app.screen is not editor)
        await pilot.press(*"0x200", "enter")
        await wait_for(pilot, lambda: app.screen is editor and editor.view.cursor == 0x200)
        await pilot.pause()
        assert list(editor.query(FooterKey)) == keys  # the very same widgets
        assert "e Write mode" in footer(app)

        await pilot.press("e")  # write mode: other keys, rebuilt
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: editor.writable)
        await pilot.pause()
        assert not set(editor.query(FooterKey)) & set(keys)
        assert "^s Commit" in footer(app) and "Write mode" not in footer(app)


async def test_objects_alive_when_the_editor_opens_are_frozen_until_it_closes(make_app, demo_uri):
    import gc

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_editor(app, pilot, demo_uri)
        await pilot.pause()
        # the editor's own widgets are among the objects full collections skip
        assert gc.get_freeze_count() > 0
        frozen_before_close = gc.get_freeze_count()
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is not editor and not editor.is_attached)
        await pilot.pause()
        assert gc.get_freeze_count() < frozen_before_close
    assert gc.get_freeze_count() == 0  # the app gave everything back when it ended
