"""Searching an export for a byte pattern, forwards or backwards, from any offset.

The export is read in chunks; the last ``len(pattern) - 1`` bytes of one chunk are kept
in front of the next, so a match that crosses a chunk (or cache block) boundary is found.
Regions that block status reports as reading zeros are never read: only their first and
last bytes take part (as zeros), which is all a match can touch of them unless the
pattern itself is made of zeros, in which case the first match sits at their edge
anyway. A terabyte of holes is searched with a few block-status requests.

Patterns: hex bytes (``de ad be ef``, ``0xdeadbeef``, ``de,ad``) or text, either quoted
(``"EFI PART"``) or with the dialog's text toggle (``text_mode=True``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

from nbdtui.editor.device import Searchable
from nbdtui.editor.extents import spans
from nbdtui.errors import PatternError

CHUNK = 1 << 20
MAX_PATTERN = 4096
WINDOW = 1 << 30

Progress = Callable[[int, int], None]


def parse_pattern(text: str, *, text_mode: bool = False) -> bytes:
    """The bytes to look for (see the module docstring)."""
    if text_mode:
        pattern = text.encode()
    elif len(text) >= 2 and text[0] in "\"'" and text[-1] == text[0]:
        pattern = text[1:-1].encode()
    else:
        tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
        digits = "".join(t[2:] if t.lower().startswith("0x") else t for t in tokens)
        if not digits:
            raise PatternError('type hex bytes (de ad be ef) or quoted text ("EFI PART")')
        if not re.fullmatch(r"[0-9a-fA-F]+", digits):
            raise PatternError(f'not hex bytes: {text.strip()!r} (quote text: "{text.strip()}")')
        if len(digits) % 2:
            raise PatternError(f"odd number of hex digits in {text.strip()!r}")
        pattern = bytes.fromhex(digits)
    if not pattern:
        raise PatternError("nothing to search for")
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"pattern longer than {MAX_PATTERN} bytes")
    return pattern


async def find(
    export: Searchable,
    pattern: bytes,
    start: int,
    *,
    backward: bool = False,
    size: int | None = None,
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
        return await _backward(export, pattern, start, min(size, start + m), progress, chunk)
    if start < 0 or start > size - m:
        return None
    return await _forward(export, pattern, start, size, progress, chunk)


async def _forward(
    export: Searchable,
    pattern: bytes,
    start: int,
    size: int,
    progress: Progress | None,
    chunk: int,
) -> int | None:
    keep = len(pattern) - 1
    base, buf = -1, b""
    async for off, data in _pieces(export, start, size, len(pattern), chunk):
        if off == base + len(buf):
            buf += data
        else:
            base, buf = off, data
        hit = buf.find(pattern, max(0, start - base))
        if hit >= 0:
            return base + hit
        cut = len(buf) - keep if keep else len(buf)
        if cut > 0:
            base, buf = base + cut, buf[cut:]
        if progress:
            progress(max(0, off + len(data) - start), size - start)
    return None


async def _backward(
    export: Searchable,
    pattern: bytes,
    limit: int,
    hi: int,
    progress: Progress | None,
    chunk: int,
) -> int | None:
    keep = len(pattern) - 1
    base, buf = -1, b""
    async for off, data in _pieces_backward(export, hi, len(pattern), chunk):
        if off + len(data) == base:
            base, buf = off, data + buf
        else:
            base, buf = off, data
        hit = buf.rfind(pattern, 0, max(0, limit - base + len(pattern)))
        if hit >= 0:
            return base + hit
        buf = buf[:keep]
        if progress:
            progress(max(0, hi - off), hi)
    return None


def _zero_edges(offset: int, length: int, m: int) -> tuple[tuple[int, int], ...]:
    """The parts of a zero span a match can involve: ``(offset, length)`` pairs."""
    edge = 2 * m
    if length <= 2 * edge:
        return ((offset, length),)
    return ((offset, edge), (offset + length - edge, edge))


async def _pieces(
    export: Searchable, start: int, end: int, m: int, chunk: int
) -> AsyncIterator[tuple[int, bytes]]:
    # Reads begin at a chunk boundary; bytes before ``start`` only matter when read.
    async for span in spans(export, start - start % chunk, end):
        if span.zero:
            lo = max(span.offset, start)
            for off, length in _zero_edges(lo, span.end - lo, m) if lo < span.end else ():
                yield off, bytes(length)
            continue
        pos = span.offset
        while pos < span.end:
            n = min(span.end, pos - pos % chunk + chunk) - pos
            yield pos, await export.read(pos, n)
            pos += n


async def _pieces_backward(
    export: Searchable, hi: int, m: int, chunk: int
) -> AsyncIterator[tuple[int, bytes]]:
    window = chunk
    while hi > 0:
        lo = max(0, hi - window)
        lo -= lo % chunk
        window = min(window * 4, WINDOW)
        found = [span async for span in spans(export, lo, hi)]
        for span in reversed(found):
            if span.zero:
                for off, length in reversed(_zero_edges(span.offset, span.length, m)):
                    yield off, bytes(length)
                continue
            pos = span.end
            while pos > span.offset:
                n = pos - max(span.offset, (pos - 1) - (pos - 1) % chunk)
                yield pos - n, await export.read(pos - n, n)
                pos -= n
        hi = lo
