"""The crash-safe undo journal of the hex editor.

Before the editor writes to an export it records the old and new bytes of every range
(:meth:`Journal.record`, durable when it returns), then writes, then marks the entry
``written`` (or ``failed``). An entry can be reverted later, even after a restart or a
crash in the middle of a commit: an entry still ``pending`` means "the old bytes are
saved, the write may or may not have happened", and writing its old bytes back is
always safe.

Storage is SQLite in WAL mode with ``synchronous=FULL``: a transaction is on disk
(the WAL fsync'd) when its COMMIT returns, so :meth:`Journal.record` is durable.
Several processes may read and write the same journal at once.

The journal holds other people's disk bytes: it is created 0600 in a directory 0700
(:mod:`nbdtui.editor.private_files`), and its stored endpoint has no secrets
(:func:`nbdtui.uri.without_secrets`). A file whose tables are not the journal's (another
program's, or an nbdtui too different) is refused with a one-line error and left alone.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nbdtui.editor.private_files import private_database
from nbdtui.errors import JournalError
from nbdtui.uri import without_secrets

__all__ = ["STATES", "Journal", "JournalEntry", "JournalError", "JournalRange", "default_path"]

STATES = ("pending", "written", "failed", "reverted")
_MAX_OFFSET = 2**63 - 1  # SQLite integers are signed 64-bit
_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class JournalRange:
    offset: int
    old: bytes
    new: bytes


@dataclass(frozen=True)
class JournalEntry:
    id: int
    created: float  # unix time
    endpoint: str  # URI without secrets
    export: str
    state: str  # "pending" | "written" | "failed" | "reverted"
    ranges: tuple[JournalRange, ...]
    note: str = ""
    updated: float = 0.0  # unix time of the last state change
    range_count: int = 0
    byte_count: int = 0  # bytes covered by the ranges
    ranges_loaded: bool = True  # False in listings: call Journal.get() for the bytes

    def undo_ranges(self) -> tuple[JournalRange, ...]:
        """Ranges that put the old bytes back (old and new swapped)."""
        if not self.ranges_loaded:
            raise JournalError(f"journal entry {self.id} was listed without its bytes; get() it")
        return tuple(JournalRange(r.offset, r.new, r.old) for r in self.ranges)


def default_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("nbdtui")) / "journal.sqlite3"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    endpoint TEXT NOT NULL,
    export TEXT NOT NULL,
    state TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    range_count INTEGER NOT NULL,
    byte_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_endpoint ON entries (endpoint, id);
CREATE TABLE IF NOT EXISTS ranges (
    entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    old BLOB NOT NULL,
    new BLOB NOT NULL,
    PRIMARY KEY (entry_id, seq)
);
"""


