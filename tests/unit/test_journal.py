"""The crash-safe undo journal (SQLite, WAL, synchronous=FULL)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from nbdtui.editor.journal import Journal, JournalEntry, JournalRange, default_path
from nbdtui.errors import JournalError, NbdError


@pytest.fixture
def journal(tmp_path: Path):
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


RANGES = [
    JournalRange(0, b"\x00\x01", b"\xff\xfe"),
    JournalRange(4096, b"old text", b"new text"),
    JournalRange(2**40, bytes(1000), b"\x5a" * 1000),
]


def test_record_get_round_trip(journal: Journal) -> None:
    entry_id = journal.record("nbd://host:10809/disk", "disk", RANGES, note="fix boot sector")
    entry = journal.get(entry_id)
    assert isinstance(entry, JournalEntry)
    assert entry.id == entry_id and entry.state == "pending"
    assert (entry.endpoint, entry.export, entry.note) == (
        "nbd://host:10809/disk",
        "disk",
        "fix boot sector",
    )
    assert entry.ranges == tuple(RANGES)
    assert entry.range_count == 3 and entry.byte_count == 2 + 8 + 1000
    assert entry.created > 0 and entry.updated == entry.created
    assert entry.undo_ranges()[1] == JournalRange(4096, b"new text", b"old text")


def test_mark_and_entries_newest_first(journal: Journal) -> None:
    a = journal.record("nbd://a/x", "x", RANGES[:1])
    b = journal.record("nbd://b/y", "y", RANGES[1:2])
    c = journal.record("nbd://a/x", "x", RANGES[2:])
    journal.mark(a, "written")
    journal.mark(b, "failed")
    journal.mark(a, "reverted")
    listed = journal.entries()
    assert [e.id for e in listed] == [c, b, a]
    assert [e.state for e in listed] == ["pending", "failed", "reverted"]
    assert all(e.ranges == () and not e.ranges_loaded for e in listed)
    assert listed[0].byte_count == 1000 and listed[0].range_count == 1
    with pytest.raises(JournalError):
        listed[0].undo_ranges()
    assert [e.id for e in journal.entries("nbd://a/x")] == [c, a]
    assert [e.id for e in journal.entries(limit=1)] == [c]
    full = journal.entries("nbd://b/y", with_ranges=True)
    assert full[0].ranges == (RANGES[1],) and full[0].ranges_loaded
    assert journal.get(a).updated >= journal.get(a).created


def test_errors(journal: Journal, tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no entry 999"):
        journal.get(999)
    with pytest.raises(JournalError, match="no entry 999"):
        journal.mark(999, "written")
    entry_id = journal.record("nbd://h/e", "e", RANGES)
    with pytest.raises(JournalError, match="unknown journal state"):
        journal.mark(entry_id, "done")
    with pytest.raises(JournalError, match="same length"):
        journal.record("nbd://h/e", "e", [JournalRange(0, b"ab", b"c")])
    with pytest.raises(JournalError):
        journal.record("nbd://h/e", "e", [JournalRange(2**63, b"a", b"b")])
    assert issubclass(JournalError, NbdError)
    # Nothing of the refused records was stored.
    assert [e.id for e in journal.entries()] == [entry_id]


def test_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError, match="cannot open the undo journal"):
        Journal(blocker / "journal.sqlite3")
    with pytest.raises(JournalError):
        Journal(tmp_path)  # a directory, not a database


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="cannot use the undo journal"):
        Journal(path)


def test_closed_journal_raises_journal_error(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    j.close()
    with pytest.raises(JournalError):
        j.entries()


def test_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        j.record("nbd://h/e", "e", RANGES)
        assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_secrets_are_not_stored(journal: Journal) -> None:
    entry_id = journal.record("nbd://alice:hunter2@host/disk", "disk", RANGES[:1])
    assert journal.get(entry_id).endpoint == "nbd://alice@host/disk"
    assert [e.id for e in journal.entries("nbd://alice:other@host/disk")] == [entry_id]


def test_the_stored_endpoint_follows_the_one_secret_rule(journal: Journal) -> None:
    uri = (
        "nbds://alice:pw@host/disk?tls-psk-file=/home/a/k.psk&tls-certificates=/home/a/pki"
        "&x-token=t&x-note=n&tls-type=psk"
    )
    entry_id = journal.record(uri, "disk", RANGES[:1])
    assert journal.get(entry_id).endpoint == "nbds://alice@host/disk?tls-type=psk"
    raw = b"".join(p.read_bytes() for p in journal.path.parent.glob(journal.path.name + "*"))
    for secret in (b"k.psk", b"/home/a/pki", b"x-token", b"x-note", b"pw@"):
        assert secret not in raw


@pytest.mark.parametrize(
    ("schema", "missing"),
    [
        ("CREATE TABLE entries (id INTEGER PRIMARY KEY, what TEXT)", "byte_count, created"),
        (
            "CREATE TABLE ranges (entry_id INTEGER, position INTEGER, data BLOB)",
            "new, offset, old, seq",
        ),
    ],
)
def test_a_file_with_other_tables_is_refused_in_one_line(
    tmp_path: Path, schema: str, missing: str
) -> None:
    path = tmp_path / "journal.sqlite3"
    db = sqlite3.connect(path)
    db.execute(schema)
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(JournalError) as info:
        Journal(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not an nbdtui undo journal (its table ")
    assert f"has no column {missing}" in message
    assert message.endswith("move it aside or give another file with --journal")
    assert "\n" not in message
    assert path.read_bytes() == before  # left alone


def test_default_path_is_user_data_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "nbdtui" / "journal.sqlite3"
    with Journal() as j:
        assert j.path == default_path()
        j.record("nbd://h/e", "e", RANGES[:1])
    assert default_path().exists()


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        entry_id = j.record("nbd://h/e", "e", RANGES)
        j.mark(entry_id, "written")
    with Journal(path) as j:
        entry = j.get(entry_id)
        assert entry.state == "written" and entry.ranges == tuple(RANGES)


CHILD = textwrap.dedent(
    """
    import sys, time
    from nbdtui.editor.journal import Journal, JournalRange
    j = Journal(sys.argv[1])
    n = 0
    while True:
        entry_id = j.record(
            "nbd://h/e", "e", [JournalRange(n * 512, bytes(512), bytes([n % 256]) * 512)]
        )
        if n % 3 == 1:
            j.mark(entry_id, "written")
        print(entry_id, flush=True)
        n += 1
        if sys.argv[2] == "one":
            time.sleep(3600)
    """
)


def spawn(path: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode], stdout=subprocess.PIPE, text=True
    )


def test_record_is_durable_when_the_process_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    proc = spawn(path, "one")
    try:
        entry_id = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)  # right after record() returned
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert Path(str(path) + "-wal").exists()  # the commit lives in the WAL, not checkpointed
    with Journal(path) as j:
        entry = j.get(entry_id)
        assert entry.state == "pending"
        assert entry.ranges == (JournalRange(0, bytes(512), bytes(512)),)


def test_kill_in_the_middle_of_a_stream_of_records(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    proc = spawn(path, "loop")
    acknowledged = []
    try:
        for _ in range(50):
            acknowledged.append(int(proc.stdout.readline()))
        os.kill(proc.pid, signal.SIGKILL)  # somewhere inside a later record()/mark()
    finally:
        proc.wait(timeout=30)
    with Journal(path) as j:
        for n, entry_id in enumerate(acknowledged):
            entry = j.get(entry_id)
            assert entry.ranges[0].offset == n * 512
            assert entry.ranges[0].new == bytes([n % 256]) * 512
            assert entry.state == ("written" if n % 3 == 1 else "pending")
        # Whatever was half-written is either whole or absent, never torn.
        for entry in j.entries(limit=1000):
            assert len(j.get(entry.id).ranges) == 1
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_concurrent_readers_and_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    writer = Journal(path)
    readers = [Journal(path) for _ in range(3)]
    errors: list[BaseException] = []
    done = threading.Event()

    def read_loop(j: Journal) -> None:
        try:
            while not done.is_set():
                for entry in j.entries(limit=5):
                    full = j.get(entry.id)
                    assert len(full.ranges) == full.range_count == 3
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read_loop, args=(r,)) for r in readers]
    shared = threading.Thread(target=read_loop, args=(writer,))  # same object, other thread
    for t in [*threads, shared]:
        t.start()
    try:
        ids = [writer.record("nbd://h/e", "e", RANGES) for _ in range(40)]
    finally:
        done.set()
        for t in [*threads, shared]:
            t.join(timeout=30)
    assert errors == []
    assert [e.id for e in readers[0].entries(limit=100)] == ids[::-1]
    # A second process reads while this one holds the database open.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from nbdtui.editor.journal import Journal;"
            "print(len(Journal(sys.argv[1]).entries(limit=1000)))",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "40"
    for j in [writer, *readers]:
        j.close()
