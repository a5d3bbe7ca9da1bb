"""Pending edits: overwrite, nibbles, undo/redo, merged review ranges, overlay."""

from __future__ import annotations

import pytest

from nbdtui.editor.edits import EditRange, PendingEdits

DISK = bytes(range(256)) * 4  # what the "export" holds


def orig(offset: int, length: int = 1) -> bytes:
    return DISK[offset : offset + length]


def test_overwrite_is_pending_and_overlays_fetched_bytes():
    edits = PendingEdits()
    edits.write(10, b"\xaa\xbb", orig(10, 2))
    assert len(edits) == 2 and 10 in edits and 12 not in edits
    assert edits.value(11) == 0xBB and edits.original(11) == 11
    assert edits.overlay(8, DISK[8:14]) == bytes([8, 9, 0xAA, 0xBB, 12, 13])
    # A view that starts after the edits is left alone (same object back).
    chunk = DISK[100:116]
    assert edits.overlay(100, chunk) is chunk


def test_nibbles_set_high_then_low_digit():
    edits = PendingEdits()
    assert edits.set_nibble(5, True, 0xC, orig(5)[0]) == 0xC5
    assert edits.set_nibble(5, False, 0x3, orig(5)[0]) == 0xC3
    assert edits.ranges() == [EditRange(5, b"\x05", b"\xc3")]
    with pytest.raises(ValueError):
        edits.set_nibble(5, True, 16, 5)


def test_the_two_digits_of_one_typed_byte_are_one_undo_step():
    edits = PendingEdits()
    edits.set_byte(4, 0x77, 4)
    edits.set_nibble(4, True, 0x4, 4)
    edits.set_nibble(4, False, 0x1, 4)  # 0x41 typed over the pending 0x77
    edits.set_nibble(5, True, 0x4, 5)
    edits.set_nibble(5, False, 0x2, 5)
    assert (edits.value(4), edits.value(5)) == (0x41, 0x42)
    assert edits.undo() == 5 and edits.value(5) is None and edits.value(4) == 0x41
    assert edits.undo() == 4 and edits.value(4) == 0x77  # back to before 0x41, not 0x47
    assert edits.redo() == 4 and edits.value(4) == 0x41
    # A high digit alone (the user moved on) is a step of its own, and so is the next
    # low digit when something else happened in between.
    edits.set_nibble(6, True, 0xA, 6)
    edits.set_byte(7, 0x99, 7)
    edits.set_nibble(6, False, 0xB, 6)
    assert edits.value(6) == 0xAB
    assert edits.undo() == 6 and edits.value(6) == 0xA6
    assert edits.undo() == 7 and edits.undo() == 6 and edits.value(6) is None
    # The byte typed back to its original: no change and no step left.
    edits.clear()
    edits.set_nibble(8, True, 0x0, 8)
    edits.set_nibble(8, False, 0x8, 8)
    assert not edits and not edits.can_undo


def test_undo_redo_walk_every_step_and_a_new_edit_drops_redo():
    edits = PendingEdits()
    edits.set_byte(1, 0x11, 1)
    edits.set_byte(2, 0x22, 2)
    edits.set_byte(1, 0x99, 1)
    assert edits.value(1) == 0x99
    assert edits.undo() == 1 and edits.value(1) == 0x11
    assert edits.undo() == 2 and 2 not in edits
    assert edits.redo() == 2 and edits.value(2) == 0x22
    assert edits.can_redo
    edits.set_byte(3, 0x33, 3)
    assert not edits.can_redo and edits.redo() is None
    assert edits.undo() == 3
    assert edits.undo() == 2
    assert edits.undo() == 1
    assert edits.undo() is None and not edits and not edits.can_undo


def test_editing_a_byte_back_to_its_original_is_no_change():
    edits = PendingEdits()
    edits.set_byte(7, 0x70, 7)
    edits.set_byte(7, 7, 7)
    assert len(edits) == 0 and edits.ranges() == []
    assert edits.undo() == 7 and edits.value(7) == 0x70  # undo brings the change back
    # Writing the same bytes as the export has is not even an undo step.
    edits.clear()
    edits.write(0, orig(0, 4), orig(0, 4))
    assert not edits.can_undo


def test_ranges_merge_consecutive_bytes_and_keep_old_bytes():
    edits = PendingEdits()
    edits.write(20, b"\x01\x02", orig(20, 2))
    edits.set_byte(22, 0xFF, 22)  # adjacent: merges
    edits.set_byte(30, 0xEE, 30)  # separate range
    edits.set_byte(19, 0xDD, 19)  # before the first: merges
    assert edits.ranges() == [
        EditRange(19, bytes([19, 20, 21, 22]), b"\xdd\x01\x02\xff"),
        EditRange(30, bytes([30]), b"\xee"),
    ]
    assert edits.ranges()[0].end == 23
    assert list(edits.offsets_in(21, 10)) == [21, 22, 30]
    assert edits.overlaps(29, 2) and not edits.overlaps(23, 7)


def test_original_is_the_first_one_seen():
    """Editing a byte twice keeps the export's byte, not the first edit, as old."""
    edits = PendingEdits()
    edits.set_byte(4, 0x40, 4)
    edits.set_byte(4, 0x41, 0x40)  # the view shows the pending byte; old stays 4
    assert edits.ranges() == [EditRange(4, b"\x04", b"\x41")]


def test_write_checks_its_arguments():
    edits = PendingEdits()
    with pytest.raises(ValueError):
        edits.write(0, b"ab", b"a")
    with pytest.raises(ValueError):
        edits.write(-1, b"a", b"b")
