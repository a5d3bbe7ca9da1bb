"""Ctrl+G, PgDn and End to a block not read yet: what the frames handed to the terminal
show.

The move holds its first frame until the hex view's fetch of the target has landed (at
most ``JUMP_FRAME_WAIT`` for a dialog's jump, ``hexview.MOVE_FRAME_WAIT`` for a key), so
that no frame with ``┄┄`` placeholders comes first and the bytes do not wait for
Textual's next frame (see ``EditorScreen._goto_chosen`` and ``HexView.on_key``).
"""

from __future__ import annotations

import time

from nbdtui.tui.screens import sector_editor
from nbdtui.tui.widgets import hexview
from tests.support.pilot import EditorHarness, press, rows, settle

TIB = 1 << 40
TARGET = 0x9A_BCDE_F123  # in the middle of a 64 KiB block of a 1 TiB export


def pattern_row(offset: int) -> str:
    """The hex view's row at ``offset`` (16-byte aligned) of nbdkit's pattern plugin:
    each 8-byte word holds its own offset, big-endian."""
    words = (offset.to_bytes(8, "big").hex(" "), (offset + 8).to_bytes(8, "big").hex(" "))
    return f"{offset:010x}  {words[0]}  {words[1]}"


def record_frames(app) -> list[tuple[float, list[str]]]:
    """From now on, the hex view's rows as drawn in each frame of the editor handed to
    the driver, with the time it was handed over."""
    frames: list[tuple[float, list[str]]] = []
    display = app._display

    def displayed(screen, renderable) -> None:
        display(screen, renderable)
        if screen is app.editor and renderable is not None:
            frames.append((time.monotonic(), rows(app)))

    app._display = displayed
    return frames


async def open_goto(pilot, offset: int) -> None:
    """Ctrl+G and the offset typed, not yet Enter."""
    await press(pilot, "ctrl+g")
    await pilot.press(*hex(offset))
    await pilot.pause()


async def test_the_first_frame_after_a_cold_jump_has_the_bytes(nbdkit, monkeypatch):
    # A wait generous enough for a loaded test machine: the read takes a millisecond.
    monkeypatch.setattr(sector_editor, "JUMP_FRAME_WAIT", 10.0)
    app = EditorHarness(nbdkit("pattern", "1T").uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        await open_goto(pilot, TARGET)
        assert TARGET // view.cache.block_size not in view.cache
        frames = record_frames(app)
        await pilot.press("enter")
        await settle(pilot)
        assert view.cursor == TARGET
        sector = TARGET // 512
        assert frames, "no frame drawn after Enter"
        first = frames[0][1]
        assert first[0].startswith(f"── sector {sector} ── 0x{sector * 512:x} ")
        assert any(line.startswith(pattern_row(TARGET & ~15)) for line in first)
        assert not any("┄┄" in line for _, shown in frames for line in shown)


async def test_a_slow_read_is_not_waited_for(nbdkit):
    """A read slower than JUMP_FRAME_WAIT: the jump is drawn with placeholders at once,
    the bytes when they land."""
    server = nbdkit("pattern", "1T", filters=("delay",), extra_options=("rdelay=1",))
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        await open_goto(pilot, TARGET)
        frames = record_frames(app)
        entered = time.monotonic()
        await pilot.press("enter")
        await settle(pilot)
        sector = TARGET // 512
        placeholders = [t for t, shown in frames if any("┄┄" in line for line in shown)]
        assert placeholders and placeholders[0] - entered < 0.5
        assert frames[0][1][0].startswith(f"── sector {sector} ── ")
        assert any(line.startswith(pattern_row(TARGET & ~15)) for line in rows(app))
        assert view.cursor == TARGET and not view.in_flight


async def test_the_first_frame_after_a_cold_page_or_end_has_the_bytes(nbdkit, monkeypatch):
    """PgDn into a block not read yet, and End (the last block of 1 TiB), hold their
    first frame until the bytes are in (hexview.MOVE_FRAME_WAIT), as Ctrl+G does."""
    monkeypatch.setattr(hexview, "MOVE_FRAME_WAIT", 10.0)  # a loaded test machine
    app = EditorHarness(nbdkit("pattern", "1T").uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        bs = view.cache.block_size
        last_sector = TARGET - TARGET % bs + bs - 512  # PgDn from here: the next block
        await open_goto(pilot, last_sector)
        await pilot.press("enter")
        await settle(pilot)
        for key, target in (("pagedown", last_sector + 512), ("end", TIB - 1)):
            assert target // bs not in view.cache
            frames = record_frames(app)
            await pilot.press(key)
            await settle(pilot)
            assert view.cursor == target
            assert frames, f"no frame drawn after {key}"
            first = frames[0][1]
            assert any(line.startswith(pattern_row(target & ~15)) for line in first), key
            assert not any("┄┄" in line for _, shown in frames for line in shown), key


async def test_a_slow_page_is_not_waited_for(nbdkit):
    """End with reads slower than MOVE_FRAME_WAIT: placeholders at once, then the bytes."""
    server = nbdkit("pattern", "1T", filters=("delay",), extra_options=("rdelay=1",))
    app = EditorHarness(server.uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = app.editor.view
        frames = record_frames(app)
        pressed = time.monotonic()
        await pilot.press("end")
        await settle(pilot)
        placeholders = [t for t, shown in frames if any("┄┄" in line for line in shown)]
        assert placeholders and placeholders[0] - pressed < 0.5
        assert any(line.startswith(pattern_row((TIB - 1) & ~15)) for line in rows(app))
        assert view.cursor == TIB - 1 and not view.in_flight
