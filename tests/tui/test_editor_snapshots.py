"""Snapshots of the hex editor on the demo disk served by qemu-nbd from a file.

Deterministic: fixed terminal size, the demo image (fixed bytes), every fetch landed
before the picture is taken, and the socket path (which changes from run to run) kept
out of the picture.
"""

from __future__ import annotations

import pytest

from nbdtui.disk.demo_image import HELLO_OFFSET
from tests.support.pilot import (
    EditorHarness,
    press,
    settle,
    structures_ready,
)

SIZE = (110, 36)


@pytest.fixture(autouse=True)
def _fixed_target(monkeypatch):
    """The review names the export's URI: show a fixed one instead of a temp path."""
    monkeypatch.setattr(
        "nbdtui.tui.screens.sector_editor.endpoint_of", lambda export: "nbd+unix:///disk"
    )


async def _open(pilot, *keys: str) -> None:
    await settle(pilot)
    await structures_ready(pilot)  # the names of sectors and fields are on screen
    pilot.app.editor.sub_title = "demo disk"
    for key in keys:
        await press(pilot, key)


def test_editor_on_the_gpt_header(snap_compare, demo_uri):
    """Sector 1 (the GPT header) with its sector boundary, cursor on the signature."""

    async def run_before(pilot):
        await _open(pilot, "pagedown", "right", "right")

    assert snap_compare(EditorHarness(demo_uri), terminal_size=SIZE, run_before=run_before)


def test_inspector_on_the_mbr_signature(snap_compare, demo_uri):
    async def run_before(pilot):
        await _open(pilot, "i", "ctrl+g")
        await pilot.press(*"0x1fe", "enter")
        await settle(pilot)

    assert snap_compare(EditorHarness(demo_uri), terminal_size=SIZE, run_before=run_before)


def test_partition_overlay(snap_compare, demo_uri):
    async def run_before(pilot):
        await _open(pilot, "p")

    assert snap_compare(EditorHarness(demo_uri), terminal_size=SIZE, run_before=run_before)


def test_pending_edits_in_write_mode(snap_compare, demo_uri):
    """Typed bytes are highlighted until they are committed; the status counts them."""

    async def run_before(pilot):
        await _open(pilot, "ctrl+g")
        await pilot.press(*hex(HELLO_OFFSET), "enter")
        await settle(pilot)
        await press(pilot, "e", "y", "4", "1", "tab", "H", "i", "down")

    assert snap_compare(EditorHarness(demo_uri), terminal_size=SIZE, run_before=run_before)


def test_review_before_commit(snap_compare, demo_uri):
    async def run_before(pilot):
        await _open(pilot, "ctrl+g")
        await pilot.press(*hex(HELLO_OFFSET), "enter")
        await settle(pilot)
        await press(pilot, "e", "y", "4", "1", "tab", "H", "i", "down", "x", "ctrl+s")

    assert snap_compare(EditorHarness(demo_uri), terminal_size=SIZE, run_before=run_before)
