"""nbdtui.cli.engine_calls.CallSize: how much of a streamed transfer each call to the bulk
engine covers."""

from __future__ import annotations

from nbdtui.cli import engine_calls
from nbdtui.cli.engine_calls import CallSize

MiB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_call_is_one_piece_until_something_has_arrived():
    clock = Clock()
    sizes = CallSize(4 * MiB, 64 * MiB, clock=clock)
    assert sizes.next(0) == 4 * MiB
    clock.now += 1
    assert sizes.next(0) == 4 * MiB


def test_a_call_covers_what_arrives_in_a_sixteenth_of_a_second_in_whole_pieces():
    clock = Clock()
    sizes = CallSize(4 * MiB, 64 * MiB, clock=clock)
    clock.now += 2
    assert engine_calls.EVERY == 1 / 16
    assert sizes.next(2 * 400 * MiB) == 24 * MiB  # 400 MiB/s: 25 MiB, down to whole pieces
    assert sizes.next(2 * 1024 * MiB) == 64 * MiB  # 1 GiB/s: 64 MiB
    assert sizes.next(2 * 4096 * MiB) == 64 * MiB  # never more than the largest
    assert sizes.next(2 * 10 * MiB) == 4 * MiB  # 10 MiB/s: never less than a piece


def test_the_most_is_a_whole_number_of_pieces_and_at_least_one():
    assert CallSize(4 * MiB, 63 * MiB, clock=Clock()).most == 60 * MiB
    assert CallSize(4 * MiB, MiB, clock=Clock()).most == 4 * MiB


def test_a_call_of_fixed_size_stays_that_size():
    clock = Clock()
    sizes = CallSize(8 * MiB, 8 * MiB, clock=clock)
    clock.now += 1
    assert sizes.next(1024 * MiB) == 8 * MiB
