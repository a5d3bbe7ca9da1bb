"""The undo journal and the recent endpoints are private: files 0600, directories 0700,
whatever the umask; files (and SQLite's side files) found more open are tightened; a
directory is tightened only when it is nbdtui's own default one."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbdtui.editor.journal import Journal, JournalRange
from nbdtui.editor.journal import default_path as journal_path
from nbdtui.tui.history import History
from nbdtui.tui.history import default_path as history_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most open umask there is: 0 (files 0666, directories 0777 by default)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def xdg(monkeypatch, tmp_path: Path) -> Path:
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "home" / var.lower()))
    return tmp_path / "home"


def use_journal(path: Path | None) -> Path:
    with Journal(path) as journal:
        journal.record("nbd://h/e", "e", [JournalRange(0, b"old", b"new")])
        return journal.path


def use_history(path: Path | None) -> Path:
    with History(path) as history:
        history.remember("nbd://h/e")
        return history.path


USERS = [
    pytest.param(use_journal, journal_path, id="journal"),
    pytest.param(use_history, history_path, id="history"),
]


@pytest.mark.parametrize(("use", "default"), USERS)
def test_created_private_whatever_the_umask(open_umask, xdg, use, default) -> None:
    path = use(None)
    assert path == default()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700  # .../nbdtui
    assert mode(path.parent.parent) == 0o700  # a missing parent made on the way
    for side in path.parent.iterdir():  # -wal, -shm while open: the same mode
        assert mode(side) == 0o600, side


@pytest.mark.parametrize(("use", "default"), USERS)
def test_side_files_are_private_while_open(open_umask, xdg, use, default) -> None:
    opened = Journal() if use is use_journal else History()
    try:
        if use is use_journal:
            opened.record("nbd://h/e", "e", [JournalRange(0, b"a", b"b")])
        else:
            opened.remember("nbd://h/e")
        sides = [p for p in default().parent.iterdir() if p != default()]
        assert sides, "WAL mode keeps -wal and -shm files while open"
        assert {p.name: mode(p) for p in sides} == {p.name: 0o600 for p in sides}
    finally:
        opened.close()


@pytest.mark.parametrize(("use", "default"), USERS)
def test_existing_ones_are_tightened(xdg, use, default) -> None:
    path = use(None)
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(b"")
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    os.chmod(wal, 0o664)
    use(None)
    assert (mode(path.parent), mode(path)) == (0o700, 0o600)
    assert not wal.exists() or mode(wal) == 0o600


@pytest.mark.parametrize(("use", "default"), USERS)
def test_a_given_path_is_private_but_its_shared_directory_is_left_alone(
    open_umask, tmp_path, use, default
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    given = shared / "mine.sqlite3"
    given.write_bytes(b"")
    os.chmod(given, 0o666)
    use(given)
    assert mode(given) == 0o600
    assert mode(shared) == 0o777
    made = use(tmp_path / "new" / "dir" / "x.sqlite3")
    assert (mode(made), mode(made.parent), mode(made.parent.parent)) == (0o600, 0o700, 0o700)
