"""`nbdtui journal list | show | revert`, and the crash-safety story: a commit killed
at any point leaves a journal from which the old bytes come back.

The commits run in a child process (the library: ``nbdtui.editor.commit.commit``
against qemu-nbd over a file) that stops dead at a chosen point and is SIGKILLed there;
``nbdtui journal revert`` then restores the old bytes, checked with ``nbdcopy``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import nbdtui
from nbdtui.client import Pool
from nbdtui.editor.commit import commit
from nbdtui.editor.edits import EditRange
from nbdtui.editor.journal import Journal
from tests.support.cli_helpers import assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_cli
from tests.support.oracles import oracle

MiB = 1 << 20

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time

    import nbdtui
    from nbdtui.editor.commit import commit
    from nbdtui.editor.edits import EditRange
    from nbdtui.editor.journal import Journal

    uri, journal_path, point, ranges_path = sys.argv[1:5]


    def stop_here(where):
        print(f"STOPPED {where}", flush=True)
        while True:  # the whole process stays here until the test kills it
            time.sleep(60)


    class StoppingJournal(Journal):
        def record(self, *args, **kwargs):
            entry = super().record(*args, **kwargs)
            print(f"ENTRY {entry}", flush=True)
            if point == "after-record":
                stop_here(point)
            return entry

        def mark(self, entry, state):
            if point == "before-mark":
                stop_here(point)
            return super().mark(entry, state)


    class StoppingExport:
        def __init__(self, export):
            self._export = export
            self.writes = 0

        def __getattr__(self, name):
            return getattr(self._export, name)

        async def write(self, offset, data, **kwargs):
            await self._export.write(offset, data, **kwargs)
            self.writes += 1
            if point == "between-writes" and self.writes == 1:
                stop_here(point)

        async def flush(self):
            if point == "before-flush":
                stop_here(point)
            await self._export.flush()


    async def main():
        spec = json.load(open(ranges_path))
        ranges = [
            EditRange(r["offset"], bytes.fromhex(r["old"]), bytes.fromhex(r["new"])) for r in spec
        ]
        async with nbdtui.open(uri) as export:
            entry = await commit(StoppingExport(export), ranges, StoppingJournal(journal_path))
        print(f"DONE {entry}", flush=True)


    asyncio.run(main())
    """
)


@pytest.fixture
def disk(qemu_nbd, make_image, tmp_path):
    """qemu-nbd over a file of 8 MiB of random bytes: (server, original bytes)."""
    original = os.urandom(8 * MiB)
    image = make_image(tmp_path, len(original), content=original)
    return qemu_nbd(image, unix=True), original


def _commit_and_kill(uri: str, journal: Path, point: str, ranges, tmp_path: Path) -> int:
    """Run a commit in a child, SIGKILL it at ``point``; return the journal entry id."""
    spec = tmp_path / "ranges.json"
    spec.write_text(
        json.dumps([{"offset": o, "old": old.hex(), "new": new.hex()} for o, old, new in ranges])
    )
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(child), uri, str(journal), point, str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    entry = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"the child ended early: {proc.stderr.read()}"
            if line.startswith("ENTRY "):
                entry = int(line.split()[1])
            if line.startswith("STOPPED "):
                assert line.split()[1] == point
                break
        else:  # pragma: no cover
            raise AssertionError("the child never stopped")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    if entry is None:  # pragma: no cover - every point is after the record
        raise AssertionError("no journal entry")
    return entry


def _ranges(original: bytes, specs):
    return [(o, original[o : o + len(new)], new) for o, new in specs]


