"""Where two buffers differ: every maximal run of differing bytes, found at memcmp speed.

No per-byte Python loop ever runs over equal bytes:

* a range is compared with ``left.startswith(right[lo:hi], lo)`` (a memcmp of the two
  buffers in place, no copy; comparing memoryviews with ``==`` goes item by item and is
  about 30 times slower);
* a range that differs is halved, and each half that still differs halved again, down
  to :data:`LEAF` bytes, so a single differing byte in 4 MiB costs about two memcmps of
  the piece;
* in a leaf, the two slices are XORed as big integers and every non-zero byte of the
  result mapped to 1 (``bytes.translate``): the runs are then found with
  ``bytes.find``, one Python step per run, not per byte.
"""

from __future__ import annotations

LEAF = 4096  # bytes: below this, a range that differs is XORed rather than halved
_ONES = bytes([0]) + bytes([1]) * 255  # translate table: 0 stays 0, any other byte -> 1

Buffer = bytes | bytearray


def equal(left: Buffer, right: memoryview, lo: int, hi: int) -> bool:
    """``left[lo:hi] == right[lo:hi]``, by memcmp, without copying either."""
    return left.startswith(right[lo:hi], lo)


def differing_runs(left: Buffer, right: memoryview, lo: int, hi: int) -> list[tuple[int, int]]:
    """The maximal runs ``(start, end)`` of ``[lo, hi)`` where ``left`` and ``right``
    differ, in order (positions are indexes into both buffers). ``left`` must be a
    bytes or bytearray object (its ``startswith`` is the memcmp), ``right`` any bytes
    view at least ``hi`` long."""
    out: list[tuple[int, int]] = []
    left_view = memoryview(left)
    stack = [(lo, hi)]
    while stack:
        a, b = stack.pop()
        if a >= b or left.startswith(right[a:b], a):
            continue
        if b - a > LEAF:
            mid = (a + b) // 2
            stack.append((mid, b))
            stack.append((a, mid))  # popped first: runs come out in order
            continue
        n = b - a
        x = int.from_bytes(left_view[a:b], "little") ^ int.from_bytes(right[a:b], "little")
        marks = x.to_bytes(n, "little").translate(_ONES)
        pos = marks.find(1)
        while pos >= 0:
            stop = marks.find(0, pos)
            if stop < 0:
                stop = n
            start, end = a + pos, a + stop
            if out and out[-1][1] == start:  # it goes on from the previous leaf
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
            pos = marks.find(1, stop) if stop < n else -1
    return out


class RunJoiner:
    """Joins the runs of consecutive pieces into maximal runs: a run that ends where a
    piece ends may go on in the next one. A run is given out (:meth:`closed`) only once
    the byte after it is known to be equal, or at :meth:`finish`."""

    def __init__(self) -> None:
        self._open: tuple[int, int] | None = None

    def add(
        self, piece_start: int, piece_end: int, runs: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Take the runs (absolute ``(start, end)``, in order) of the piece
        ``[piece_start, piece_end)``; the pieces come in order, with gaps between them
        allowed (ranges known equal). Returns the runs now known to be maximal."""
        done: list[tuple[int, int]] = []
        current = self._open
        if current is not None and current[1] != piece_start:
            done.append(current)
            current = None
        for start, end in runs:
            if current is not None and current[1] == start:
                current = (current[0], end)
            else:
                if current is not None:
                    done.append(current)
                current = (start, end)
        if current is not None and current[1] < piece_end:
            done.append(current)
            current = None
        self._open = current
        return done

    def finish(self) -> list[tuple[int, int]]:
        """The run still open at the end of the range, if any."""
        current, self._open = self._open, None
        return [] if current is None else [current]
