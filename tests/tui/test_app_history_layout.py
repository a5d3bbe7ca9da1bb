"""The UI starts whatever the recent-endpoints file holds: a file of another layout is
set aside (its endpoints carried over) with a warning naming the new name."""

from __future__ import annotations

import sqlite3

from nbdtui.tui.history import default_path
from nbdtui.tui.screens.connect import ConnectScreen
from tests.support.pilot import notes, wait_for


async def test_the_ui_starts_with_a_history_of_another_layout(make_app):
    path = default_path()  # in the test's own XDG_CONFIG_HOME (tests/tui/conftest.py)
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE endpoints (uri TEXT, favourite INTEGER NOT NULL, tags TEXT)")
    db.execute("INSERT INTO endpoints VALUES ('nbd://kept.example/disk', 1, 'a,b')")
    db.commit()
    db.close()

    app = make_app(history=None)  # the app opens the default file itself
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen))
        await pilot.pause()
        (aside,) = path.parent.glob("history.sqlite3.other-*")
        assert any(
            f"it is now {aside.name}" in note and "1 endpoints carried over" in note
            for note in notes(app)
        ), notes(app)
        assert app.recent_uris() == ["nbd://kept.example/disk"]
        assert app.return_code is None  # still running


async def test_the_ui_starts_with_a_history_that_is_not_a_database(make_app):
    path = default_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not SQLite at all " * 64)
    app = make_app(history=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen))
        await pilot.pause()
        assert any("recent endpoints are not remembered" in n for n in notes(app)), notes(app)
        assert app.recent_uris() == []
    assert path.read_bytes() == b"not SQLite at all " * 64  # left alone
