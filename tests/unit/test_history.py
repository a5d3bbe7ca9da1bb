"""Recently used endpoints: round trip, no secrets, WAL, recency, de-duplication, bound."""

from __future__ import annotations

import sqlite3

import pytest

from nbdtui.tui.history import History, canonical, default_path


@pytest.fixture
def history(tmp_path):
    with History(tmp_path / "cfg" / "history.sqlite3") as h:
        yield h


def test_round_trip_across_instances(tmp_path):
    path = tmp_path / "history.sqlite3"
    with History(path) as h:
        h.remember("nbd://example.org:10810/disk")
        h.remember("nbd+unix:///data?socket=/run/nbd.sock")
    with History(path) as h:
        assert [e.uri for e in h.recent()] == [
            "nbd+unix:///data?socket=/run/nbd.sock",
            "nbd://example.org:10810/disk",
        ]


def test_wal_mode(history):
    assert history.journal_mode == "wal"
    db = sqlite3.connect(history.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_newest_first_and_reuse_moves_to_top(history):
    for uri in ("nbd://a/", "nbd://b/", "nbd://c/"):
        history.remember(uri)
    history.remember("nbd://a/")
    assert [e.uri for e in history.recent()] == ["nbd://a/", "nbd://c/", "nbd://b/"]
    assert history.recent()[0].uses == 2
    assert history.recent(limit=1)[0].uri == "nbd://a/"


def test_two_spellings_of_one_endpoint_are_one_entry(history):
    history.remember("nbd://localhost:10809/disk")
    history.remember("NBD://localhost:10809/disk")
    history.remember("nbd:localhost:10809:exportname=disk")
    entries = history.recent()
    assert [e.uri for e in entries] == ["nbd://localhost:10809/disk"]
    assert entries[0].uses == 3


def test_bounded_count(tmp_path):
    with History(tmp_path / "h.sqlite3", limit=5) as h:
        for i in range(12):
            h.remember(f"nbd://host{i}/")
        uris = [e.uri for e in h.recent(limit=100)]
    assert uris == [f"nbd://host{i}/" for i in range(11, 6, -1)]


def test_secrets_are_never_written(history):
    stored = history.remember(
        "nbds://alice@server.example/disk"
        "?tls-certificates=/etc/pki/nbd&tls-psk-file=/home/alice/keys.psk&tls-type=psk"
    )
    assert stored == "nbds://alice@server.example/disk?tls-type=psk"
    raw = history.path.read_bytes()
    wal = history.path.with_name(history.path.name + "-wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert b"keys.psk" not in raw
    assert b"/etc/pki/nbd" not in raw


def test_canonical_keeps_unparsable_text_without_secrets():
    assert canonical("not a uri?tls-psk-file=/k") == "not a uri"


def test_forget_and_clear(history):
    history.remember("nbd://a/")
    history.remember("nbd://b/")
    history.forget("nbd://a")
    assert [e.uri for e in history.recent()] == ["nbd://b/"]
    history.clear()
    assert history.recent() == []


def test_default_path_is_in_the_config_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_path() == tmp_path / "nbdtui" / "history.sqlite3"


# ---- a file of another layout (an older or newer nbdtui, another program)


def foreign(path, columns: str, rows: list[tuple]) -> None:
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE endpoints ({columns})")
    marks = ", ".join("?" * len(rows[0])) if rows else ""
    db.executemany(f"INSERT INTO endpoints VALUES ({marks})", rows)
    db.commit()
    db.close()


def test_another_layout_is_set_aside_and_its_endpoints_carried_over(tmp_path):
    path = tmp_path / "history.sqlite3"
    foreign(
        path,
        "uri TEXT, host TEXT, pinned INTEGER NOT NULL",
        [("nbd://old.example/disk", "old.example", 1), ("nbds://b/?tls-psk-file=/k", "b", 0)],
    )
    foreign_bytes = path.read_bytes()
    with History(path) as h:
        assert [e.uri for e in h.recent()] == ["nbds://b/", "nbd://old.example/disk"]
        (aside,) = tmp_path.glob("history.sqlite3.other-*")
        assert h.warning == (
            f"the recent endpoints file had another layout: it is now {aside.name}"
            " (2 endpoints carried over)"
        )
        h.remember("nbd://new.example/")
        assert h.recent()[0].uri == "nbd://new.example/"
    # The old file is kept as it was.
    assert aside.read_bytes() == foreign_bytes
    db = sqlite3.connect(aside)
    assert db.execute("SELECT host, pinned FROM endpoints").fetchall() == [
        ("old.example", 1),
        ("b", 0),
    ]
    db.close()
    with History(path) as h:  # the new file is ours: nothing more is set aside
        assert h.warning is None
        assert len(h.recent()) == 3


def test_a_layout_without_uris_is_set_aside_with_nothing_carried(tmp_path):
    path = tmp_path / "history.sqlite3"
    foreign(path, "address TEXT PRIMARY KEY, seen REAL", [("nbd://x/", 1.0)])
    with History(path) as h:
        assert h.recent() == []
        assert h.warning is not None and h.warning.endswith(")") is False
        assert "history.sqlite3.other-" in h.warning


def test_a_missing_column_is_another_layout(tmp_path):
    path = tmp_path / "history.sqlite3"
    foreign(path, "uri TEXT PRIMARY KEY, last_used REAL NOT NULL", [("nbd://a/", 1.0)])
    with History(path) as h:
        assert [e.uri for e in h.recent()] == ["nbd://a/"]
        assert "1 endpoints carried over" in (h.warning or "")
