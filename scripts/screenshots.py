#!/usr/bin/env python3
"""Screenshots of nbdtui's main screens, as SVG files, for the README.

    PYTHONPATH=. python3 scripts/screenshots.py [--out assets/screenshots]

Starts the embedded demo server (``nbdtui.server.demo_exports``, the one ``nbdtui demo``
uses), drives the real app on it at a fixed terminal size, the way the UI tests do
(``App.run_test``), and writes one ``NAME.svg`` per screen (see ``SCREENS``), then
prints their paths.

The pictures are the same on every run: the terminal is ``SIZE``; the app's config and
data directories are a fresh temporary folder (no recent endpoints, no journal); the
demo server's socket, which lives in a random temporary directory, is reached through
a symbolic link ``demo.sock`` in the working directory, so that every URI on screen is
``nbd+unix:///...?socket=demo.sock``; notifications are cleared and the text cursor
does not blink. No screen of nbdtui shows a clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from nbdtui.server.demo_exports import DemoThread
from nbdtui.tui.app import NbdtuiApp, create_app
from nbdtui.tui.history import History
from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.tui.screens.help import HelpScreen
from nbdtui.tui.screens.pool_monitor import PoolScreen
from nbdtui.tui.screens.remote_exports import ServerScreen
from nbdtui.tui.screens.sector_editor import EditorScreen
from nbdtui.uri import parse

SIZE = (100, 30)
SOCKET = "demo.sock"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "assets" / "screenshots"

# name -> what the picture shows, in the order they are taken
SCREENS = {
    "connect": "the connect screen, with a URI typed and what it parses to",
    "exports": "the exports of the demo server",
    "export": "the demo export: its size, flags and allocation bar",
    "editor": "the sector editor on the GPT header (sector 1)",
    "pool": "the connections of the pool (F2)",
    "help": "the keys of the sector editor (F1)",
}

_XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")


async def _wait_for(pilot: Pilot[int], done: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 30
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def _settle(pilot: Pilot[int]) -> None:
    """Let the screen finish what it loads; nothing that depends on timing stays."""
    app = pilot.app
    await asyncio.wait_for(app.workers.wait_for_complete(), 30)
    await pilot.pause()
    app.clear_notifications()
    for field in app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(0.2)
    await pilot.pause()


async def _shoot(app: NbdtuiApp, server_uri: str, out: Path) -> list[Path]:
    written: list[Path] = []

    async def shot(pilot: Pilot[int], name: str) -> None:
        await _settle(pilot)
        path = out / f"{name}.svg"
        path.write_text(app.export_screenshot(title=f"nbdtui: {name}"), encoding="utf-8")
        written.append(path)

    async with app.run_test(size=SIZE) as pilot:
        field = app.screen.query_one("#uri", Input)
        field.focus()
        await pilot.press(*server_uri)
        await shot(pilot, "connect")

        await pilot.press("enter")
        await _wait_for(pilot, lambda: isinstance(app.screen, ServerScreen), "the exports")
        await shot(pilot, "exports")

        await pilot.press("enter")  # the first export: demo
        await _wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), "the export")
        await shot(pilot, "export")

        await pilot.press("e")
        await _wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), "the editor")
        await _settle(pilot)
        await pilot.press("pagedown")
        await shot(pilot, "editor")

        await pilot.press("f2")
        await _wait_for(pilot, lambda: isinstance(app.screen, PoolScreen), "the pool")
        await shot(pilot, "pool")

        await pilot.press("escape")
        await _wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), "the editor")
        await pilot.press("f1")
        await _wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await shot(pilot, "help")
    return written


def take(out: Path) -> list[Path]:
    """Write every screenshot of ``SCREENS`` into ``out``; return their paths."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    saved = {var: os.environ.get(var) for var in _XDG}
    with tempfile.TemporaryDirectory(prefix="nbdtui-screenshots-") as tmp:
        for var in _XDG:
            os.environ[var] = os.path.join(tmp, var.lower())
        demo = DemoThread(unix=True).start()
        try:
            os.chdir(tmp)
            socket = parse(demo.uri).socket
            assert socket is not None
            os.symlink(socket, SOCKET)
            uris = {name: parse(uri).replace(socket=SOCKET).uri for name, uri in demo.uris.items()}
            server = parse(uris["demo"]).replace(export="").uri
            app = create_app(None, uris, history=History(Path(tmp) / "history.sqlite3"))
            return asyncio.run(_shoot(app, server, out))
        finally:
            os.chdir(cwd)
            demo.stop()
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/screenshots.py", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"folder of the SVGs (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    for path in take(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
