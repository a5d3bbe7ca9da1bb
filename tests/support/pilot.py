"""Driving the Textual app in pilot tests: typing, waiting, reading widgets, and
:class:`EditorHarness`, an app that opens an export with the real client and shows
:class:`~nbdtui.tui.screens.sector_editor.EditorScreen` on it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.widgets import Input, OptionList, Static

import nbdtui
from nbdtui.client.pool import Pool
from nbdtui.disk.demo_image import build_demo_image
from nbdtui.editor.bookmarks import Bookmarks
from nbdtui.editor.journal import Journal
from nbdtui.tui.screens.sector_editor import EditorScreen

# The terminal size of the app's snapshots.
SNAP_SIZE = (100, 32)

# --------------------------------------------------------------------------- the app


def text_of(widget: Static) -> str:
    """The plain text a Static shows (markup removed)."""
    return str(widget.render()).strip()


def option_prompts(options: OptionList) -> list[str]:
    """The text of every option of ``options``, in order."""
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


def screen_lines(app) -> list[str]:
    """Every line of the screen as the terminal would show it (all layers composed)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def type_uri(pilot, uri: str) -> None:
    """Replace the connect screen's URI field with ``uri``, as typed."""
    field = pilot.app.screen.query_one("#uri", Input)
    field.focus()
    field.value = ""
    await pilot.press(*uri)
    await pilot.pause()


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Let the app run until ``predicate()`` is true (workers do the network calls)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await pilot.pause(0.05)


# --------------------------------------------------------------------------- the editor


class EditorHarness(App):
    """An app that only opens ``uri`` and shows the editor on it."""

    def __init__(
        self,
        uri: str,
        journal: Path | None = None,
        sector_size: int = 512,
        bookmarks: Path | None = None,
    ) -> None:
        super().__init__()
        self.uri = uri
        self.journal = Journal(journal) if journal else None
        self.bookmarks = Bookmarks(bookmarks) if bookmarks else None
        self.sector_size = sector_size
        self.editor: EditorScreen | None = None
        self.closed = False

    async def on_mount(self) -> None:
        self.pool = Pool()
        self.stack = contextlib.AsyncExitStack()
        self.export = await self.stack.enter_async_context(nbdtui.open(self.uri, pool=self.pool))
        self.editor = EditorScreen(
            self.export,
            journal=self.journal,
            sector_size=self.sector_size,
            bookmarks=self.bookmarks,
        )
        await self.push_screen(self.editor, lambda _: setattr(self, "closed", True))

    async def on_unmount(self) -> None:
        await self.stack.aclose()
        await self.pool.close()
        if self.journal:
            self.journal.close()
        if self.bookmarks:
            self.bookmarks.close()


async def settle(pilot, timeout: float = 20.0) -> None:
    """Wait until the editor is up and no fetch, search or write is running. The survey
    of filesystems (worker group "structures") runs in the background and is not waited
    for: :func:`structures_ready` waits for it."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while True:
        editor = getattr(app, "editor", None)
        busy = [w for w in app.workers if w.is_running and w.group != "structures"]
        if app.closed and not busy:
            break
        if editor is not None and editor.is_mounted and not editor.view.in_flight and not busy:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"editor still busy: {busy}")
        await pilot.pause(0.02)
    await pilot.pause()


async def structures_ready(pilot) -> None:
    """Wait until the editor has surveyed the export's filesystems (names of fields)."""
    await wait_for(pilot, lambda: pilot.app.editor.structures.survey is not None)
    await pilot.pause()


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def rows(app) -> list[str]:
    """The text of the hex view's rows, as shown."""
    view = app.editor.view
    return [view.render_line(y).text for y in range(view.size.height)]


def status(app) -> str:
    return str(app.editor.query_one("#editor-status", Static).render())


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def save_demo_image(directory: Path) -> Path:
    """The demo disk (GPT, four partitions, fixed bytes) as a raw image file."""
    path = directory / "demo.img"
    build_demo_image().save(path)
    return path
