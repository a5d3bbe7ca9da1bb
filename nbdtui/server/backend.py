"""Storage behind the embedded NBD server.

``Backend`` is the protocol the server drives; ``MemoryBackend`` is a sparse
in-memory disk: fixed 64 KiB chunks in a dict, an absent chunk is a hole that
reads as zeroes.  A 1 TiB export costs only the chunks that hold data.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from nbdtui.proto.constants import AllocationFlag

CHUNK_SIZE = 64 * 1024
_ZERO_CHUNK = bytes(CHUNK_SIZE)
_ZEROES = memoryview(_ZERO_CHUNK)
HOLE_FLAGS = int(AllocationFlag.HOLE | AllocationFlag.ZERO)
DATA_FLAGS = 0

Buffer = bytes | bytearray | memoryview


def _is_zero(data: Buffer) -> bool:
    """True when ``data`` (at most CHUNK_SIZE bytes) is all zeroes: one memcmp."""
    return _ZERO_CHUNK.startswith(data)


@runtime_checkable
class Backend(Protocol):
    """What the server needs from the storage of one export.

    One backend object serves every connection to its export (so the server can
    advertise CAN_MULTI_CONN); its methods run on the server's event loop and must
    not block for long.  Offsets and lengths are already checked against ``size``.
    ``extents`` returns consecutive ``(length, flags)`` pairs (base:allocation flags:
    HOLE=1, ZERO=2) starting at ``offset``; they may cover less than ``length``.
    ``fast_zero`` tells whether ``zero`` is faster than writing zeroes (the server
    answers NBD_CMD_FLAG_FAST_ZERO with ENOTSUP when it is not).
    A failing operation raises ``BackendError`` (other exceptions become EIO).
    """

    @property
    def size(self) -> int: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def fast_zero(self) -> bool: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: Buffer) -> None: ...

    def trim(self, offset: int, length: int) -> None: ...

    def zero(self, offset: int, length: int, *, may_trim: bool = True) -> None: ...

    def flush(self) -> None: ...

    def extents(self, offset: int, length: int) -> list[tuple[int, int]]: ...


class MemoryBackend:
    """A sparse disk in memory.

    ``pieces`` are ``(offset, data)`` written at creation (the rest reads as zeroes).
    Writing all-zero data to a hole keeps it a hole; trimming or zeroing whole
    chunks drops them; zeroing part of a chunk clears those bytes (and drops the
    chunk once it is all zeroes); trimming part of a chunk leaves it alone, as the
    spec allows.  Zeroing never materialises zeroes, so it is always fast.
    """

    def __init__(
        self, size: int, pieces: Iterable[tuple[int, Buffer]] = (), *, read_only: bool = False
    ):
        if size < 0:
            raise ValueError(f"negative export size {size}")
        self._size = size
        self._read_only = read_only
        self._chunks: dict[int, bytearray] = {}
        self._index: list[int] = []  # sorted keys of _chunks
        for offset, data in pieces:
            if offset < 0 or offset + len(data) > size:
                raise ValueError(f"piece at {offset}+{len(data)} lies outside the {size}-byte disk")
            self.write(offset, data)

    @property
    def size(self) -> int:
        return self._size

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def fast_zero(self) -> bool:
        return True

    @property
    def allocated(self) -> int:
        """Bytes of memory held by data chunks."""
        return sum(len(chunk) for chunk in self._chunks.values())

    def _chunk_len(self, index: int) -> int:
        return min(CHUNK_SIZE, self._size - index * CHUNK_SIZE)

    def _drop(self, index: int) -> None:
        if self._chunks.pop(index, None) is not None:
            del self._index[bisect.bisect_left(self._index, index)]

    def _spans(self, offset: int, length: int) -> Iterator[tuple[int, int, int]]:
        """(chunk index, start within chunk, stop within chunk) over a byte range."""
        end = offset + length
        while offset < end:
            index, start = divmod(offset, CHUNK_SIZE)
            stop = min(CHUNK_SIZE, start + end - offset)
            yield index, start, stop
            offset += stop - start

    def read(self, offset: int, length: int) -> bytes:
        parts: list[Buffer] = []
        for index, start, stop in self._spans(offset, length):
            chunk = self._chunks.get(index)
            if chunk is None:
                parts.append(_ZEROES[: stop - start])
            else:
                parts.append(memoryview(chunk)[start:stop])
        if len(parts) == 1:
            return bytes(parts[0])
        return b"".join(parts)

    def write(self, offset: int, data: Buffer) -> None:
        view = memoryview(data).cast("B")
        pos = 0
        for index, start, stop in self._spans(offset, len(view)):
            part = view[pos : pos + stop - start]
            pos += stop - start
            chunk = self._chunks.get(index)
            if chunk is None:
                if _is_zero(part):
                    continue  # zeroes over a hole: it stays a hole
                chunk = self._chunks[index] = bytearray(self._chunk_len(index))
                bisect.insort(self._index, index)
            chunk[start:stop] = part
            if stop - start == len(chunk) and _is_zero(part):
                self._drop(index)

    def _clear(self, offset: int, length: int, *, partial: bool) -> None:
        """Drop every chunk the range covers whole; zero the partly covered ones
        (the first and last) when ``partial``."""
        if length <= 0:
            return
        end = offset + length
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        edges: dict[int, tuple[int, int]] = {}  # partly covered chunk -> (start, stop)
        for index in (first, last):
            base = index * CHUNK_SIZE
            start = max(offset, base) - base
            stop = min(end, base + self._chunk_len(index)) - base
            if stop - start < self._chunk_len(index):
                edges[index] = (start, stop)
        lo = bisect.bisect_left(self._index, first)
        hi = bisect.bisect_right(self._index, last)
        covered = self._index[lo:hi]
        for index in covered:
            if index not in edges:
                del self._chunks[index]
        self._index[lo:hi] = [index for index in covered if index in edges]
        if not partial:
            return
        for index, (start, stop) in edges.items():
            chunk = self._chunks.get(index)
            if chunk is not None:
                chunk[start:stop] = _ZEROES[: stop - start]
                if _is_zero(chunk):
                    self._drop(index)

    def trim(self, offset: int, length: int) -> None:
        self._clear(offset, length, partial=False)

    def zero(self, offset: int, length: int, *, may_trim: bool = True) -> None:
        # Memory needs no provisioning, so NO_HOLE (may_trim=False) changes nothing.
        self._clear(offset, length, partial=True)

    def flush(self) -> None:
        """Nothing to do: a completed write is already visible to every connection."""

    def extents(self, offset: int, length: int) -> list[tuple[int, int]]:
        """Holes (HOLE|ZERO) and data (0) covering exactly ``offset..offset+length``."""
        end = min(offset + length, self._size)
        if end <= offset:
            return []
        out: list[tuple[int, int]] = []

        def add(start: int, stop: int, flags: int) -> None:
            start, stop = max(start, offset), min(stop, end)
            if stop <= start:
                return
            if out and out[-1][1] == flags:
                out[-1] = (out[-1][0] + stop - start, flags)
            else:
                out.append((stop - start, flags))

        lo = bisect.bisect_left(self._index, offset // CHUNK_SIZE)
        hi = bisect.bisect_right(self._index, (end - 1) // CHUNK_SIZE)
        pos = offset
        for index in self._index[lo:hi]:
            chunk_start = index * CHUNK_SIZE
            add(pos, chunk_start, HOLE_FLAGS)
            add(chunk_start, chunk_start + CHUNK_SIZE, DATA_FLAGS)
            pos = chunk_start + CHUNK_SIZE
        add(pos, end, HOLE_FLAGS)
        return out
