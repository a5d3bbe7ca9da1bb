"""Saving a range to a local file, loading a local file as pending edits, and the
clipboard formats (unit tests against the in-memory stand-in; the UI tests do the same
through qemu-nbd)."""

from __future__ import annotations

import pytest

from nbdtui.editor.clip_formats import as_c_array, render
from nbdtui.editor.edits import PendingEdits
from nbdtui.editor.local_files import MAX_LOAD, PIECE, load_file, save_range
from nbdtui.errors import RequestError
from tests.support.fakes import MemoryExport


async def test_save_writes_what_the_editor_shows_in_pieces(tmp_path):
    mem = MemoryExport(3 * PIECE)
    data = bytes(range(256)) * (PIECE // 128)  # two pieces' worth
    mem.put(100, data)
    edits = PendingEdits()
    edits.set_byte(PIECE + 7, 0xEE, mem.get(PIECE + 7, 1)[0])
    out = tmp_path / "out.bin"
    await save_range(mem, edits, 100, len(data), out)
    expected = bytearray(data)
    expected[PIECE + 7 - 100] = 0xEE
    assert out.read_bytes() == bytes(expected)
    assert [length for _, length in mem.reads] == [PIECE, PIECE]


async def test_save_never_overwrites_and_leaves_no_partial_file(tmp_path):
    mem = MemoryExport(2 * PIECE, bad={PIECE + 5})
    out = tmp_path / "out.bin"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="exists already: nothing was saved"):
        await save_range(mem, PendingEdits(), 0, 16, out)
    assert out.read_bytes() == b"keep me"
    partial = tmp_path / "partial.bin"
    with pytest.raises(RequestError):
        await save_range(mem, PendingEdits(), 0, 2 * PIECE, partial)
    assert not partial.exists()
    with pytest.raises(ValueError, match="outside the export"):
        await save_range(mem, PendingEdits(), 2 * PIECE - 1, 2, tmp_path / "x")


async def test_load_makes_one_undo_step_of_pending_edits(tmp_path):
    mem = MemoryExport(1 << 20)
    mem.put(0x200, b"OLD BYTES")
    src = tmp_path / "in.bin"
    src.write_bytes(b"OLD bytes")
    edits = PendingEdits()
    assert await load_file(mem, edits, src, 0x200) == 5  # "BYTES" -> "bytes"
    assert [(r.offset, r.old, r.new) for r in edits.ranges()] == [(0x204, b"BYTES", b"bytes")]
    assert mem.get(0x200, 9) == b"OLD BYTES"  # nothing written
    assert edits.undo() == 0x204 and not edits


async def test_load_refuses_a_wrong_size_an_empty_or_a_too_big_file(tmp_path):
    mem = MemoryExport(1 << 20)
    edits = PendingEdits()
    src = tmp_path / "in.bin"
    src.write_bytes(b"12345")
    with pytest.raises(ValueError, match="has 5 bytes, the range 512: nothing loaded"):
        await load_file(mem, edits, src, 0, 512)
    with pytest.raises(ValueError, match="outside the export"):
        await load_file(mem, edits, src, (1 << 20) - 4)
    src.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        await load_file(mem, edits, src, 0)
    src.write_bytes(bytes(MAX_LOAD + 1))
    with pytest.raises(ValueError, match="larger than 64 KiB"):
        await load_file(mem, edits, src, 0)
    with pytest.raises(FileNotFoundError):
        await load_file(mem, edits, tmp_path / "missing.bin", 0)
    assert not edits


def test_copy_formats():
    data = bytes(range(0x41, 0x41 + 13))
    assert render("hex", data[:3], 0) == "41 42 43"
    assert render("text", b"EFI\x00\xff", 0) == "EFI.."
    assert as_c_array(data, offset=0x1BE) == (
        "/* 13 bytes from offset 0x1be */\n"
        "unsigned char data[13] = {\n"
        "    0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c,\n"
        "    0x4d\n"
        "};\n"
    )
    with pytest.raises(ValueError, match="unknown copy format"):
        render("base64", data, 0)
