"""Canonical hex dump, byte for byte the output of util-linux ``hexdump -C``.

``hexdump_lines(chunks, start_offset)`` prints the bytes of ``chunks`` as
``hexdump -C -s START -n LEN`` prints the same bytes of a file:

- every line starts with the absolute offset in lowercase hex, at least 8 digits
  and more when the offset needs them (``%08.8_ax`` widens: ``100000000``);
- lines start at ``start_offset`` and step by 16, so an unaligned start gives
  unaligned lines, as ``hexdump -s`` does;
- two groups of 8 bytes, then ``|ascii|`` where bytes outside 0x20..0x7e print as
  ``.`` (hexdump in the C or a UTF-8 locale);
- a full line equal to the line before it is not printed: the first of a run is
  replaced by ``*``, the rest print nothing; a partial last line is always printed,
  padded with spaces in the hex columns and unpadded in the text column;
- the last line is the end offset, unless there were no bytes at all, in which case
  nothing is printed.

The chunks may have any sizes: the squeeze state crosses chunk boundaries and the
generator keeps at most one chunk and two lines in memory, so it can stream gigabytes.
Lines are yielded without their newline; ``hexdump()`` joins them the way hexdump
writes them to stdout.  ``HexDumper`` is the same machine for push-style callers
(``feed(chunk)`` returns the finished lines, ``finish()`` the last ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

LINE = 16
# Runs of identical lines (zeros, mostly) are skipped in slices of this many lines.
_SKIP_LINES = 4096

_ASCII = bytes(b if 0x20 <= b <= 0x7E else 0x2E for b in range(256))


def format_line(offset: int, line: bytes) -> str:
    """One ``hexdump -C`` line for up to 16 bytes starting at ``offset``."""
    # "00 01 ... 0f" is 47 characters; a partial last line is padded with blanks
    # there but not in the text column.
    cells = bytes(line).hex(" ").ljust(3 * LINE - 1)
    text = bytes(line).translate(_ASCII).decode("ascii")
    return f"{offset:08x}  {cells[:23]}  {cells[24:]}  |{text}|"


class HexDumper:
    """Push-style ``hexdump -C``: ``feed()`` chunks as they arrive, then ``finish()``.

    For callers that receive data asynchronously (an asyncio loop reading from the
    network) and cannot hand ``hexdump_lines`` an iterator.  Each call returns the
    lines that became final; memory stays bounded by one chunk.
    """

    def __init__(self, start_offset: int = 0) -> None:
        if start_offset < 0:
            raise ValueError(f"negative start offset {start_offset}")
        self.start_offset = start_offset
        self.offset = start_offset  # offset of the next line
        self._pending = b""  # bytes of an incomplete line carried to the next chunk
        self._previous: bytes | None = None  # the last full line, printed or squeezed
        self._starred = False  # "*" already printed for the current run of repeats
        self._run: memoryview | None = None  # previous * _SKIP_LINES, built lazily
        self._finished = False

    def _line(self, line: bytes, out: list[str]) -> None:
        if line == self._previous:
            if not self._starred:
                self._starred = True
                out.append("*")
        else:
            self._previous, self._starred, self._run = line, False, None
            out.append(format_line(self.offset, line))
        self.offset += LINE

    def feed(self, chunk: bytes) -> list[str]:
        """The lines completed by ``chunk`` (any bytes-like object, any size)."""
        if self._finished:
            raise ValueError("feed() after finish()")
        out: list[str] = []
        if not chunk:
            return out
        if self._pending:
            need = LINE - len(self._pending)
            self._pending += bytes(chunk[:need])
            chunk = chunk[need:]
            if len(self._pending) < LINE:
                return out
            line, self._pending = self._pending, b""
            self._line(line, out)
        if not isinstance(chunk, bytes | bytearray):
            chunk = bytes(chunk)
        size = len(chunk)
        pos = 0
        while size - pos >= LINE:
            self._line(bytes(chunk[pos : pos + LINE]), out)
            pos += LINE
            if not self._starred:
                continue
            # In a run of repeats: skip the rest of it in this chunk with slices
            # compared at C speed, halving the slice until the run ends.
            if self._run is None:
                assert self._previous is not None
                self._run = memoryview(self._previous * _SKIP_LINES)
            step = len(self._run)
            while step >= LINE:
                while size - pos >= step and chunk.startswith(self._run[:step], pos):
                    pos += step
                    self.offset += step
                step //= 2
        if pos < size:
            self._pending = bytes(chunk[pos:])
        return out

    def finish(self) -> list[str]:
        """The partial last line, if any, and the end offset (nothing if no bytes)."""
        if self._finished:
            return []
        self._finished = True
        out: list[str] = []
        if self._pending:
            out.append(format_line(self.offset, self._pending))
            self.offset += len(self._pending)
            self._pending = b""
        if self.offset != self.start_offset:
            out.append(f"{self.offset:08x}")
        return out


def hexdump_lines(chunks: Iterable[bytes], start_offset: int = 0) -> Iterator[str]:
    """Yield the lines of ``hexdump -C -s start_offset`` for the bytes of ``chunks``."""
    dumper = HexDumper(start_offset)
    for chunk in chunks:
        yield from dumper.feed(chunk)
    yield from dumper.finish()


def hexdump(data: bytes, start_offset: int = 0) -> str:
    """The whole ``hexdump -C`` text for ``data`` at ``start_offset``, newlines included."""
    lines = list(hexdump_lines([data], start_offset))
    return "".join(line + "\n" for line in lines)
