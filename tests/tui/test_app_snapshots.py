"""Snapshots of each screen at a fixed terminal size with deterministic data.

Regenerate with ``pytest tests/tui/test_app_snapshots.py --snapshot-update`` and read
the SVGs (tests/tui/__snapshots__/) before committing them.
"""

from __future__ import annotations

from nbdtui.uri import parse
from tests.support.pilot import SNAP_SIZE

SERVER = parse("nbd://nas.example:10809/")


def test_connect_screen(snap_compare, make_app):
    app = make_app(demo_uris={"disk": "nbd+unix:///disk?socket=/run/nbdtui/demo.sock"})
    app.history.remember("nbd+unix:///vm?socket=/run/nbd/vm.sock")
    app.history.remember("nbds://nas.example/backup?tls-certificates=/etc/pki/nbd")

    async def run_before(pilot):
        await pilot.press(*"nbd://nas.example:10810/disk")

    assert snap_compare(app, run_before=run_before, terminal_size=SNAP_SIZE)


def test_connect_screen_shows_the_parser_error(snap_compare, make_app):
    async def run_before(pilot):
        await pilot.press(*"nbd://nas.example:99999/disk")

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SNAP_SIZE)


def test_server_screen(snap_compare, make_app, fake_listing):
    async def run_before(pilot):
        await pilot.app.show_server(SERVER, fake_listing)
        await pilot.press("down", "space")

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SNAP_SIZE)


def _open_fake(app, export):
    session = app.add_session(SERVER.with_export(export.name), export)
    return session


def test_export_screen(snap_compare, make_app, fake_disk):
    async def run_before(pilot):
        session = _open_fake(pilot.app, fake_disk)
        await pilot.app.switch_mode(session.mode)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("right", "right", "down")

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SNAP_SIZE)


def test_pool_screen(snap_compare, make_app, fake_disk):
    async def run_before(pilot):
        session = _open_fake(pilot.app, fake_disk)
        await pilot.app.switch_mode(session.mode)
        await pilot.press("f2")
        await pilot.pause()

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SNAP_SIZE)


def test_help_screen_on_the_export_screen(snap_compare, make_app, fake_disk):
    async def run_before(pilot):
        session = _open_fake(pilot.app, fake_disk)
        await pilot.app.switch_mode(session.mode)
        await pilot.app.workers.wait_for_complete()
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SNAP_SIZE)
