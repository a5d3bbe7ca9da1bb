"""Recently used endpoints, remembered between runs for the connect screen.

The list lives in an SQLite database in the user's config directory
(``platformdirs.user_config_path("nbdtui")/history.sqlite3``), opened in WAL mode so
that several nbdtui processes can read and write it at once.

**Nothing secret is stored.** Before an endpoint is written,
:func:`nbdtui.uri.without_secrets` removes a password in the user part, every query
parameter that names or points to a secret (``tls-psk-file``, ``x-api-token``...) and
the fragment. An endpoint that needed a PSK file must be given its ``tls-psk-file``
again when it is reused. The file is private all the same: 0600 in a directory 0700
(:mod:`nbdtui.editor.private_files`).

**A file of another layout never stops the UI.** When its ``endpoints`` table has other
columns (an older or newer nbdtui, another program), the file is set aside under a new
name (``history.sqlite3.other-20260101-120000``), a new one is made, and the endpoints
that can be read from the old one (a ``uri`` column) are carried over; ``warning`` then
says so, naming the new name, and the UI shows it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nbdtui.editor.private_files import SQLITE_SIDE_FILES, private_database
from nbdtui.uri import without_secrets

DEFAULT_LIMIT = 50

_SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (
    uri TEXT PRIMARY KEY,
    last_used REAL NOT NULL,
    uses INTEGER NOT NULL DEFAULT 1,
    seq INTEGER NOT NULL
)
"""
_COLUMNS = frozenset(("uri", "last_used", "uses", "seq"))


def canonical(uri: str) -> str:
    """The parser's canonical spelling of ``uri`` when it parses, else ``uri`` itself,
    without secrets; two spellings of one endpoint are remembered once."""
    try:
        from nbdtui.uri import parse

        uri = parse(uri).uri
    except Exception:  # an unparsable or not yet supported spelling: keep it as typed
        pass
    return without_secrets(uri)


def default_path() -> Path:
    from platformdirs import user_config_path

    return user_config_path("nbdtui") / "history.sqlite3"


@dataclass(frozen=True)
class Entry:
    """One remembered endpoint."""

    uri: str
    last_used: float
    uses: int


class History:
    """The recently used endpoints, newest first, at most ``limit`` of them."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, limit: int = DEFAULT_LIMIT):
        self.path = Path(path) if path is not None else default_path()
        self.limit = limit
        self.warning: str | None = None  # set when a file of another layout was set aside
        private_database(self.path, ours=path is None)
        self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        try:
            # Read before anything is written, so that a file set aside stays as it was.
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(endpoints)")}
        except BaseException:
            self._db.close()  # not a database at all: the caller says so
            raise
        if columns and columns != _COLUMNS:
            self._set_aside("uri" in columns)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def _set_aside(self, has_uris: bool) -> None:
        """Move a file whose ``endpoints`` table nbdtui does not know out of the way,
        start a new one, and carry over the endpoints it names."""
        uris: list[str] = []
        if has_uris:
            with contextlib.suppress(sqlite3.Error):
                rows = self._db.execute("SELECT uri FROM endpoints ORDER BY rowid").fetchall()
                uris = [uri for (uri,) in rows if isinstance(uri, str) and uri]
        self._db.close()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.other-{stamp}")
        for suffix in ("", *SQLITE_SIDE_FILES):
            old = self.path.with_name(self.path.name + suffix)
            if old.exists():
                old.rename(aside.with_name(aside.name + suffix))
        private_database(self.path, ours=False)  # its directory was seen to already
        self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        carried = 0
        for uri in uris[-self.limit :]:
            with contextlib.suppress(Exception):  # one odd row does not stop the rest
                self.remember(uri)
                carried += 1
        self.warning = f"the recent endpoints file had another layout: it is now {aside.name}" + (
            f" ({carried} endpoints carried over)" if carried else ""
        )

    @property
    def journal_mode(self) -> str:
        mode: str = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        return mode

    def remember(self, uri: str) -> str:
        """Record a use of ``uri`` now; returns the spelling that was stored."""
        stored = canonical(uri)
        with self._transaction():
            (seq,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM endpoints").fetchone()
            self._db.execute(
                "INSERT INTO endpoints (uri, last_used, uses, seq) VALUES (?, ?, 1, ?) "
                "ON CONFLICT(uri) DO UPDATE SET last_used = excluded.last_used, "
                "uses = uses + 1, seq = excluded.seq",
                (stored, time.time(), seq),
            )
            self._db.execute(
                "DELETE FROM endpoints WHERE uri NOT IN "
                "(SELECT uri FROM endpoints ORDER BY seq DESC LIMIT ?)",
                (self.limit,),
            )
        return stored

    def recent(self, limit: int | None = None) -> list[Entry]:
        """Remembered endpoints, most recently used first."""
        rows = self._db.execute(
            "SELECT uri, last_used, uses FROM endpoints ORDER BY seq DESC LIMIT ?",
            (limit if limit is not None else self.limit,),
        ).fetchall()
        return [Entry(*row) for row in rows]

    def forget(self, uri: str) -> None:
        self._db.execute("DELETE FROM endpoints WHERE uri IN (?, ?)", (uri, canonical(uri)))

    def clear(self) -> None:
        self._db.execute("DELETE FROM endpoints")

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
