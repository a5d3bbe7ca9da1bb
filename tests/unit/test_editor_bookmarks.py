"""The editor's bookmark store, jump list, "follow" targets and block-status words."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from nbdtui.disk.inspect import inspect
from nbdtui.editor.block_status import describe
from nbdtui.editor.bookmarks import Bookmark, Bookmarks
from nbdtui.editor.extents import Span
from nbdtui.editor.follow import targets
from nbdtui.editor.jumps import JumpList
from nbdtui.errors import BookmarkError
from nbdtui.tui.history import History

A, B = "nbd://host/a", "nbd://host/b"


def test_bookmarks_are_kept_per_export_in_offset_order(tmp_path):
    path = tmp_path / "cfg" / "history.sqlite3"
    store = Bookmarks(path)
    store.add(A, "backup GPT", 0x3FFFE00)
    store.add(A, "  gpt   header ", 0x200)  # whitespace folded
    store.add(B, "other", 0x10)
    store.close()
    again = Bookmarks(path)
    assert again.list(A) == [Bookmark("gpt header", 0x200), Bookmark("backup GPT", 0x3FFFE00)]
    assert again.list(B) == [Bookmark("other", 0x10)]
    again.add(A, "gpt header", 0x400)  # a name set again moves
    assert again.list(A)[0] == Bookmark("gpt header", 0x400)
    assert again.delete(A, "gpt header") and not again.delete(A, "gpt header")
    assert [m.name for m in again.list(A)] == ["backup GPT"]
    with pytest.raises(ValueError, match="needs a name"):
        again.add(A, "   ", 0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_bookmarks_share_the_recent_endpoints_database(tmp_path):
    path = tmp_path / "history.sqlite3"
    history = History(path)
    history.remember("nbd://host/a")
    store = Bookmarks(path)
    store.add(A, "x", 1)
    assert [e.uri for e in history.recent()] == ["nbd://host/a"]
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert {"endpoints", "bookmarks"} <= tables
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened though History made it


def test_a_foreign_bookmarks_table_is_refused_with_a_message(tmp_path):
    path = tmp_path / "history.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE bookmarks (url TEXT, title TEXT)")
    with pytest.raises(BookmarkError, match="'bookmarks' table of another program"):
        Bookmarks(path)


def test_a_database_that_cannot_be_opened_is_one_error(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"not a database at all, just some text" * 100)
    with pytest.raises(BookmarkError, match="cannot open the bookmarks"):
        Bookmarks(path)


def test_jump_list_back_and_forward_like_a_browser():
    jumps = JumpList()
    jumps.record(0, 0x100)
    jumps.record(0x104, 0x2000)  # moved by arrows from 0x100 to 0x104, then jumped
    assert jumps.back(0x2000) == 0x104
    assert jumps.back(0x104) == 0
    assert jumps.back(0) is None
    assert jumps.forward(0) == 0x104
    jumps.record(0x104, 0x50)  # a new jump drops the forward places
    assert jumps.forward(0x50) is None
    assert jumps.back(0x50) == 0x104
    jumps.record(5, 5)  # not a jump
    assert jumps.can_back and jumps.back(0x104) == 0


def test_jump_list_keeps_its_last_places_only():
    jumps = JumpList(limit=3)
    for n in range(10):
        jumps.record(n, n + 100)
    assert [jumps.back(0) for _ in range(4)] == [9, 8, 7, None]


def test_follow_offers_offsets_and_sectors_inside_the_export():
    data = bytes.fromhex("00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
    found = targets(inspect(data), size=1 << 20, sector_size=512)
    labels = [t.label for t in found]
    assert "u16 LE 2048 as offset → 0x800" in labels
    assert "u16 LE 2048 as sector/LBA → 0x100000" not in labels  # past the end
    assert "u16 BE 8 as sector/LBA → 0x1000" in labels
    assert all(t.offset < 1 << 20 for t in found)
    # u16 LE, u32 LE and u64 LE are all 2048: offered once per kind
    assert sum(t.kind == "offset" and t.value == 2048 for t in found) == 1
    assert {t.field for t in found} <= {"u16 LE", "u16 BE", "u32 LE", "u32 BE", "u64 LE"}
    assert targets(inspect(b"\xff" * 16), size=4096, sector_size=512) == []


def test_block_status_words():
    assert describe(Span(0, 1, True, False)) == "data"
    assert describe(Span(0, 1, True, True)) == "zero"
    assert describe(Span(0, 1, False, True)) == "hole"
    assert describe(Span(0, 1, False, False)) == "hole"
