"""Named bookmarks of the hex editor, kept per export across runs.

They live in a table of their own (``bookmarks``) in the SQLite database of the recent
endpoints (the caller passes its path), opened in WAL mode so that several nbdtui
processes can share it. An export is known by its endpoint string without secrets
(:func:`nbdtui.editor.commit.endpoint_of`): a bookmark set on ``nbd://host/disk`` shows
again the next time ``nbd://host/disk`` is opened, and nowhere else.

The directory is made ``0700`` and the database file ``0600`` (SQLite gives its ``-wal``
and ``-shm`` files the database's mode): offsets in someone's disk are their business.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from nbdtui.errors import BookmarkError

_COLUMNS = ("endpoint", "name", "offset", "created")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookmarks (
    endpoint TEXT NOT NULL,
    name TEXT NOT NULL,
    offset INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (endpoint, name)
)
"""

MAX_NAME = 80


@dataclass(frozen=True)
class Bookmark:
    name: str
    offset: int


def _private_file(path: Path) -> None:
    """Create ``path`` (and its directory) readable by its owner only."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class Bookmarks:
    """The bookmarks of every export, in one SQLite table."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            _private_file(self.path)
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            columns = tuple(row[1] for row in self._db.execute("PRAGMA table_info(bookmarks)"))
        except (OSError, sqlite3.Error) as exc:
            raise BookmarkError(f"cannot open the bookmarks in {self.path}: {exc}") from exc
        if columns != _COLUMNS:
            self._db.close()
            raise BookmarkError(
                f"{self.path} has a 'bookmarks' table of another program "
                f"(columns {', '.join(columns)}): bookmarks are not kept"
            )

    def add(self, endpoint: str, name: str, offset: int) -> Bookmark:
        """Set bookmark ``name`` of ``endpoint`` to ``offset`` (a name set again moves)."""
        name = " ".join(name.split())[:MAX_NAME]
        if not name:
            raise ValueError("a bookmark needs a name")
        if offset < 0:
            raise ValueError("a bookmark's offset cannot be negative")
        self._db.execute(
            "INSERT INTO bookmarks (endpoint, name, offset, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(endpoint, name) DO UPDATE SET offset = excluded.offset",
            (endpoint, name, offset, time.time()),
        )
        return Bookmark(name, offset)

    def list(self, endpoint: str) -> list[Bookmark]:
        """The bookmarks of ``endpoint`` in offset order."""
        rows = self._db.execute(
            "SELECT name, offset FROM bookmarks WHERE endpoint = ? ORDER BY offset, name",
            (endpoint,),
        ).fetchall()
        return [Bookmark(name, offset) for name, offset in rows]

    def delete(self, endpoint: str, name: str) -> bool:
        """Remove bookmark ``name`` of ``endpoint``; whether there was one."""
        cursor = self._db.execute(
            "DELETE FROM bookmarks WHERE endpoint = ? AND name = ?", (endpoint, name)
        )
        return cursor.rowcount > 0

    def close(self) -> None:
        self._db.close()