class Journal:
    """An undo journal in one SQLite file; thread-safe, usable as a context manager."""

    def __init__(self, path: Path | str | None = None, *, timeout: float = 10.0):
        self.path = Path(path) if path is not None else default_path()
        self._lock = threading.Lock()
        try:
            private_database(self.path, ours=path is None)
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the undo journal {self.path}: {exc}") from exc
        try:
            self._check_columns()  # before anything is changed in a file not ours
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise JournalError(
                    f"the undo journal {self.path} was written by a newer nbdtui"
                    f" (schema {version}); upgrade nbdtui or use another journal file"
                )
            # Taking the write lock here proves the file is writable before any edit.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if version < _SCHEMA_VERSION:
                    self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except JournalError:
            self._db.close()
            raise
        except sqlite3.Error as exc:
            self._db.close()
            raise JournalError(f"cannot use the undo journal {self.path}: {exc}") from exc

    def _check_columns(self) -> None:
        """Refuse existing tables of the journal's names without the journal's columns."""
        for table, wanted in _TABLE_COLUMNS.items():
            rows = self._db.execute(f"PRAGMA table_info({table})").fetchall()
            have = {row[1] for row in rows}
            if rows and not wanted <= have:
                missing = ", ".join(sorted(wanted - have))
                raise JournalError(
                    f"{self.path} is not an nbdtui undo journal (its table {table} has no"
                    f" column {missing}); move it aside or give another file with --journal"
                )

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _fail(self, what: str, exc: sqlite3.Error) -> JournalError:
        return JournalError(f"undo journal {self.path}: cannot {what}: {exc}")

    def record(
        self, endpoint: str, export: str, ranges: Sequence[JournalRange], note: str = ""
    ) -> int:
        """Save the ranges as a new ``pending`` entry; durable on disk when it returns."""
        for r in ranges:
            if not 0 <= r.offset <= _MAX_OFFSET or len(r.old) != len(r.new):
                raise JournalError(
                    f"bad journal range at offset {r.offset}: the offset must be in 0…2⁶³-1"
                    " and old and new bytes the same length"
                )
        now = time.time()
        byte_count = sum(len(r.old) for r in ranges)
        stored = without_secrets(endpoint)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    cur = self._db.execute(
                        "INSERT INTO entries (created, updated, endpoint, export, state, note,"
                        " range_count, byte_count) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                        (now, now, stored, export, note, len(ranges), byte_count),
                    )
                    entry_id = cur.lastrowid
                    if entry_id is None:  # never after an INSERT; typeshed allows it
                        raise JournalError(f"undo journal {self.path}: no id for the entry")
                    self._db.executemany(
                        "INSERT INTO ranges (entry_id, seq, offset, old, new) VALUES (?,?,?,?,?)",
                        (
                            (entry_id, seq, r.offset, bytes(r.old), bytes(r.new))
                            for seq, r in enumerate(ranges)
                        ),
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._fail("record the edit", exc) from exc
        return entry_id

    def mark(self, entry_id: int, state: str) -> None:
        """Set the state of an entry (durable when it returns)."""
        if state not in STATES:
            raise JournalError(f"unknown journal state {state!r}; expected one of {STATES}")
        with self._lock:
            try:
                cur = self._db.execute(
                    "UPDATE entries SET state = ?, updated = ? WHERE id = ?",
                    (state, time.time(), entry_id),
                )
            except sqlite3.Error as exc:
                raise self._fail("update the entry", exc) from exc
        if cur.rowcount == 0:
            raise JournalError(f"the undo journal has no entry {entry_id}")

    def get(self, entry_id: int) -> JournalEntry:
        """One entry with all its ranges."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    row = self._db.execute(
                        f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,)
                    ).fetchone()
                    rows = self._db.execute(
                        "SELECT offset, old, new FROM ranges WHERE entry_id = ? ORDER BY seq",
                        (entry_id,),
                    ).fetchall()
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._fail("read the entry", exc) from exc
        if row is None:
            raise JournalError(f"the undo journal has no entry {entry_id}")
        ranges = tuple(JournalRange(o, bytes(old), bytes(new)) for o, old, new in rows)
        return _entry(row, ranges, loaded=True)

    def entries(
        self, endpoint: str | None = None, limit: int = 100, *, with_ranges: bool = False
    ) -> list[JournalEntry]:
        """The newest entries first, for one endpoint or all.

        To keep memory small the entries come without their bytes (``ranges == ()``,
        ``ranges_loaded`` False) unless ``with_ranges``; :meth:`get` loads one fully.
        """
        query = f"SELECT {_COLUMNS} FROM entries"
        args: tuple[str, ...] = ()
        if endpoint is not None:
            query += " WHERE endpoint = ?"
            args = (without_secrets(endpoint),)
        query += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            try:
                rows = self._db.execute(query, (*args, max(0, limit))).fetchall()
            except sqlite3.Error as exc:
                raise self._fail("list the entries", exc) from exc
        if with_ranges:
            return [self.get(row[0]) for row in rows]
        return [_entry(row, (), loaded=False) for row in rows]


_COLUMNS = "id, created, endpoint, export, state, note, updated, range_count, byte_count"
_TABLE_COLUMNS = {
    "entries": frozenset(_COLUMNS.split(", ")),
    "ranges": frozenset(("entry_id", "seq", "offset", "old", "new")),
}


# The columns of _COLUMNS, in order.
_Row = tuple[int, float, str, str, str, str, float, int, int]


def _entry(row: _Row, ranges: tuple[JournalRange, ...], *, loaded: bool) -> JournalEntry:
    entry_id, created, endpoint, export, state, note, updated, count, nbytes = row
    return JournalEntry(
        id=entry_id,
        created=created,
        endpoint=endpoint,
        export=export,
        state=state,
        ranges=ranges,
        note=note,
        updated=updated,
        range_count=count,
        byte_count=nbytes,
        ranges_loaded=loaded,
    )
