"""Snapshot of the server screen's "Open" column (which exports this app holds open and
their pending edits) at 80x24 and 120x40. The pilot test with a real server is
tests/tui/test_app_server.py; here the open state is fixed for a stable picture."""

from __future__ import annotations

import pytest

from nbdtui.uri import parse

SERVER = parse("nbd+unix:///?socket=/run/nbd/demo.sock")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_server_screen_shows_open_exports(snap_compare, make_app, fake_listing, size):
    async def run_before(pilot):
        pilot.app.open_exports_of = lambda endpoint: {"disk": 3, "scratch": 0}
        await pilot.app.show_server(SERVER, fake_listing)
        await pilot.pause()

    assert snap_compare(make_app(), run_before=run_before, terminal_size=size)
