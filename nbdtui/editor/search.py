"""Searching an export for a byte pattern, forwards or backwards, from any offset,
anywhere or only at an alignment (offsets ``≡ remainder (mod modulus)``).

The export is read in chunks; the last ``len(pattern) - 1`` bytes of one chunk are kept
in front of the next, so a match that crosses a chunk (or cache block) boundary is found.
Regions that block status reports as reading zeros are never read: only their first and
last bytes take part (as zeros), which is all a match can touch of them unless the
pattern itself is made of zeros. Then its first (and last) match in the region is at its
edge, or, searching at an alignment, at the first (last) aligned offset in it: those few
bytes are added too. A terabyte of holes is searched with a few block-status requests.

The patterns themselves (hex or text, guessed or chosen) are read by
:mod:`nbdtui.editor.pattern`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass

from nbdtui.editor.device import Searchable
from nbdtui.editor.extents import spans, spans_before
from nbdtui.editor.pattern import MAX_PATTERN, Pattern, PatternError, parse_pattern

__all__ = ["MAX_PATTERN", "Alignment", "PatternError", "Query", "find", "find_all", "parse_pattern"]

CHUNK = 1 << 20
WINDOW = 1 << 30
MAX_HITS = 1000  # find_all stops there

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Alignment:
    """Only offsets ``o`` with ``o % modulus == remainder`` match."""

    modulus: int
    remainder: int = 0

    def __post_init__(self) -> None:
        if self.modulus <= 0:
            raise ValueError("the alignment must be a positive number of bytes")
        object.__setattr__(self, "remainder", self.remainder % self.modulus)

    def up(self, offset: int) -> int:
        """The first aligned offset at or after ``offset``."""
        return offset + (self.remainder - offset) % self.modulus

    def down(self, offset: int) -> int:
        """The last aligned offset at or before ``offset``."""
        return offset - (offset - self.remainder) % self.modulus

    def __str__(self) -> str:
        return f"0x{self.remainder:x} mod {self.modulus}"


async def find(
    export: Searchable,
    pattern: bytes,
    start: int,
    *,
    backward: bool = False,
    size: int | None = None,
    align: Alignment | None = None,
    progress: Progress | None = None,
    chunk: int = CHUNK,
) -> int | None:
    """Offset of the first match at or after ``start`` (or, ``backward``, the last match
    at or before ``start``); ``None`` when there is none."""
    if not pattern:
        raise ValueError("empty pattern")
    size = export.size if size is None else size
    m = len(pattern)
    if backward:
        start = min(start, size - m)
        if start < 0:
            return None
        hi = min(size, start + m)
        return await _backward(export, pattern, start, hi, align, progress, chunk)
    if start < 0 or start > size - m:
        return None
    async with aclosing(_matches(export, pattern, start, size, align, progress, chunk)) as hits:
        async for hit in hits:
            return hit
    return None


async def find_all(
    export: Searchable,
    pattern: bytes,
    *,
    start: int = 0,
    size: int | None = None,
    align: Alignment | None = None,
    limit: int = MAX_HITS,
    progress: Progress | None = None,
    chunk: int = CHUNK,
) -> tuple[list[int], bool]:
    """Every match from ``start`` on, in order (overlapping ones too), at most ``limit``;
    and whether there were more."""
    if not pattern:
        raise ValueError("empty pattern")
    size = export.size if size is None else size
    hits: list[int] = []
    if start < 0 or start > size - len(pattern):
        return hits, False
    async with aclosing(_matches(export, pattern, start, size, align, progress, chunk)) as found:
        async for hit in found:
            if len(hits) == limit:
                return hits, True
            hits.append(hit)
    return hits, False


def _hits(buf: bytes, pattern: bytes, i: int, base: int, align: Alignment | None) -> Iterator[int]:
    """Indexes of ``pattern`` in ``buf`` from ``i`` on (``buf[0]`` is at offset ``base``)."""
    while True:
        if align is not None:
            i = align.up(base + i) - base
        hit = buf.find(pattern, i)
        if hit < 0:
            return
        if align is None or (base + hit) % align.modulus == align.remainder:
            yield hit
        i = hit + 1


async def _matches(
    export: Searchable,
    pattern: bytes,
    start: int,
    size: int,
    align: Alignment | None,
    progress: Progress | None,
    chunk: int,
) -> AsyncGenerator[int, None]:
    keep = len(pattern) - 1
    base, buf = -1, b""
    pos = start  # the first offset a match may begin at
    zeros = not pattern.strip(b"\0")
    async for off, data in _pieces(export, start, size, len(pattern), chunk, zeros, align):
        if off == base + len(buf):
            buf += data
        else:
            base, buf = off, data
        for hit in _hits(buf, pattern, max(0, pos - base), base, align):
            yield base + hit
            pos = base + hit + 1
        cut = len(buf) - keep
        if cut > 0:
            base, buf = base + cut, buf[cut:]
        if progress:
            progress(max(0, off + len(data) - start), size - start)


def _last_hit(
    buf: bytes, pattern: bytes, end: int, base: int, align: Alignment | None
) -> int | None:
    """Index of the last ``pattern`` in ``buf`` that begins before ``end``."""
    m = len(pattern)
    while end > 0:
        if align is not None:
            end = align.down(base + end - 1) - base + 1
            if end <= 0:
                return None
        hit = buf.rfind(pattern, 0, end - 1 + m)
        if hit < 0:
            return None
        if align is None or (base + hit) % align.modulus == align.remainder:
            return hit
        end = hit
    return None


async def _backward(
    export: Searchable,
    pattern: bytes,
    limit: int,
    hi: int,
    align: Alignment | None,
    progress: Progress | None,
    chunk: int,
) -> int | None:
    keep = len(pattern) - 1
    base, buf = -1, b""
    zeros = not pattern.strip(b"\0")
    async for off, data in _pieces_backward(export, hi, len(pattern), chunk, zeros, align):
        if off + len(data) == base:
            base, buf = off, data + buf
        else:
            base, buf = off, data
        hit = _last_hit(buf, pattern, max(0, limit - base + 1), base, align)
        if hit is not None:
            return base + hit
        buf = buf[:keep]
        if progress:
            progress(max(0, hi - off), hi)
    return None


def _zero_pieces(
    offset: int, end: int, m: int, zeros: bool, align: Alignment | None
) -> list[tuple[int, int]]:
    """The parts of the zero span ``[offset, end)`` a match can involve, in order and
    apart: ``(offset, length)`` pairs (see the module docstring)."""
    edge = 2 * m
    wanted = [(offset, min(end, offset + edge)), (max(offset, end - edge), end)]
    if zeros and align is not None:  # the first and last aligned match inside
        first, last = align.up(offset), align.down(end - m)
        if first + m <= end:
            wanted.append((first, first + m))
        if last >= offset:
            wanted.append((last, last + m))
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(wanted):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        elif hi > lo:
            merged.append((lo, hi))
    return [(lo, hi - lo) for lo, hi in merged]


async def _pieces(
    export: Searchable,
    start: int,
    end: int,
    m: int,
    chunk: int,
    zeros: bool,
    align: Alignment | None,
) -> AsyncIterator[tuple[int, bytes]]:
    # Reads begin at a chunk boundary; bytes before ``start`` only matter when read.
    async for span in spans(export, start - start % chunk, end):
        if span.zero:
            lo = max(span.offset, start)
            if lo < span.end:
                for off, length in _zero_pieces(lo, span.end, m, zeros, align):
                    yield off, bytes(length)
            continue
        pos = span.offset
        while pos < span.end:
            n = min(span.end, pos - pos % chunk + chunk) - pos
            yield pos, await export.read(pos, n)
            pos += n


async def _pieces_backward(
    export: Searchable,
    hi: int,
    m: int,
    chunk: int,
    zeros: bool,
    align: Alignment | None,
) -> AsyncIterator[tuple[int, bytes]]:
    window = chunk
    while hi > 0:
        lo = max(0, hi - window)
        lo -= lo % chunk
        found, start = await spans_before(export, lo, hi)
        window = min(window * 4, WINDOW) if start == lo else max(hi - start, chunk)
        for span in reversed(found):
            if span.zero:
                pieces = _zero_pieces(span.offset, span.end, m, zeros, align)
                for off, length in reversed(pieces):
                    yield off, bytes(length)
                continue
            pos = span.end
            while pos > span.offset:
                n = pos - max(span.offset, (pos - 1) - (pos - 1) % chunk)
                yield pos - n, await export.read(pos - n, n)
                pos -= n
        hi = start


@dataclass(frozen=True)
class Query:
    """One search as the dialog asked for it: what was typed, how it was read, where a
    match may begin, and whether to list every match rather than jump to the next."""

    text: str
    mode: str  # "guess", "hex" or "text" (nbdtui.editor.pattern.MODES)
    pattern: Pattern
    align: Alignment | None = None
    align_text: str = ""
    list_all: bool = False

    def describe(self) -> str:
        where = f" at {self.align}" if self.align else ""
        return self.pattern.describe() + where