# point -> (ranges, whether the revert needs --force, bytes that must differ before revert)
SMALL = [(4096, b"\xde\xad\xbe\xef" * 16), (3 * MiB + 7, b"edited by the test")]
BIG = [(MiB, b"\x5a" * (6 * MiB))]  # written in two pieces (4 MiB + 2 MiB)
POINTS = {
    "after-record": (SMALL, False),
    "between-writes": (SMALL, False),
    "between-writes-big": (BIG, True),  # killed in the middle of one range
    "before-flush": (SMALL, False),
    "before-mark": (SMALL, False),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_commit_killed_at_any_point_can_be_reverted(disk, tmp_path, point):
    server, original = disk
    specs, needs_force = POINTS[point]
    journal = tmp_path / "journal.sqlite3"
    child_point = point.removesuffix("-big")
    entry = _commit_and_kill(server.uri, journal, child_point, _ranges(original, specs), tmp_path)

    listed = run_cli("journal", "list", "--journal", str(journal))
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^\s+{entry}\s.*\spending\s", listed.text, re.M), listed.text

    current = oracle("nbdcopy", server.uri, "-")
    if child_point == "after-record":
        assert current == original  # nothing written yet
    else:
        assert current != original

    if needs_force:
        refused = run_cli("journal", "revert", str(entry), "--journal", str(journal))
        assert_one_line_error(refused, 1, "no longer the ones journal entry", "--force")
        assert oracle("nbdcopy", server.uri, "-") == current  # nothing written
        result = run_cli("journal", "revert", str(entry), "--force", "--journal", str(journal))
    else:
        result = run_cli("journal", "revert", str(entry), "--journal", str(journal))
    assert result.returncode == 0, result.stderr
    if child_point == "after-record":
        assert "already held its old bytes" in result.text
    else:
        assert f"reverted journal entry #{entry}" in result.text
    assert oracle("nbdcopy", server.uri, "-") == original
    with Journal(journal) as j:
        assert j.get(entry).state == "reverted"


async def test_list_show_and_revert_a_finished_commit(disk, tmp_path):
    server, original = disk
    journal_path = tmp_path / "journal.sqlite3"
    with Journal(journal_path) as journal:
        async with nbdtui.open(server.uri, pool=Pool()) as export:
            edits = [
                EditRange(16, original[16:20], b"NEW!"),
                EditRange(600, original[600:601], b"\xff"),
            ]
            entry = await commit(export, edits, journal, note="two edits")

    listed = await asyncio.to_thread(run_cli, "journal", "list", "--journal", str(journal_path))
    assert listed.returncode == 0, listed.stderr
    header, row = listed.text.splitlines()
    assert header.split()[:5] == ["ID", "TIME", "STATE", "RANGES", "BYTES"]
    assert re.match(rf"\s+{entry}\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+written\s+2\s+5 B\s", row)
    assert server.uri in row and "'disk'" in row and "(two edits)" in row

    as_json = await asyncio.to_thread(
        run_cli, "journal", "list", "--json", "--journal", str(journal_path)
    )
    [doc] = as_json.json()
    assert doc["id"] == entry and doc["state"] == "written" and doc["bytes"] == 5
    assert doc["endpoint"] == server.uri and doc["export"] == "disk"

    shown = await asyncio.to_thread(
        run_cli, "journal", "show", str(entry), "--journal", str(journal_path)
    )
    assert shown.returncode == 0, shown.stderr
    text = shown.text
    assert f"journal entry #{entry}: written" in text and "2 ranges, 5 bytes" in text
    assert "0x0000000010 (16)  4 bytes" in text
    assert f"old  {original[16:20].hex(' ')}" in text and "new  4e 45 57 21" in text
    assert f"old  {original[600:601].hex()}" in text and "new  ff" in text

    # someone else changes one of the bytes: the revert refuses, unless forced
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        await export.write(17, b"?")
    refused = await asyncio.to_thread(
        run_cli, "journal", "revert", str(entry), "--journal", str(journal_path)
    )
    assert_one_line_error(refused, 1, "the byte at offset 17 (0x11) is 0x3f, not 0x45", "--force")
    assert (await asyncio.to_thread(oracle, "nbdcopy", server.uri, "-"))[16:20] == b"N?W!"
    forced = await asyncio.to_thread(
        run_cli, "journal", "revert", str(entry), "--force", "--journal", str(journal_path)
    )
    assert forced.returncode == 0, forced.stderr
    match = re.search(r"the revert is journal entry #(\d+)", forced.text)
    assert match, forced.text
    assert await asyncio.to_thread(oracle, "nbdcopy", server.uri, "-") == original

    again = await asyncio.to_thread(
        run_cli, "journal", "revert", str(entry), "--journal", str(journal_path)
    )
    assert_one_line_error(again, 1, f"journal entry #{entry} was already reverted")
    # the revert is itself an entry: reverting it puts the edit back
    undo = await asyncio.to_thread(
        run_cli, "journal", "revert", match.group(1), "--journal", str(journal_path)
    )
    assert undo.returncode == 0, undo.stderr
    data = await asyncio.to_thread(oracle, "nbdcopy", server.uri, "-")
    assert data[16:20] == b"N?W!" and data[600:601] == b"\xff"


def test_show_json_and_missing_entry(tmp_path):
    journal_path = tmp_path / "j.sqlite3"
    with Journal(journal_path) as journal:
        from nbdtui.editor.journal import JournalRange

        entry = journal.record("nbd://h/x", "x", [JournalRange(5, b"\x00\x01", b"\x02\x03")])
    shown = run_cli("journal", "show", str(entry), "--json", "--journal", str(journal_path))
    assert shown.json()["ranges"] == [{"offset": 5, "length": 2, "old": "0001", "new": "0203"}]
    missing = run_cli("journal", "show", "99", "--journal", str(journal_path))
    assert_one_line_error(missing, 1, "no entry 99")
    empty = run_cli("journal", "list", "--journal", str(tmp_path / "new.sqlite3"))
    assert empty.returncode == 0 and "no entries" in empty.text
    assert not (tmp_path / "new.sqlite3").exists()  # reading never creates a journal
    bad = run_cli("journal", "frobnicate")
    assert bad.returncode == 2 and bad.stderr.startswith("nbdtui: ")


def test_reading_a_missing_journal_creates_nothing(monkeypatch, tmp_path):
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    listed = run_cli("journal", "list")
    assert listed.returncode == 0, listed.stderr
    assert (
        listed.text
        == f"there is no undo journal at {data / 'nbdtui' / 'journal.sqlite3'}: no entries\n"
    )
    as_json = run_cli("journal", "list", "--json")
    assert as_json.returncode == 0 and as_json.json() == []
    shown = run_cli("journal", "show", "1")
    assert_one_line_error(shown, 1, "there is no undo journal at", "so no entry 1")
    reverted = run_cli("journal", "revert", "1")
    assert_one_line_error(reverted, 1, "there is no undo journal at")
    assert not data.exists()  # neither the file nor its directory


def test_a_journal_of_another_layout_is_a_one_line_error(tmp_path):
    path = tmp_path / "journal.sqlite3"
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, blob BLOB)")
    db.commit()
    db.close()
    for action in (["list"], ["list", "--json"], ["show", "1"]):
        result = run_cli("journal", *action, "--journal", str(path))
        assert_one_line_error(result, 1, f"{path} is not an nbdtui undo journal", "--journal")
