"""Snapshots of the compare screen at 80x24 and 120x40: two local images with fixed
bytes (deterministic), a few differences highlighted, the cursor on one, the list."""

from __future__ import annotations

import time

import pytest
from textual.app import App

from nbdtui.editor.local_image import LocalImage
from nbdtui.tui.screens.diff_view import CompareScreen

SIZE = 256 * 1024


class CompareHarness(App):
    """An app that only shows the compare screen of two images."""

    def __init__(self, a, b) -> None:
        super().__init__()
        self.paths = (a, b)
        self.screen_under_test: CompareScreen | None = None

    async def on_mount(self) -> None:
        self.images = [LocalImage(str(p)) for p in self.paths]
        self.screen_under_test = CompareScreen(
            *self.images, labels=("disk.img", "backup.img"), sector_size=512
        )
        await self.push_screen(self.screen_under_test)

    async def on_unmount(self) -> None:
        for image in self.images:
            image.close()


@pytest.fixture
def images(tmp_path):
    a = bytearray(SIZE)
    text = b"nbdtui compares two disks byte for byte; "
    for offset in range(0, 4096, len(text)):
        a[offset : offset + len(text)] = text[: 4096 - offset]
    b = bytearray(a)
    b[0x20:0x24] = b"DIFF"
    b[0x123] ^= 0xFF
    b[0x200:0x210] = bytes(range(16))
    b[0x30000] = 1
    pa, pb = tmp_path / "disk.img", tmp_path / "backup.img"
    pa.write_bytes(bytes(a))
    pb.write_bytes(bytes(b))
    return pa, pb


async def _ready(pilot, *keys: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        screen = pilot.app.screen_under_test
        ready = screen is not None and screen.is_mounted and screen.diffs.complete
        if ready and not screen.view_a.in_flight and not screen.view_b.in_flight:
            break
        assert time.monotonic() < deadline, "the comparison did not finish"
        await pilot.pause(0.02)
    for key in keys:
        await pilot.press(key)
        await pilot.pause(0.05)
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_compare_screen(snap_compare, images, size):
    async def run_before(pilot):
        await _ready(pilot, "right_curly_bracket", "right_curly_bracket")

    assert snap_compare(CompareHarness(*images), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_compare_screen_with_the_list(snap_compare, images, size):
    async def run_before(pilot):
        await _ready(pilot, "l")

    assert snap_compare(CompareHarness(*images), terminal_size=size, run_before=run_before)
