"""The two sides of `nbdtui copy`: an NBD export, a local file or block device, or a
pipe (``-``). Each side says how big it is, which ranges read as zeroes, and how to
read, write and zero a range of it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from nbdtui.client.files import pwrite_all, write_zeroes
from nbdtui.client.request import FileRange
from nbdtui.errors import NbdError, RequestError

if TYPE_CHECKING:
    from nbdtui.client.bulk import BulkEngine
    from nbdtui.client.export import Export

# NBD URIs and QEMU's nbd:host:port; anything else names a local file.
_URI_RE = re.compile(r"(?i)^\s*nbd[a-z+]*:")

Ranges = list[tuple[int, int]]  # (start, end), sorted, not overlapping
MAX_ZERO_RANGES = 1 << 16  # zero ranges of a source kept at once


def is_endpoint(text: str) -> bool:
    """``text`` names an NBD endpoint (not a local file or ``-``)."""
    return bool(_URI_RE.match(text)) or "://" in text


@dataclass
class ExportSide:
    """An open export; ``engine`` is its bulk engine while the data is copied."""

    export: Export
    name: str
    engine: BulkEngine | None = None

    seekable = True  # (as a FileSide may not be)

    @property
    def size(self) -> int:
        return self.export.size

    async def zero_ranges(self, offset: int, length: int) -> Ranges:
        """The ranges block status reports as reading zeroes (holes or zero extents),
        taken as they come. At most ``MAX_ZERO_RANGES`` are kept whatever the server
        reports (1-byte extents, say): past that, the shortest are dropped (read and
        copied as data instead: slower, never wrong), the least length kept doubling."""
        if not length or self.export.negotiated.context_id("base:allocation") is None:
            return []
        kept: Ranges = []
        least = 1  # zero runs shorter than this are copied as data
        lo = hi = -1  # the zero run being built

        def close() -> None:
            nonlocal least
            if hi - lo >= least:
                kept.append((lo, hi))
            while len(kept) > MAX_ZERO_RANGES:
                least *= 2
                kept[:] = [(a, b) for a, b in kept if b - a >= least]

        try:
            async with contextlib.aclosing(self.export.iter_extents(offset, length)) as found:
                async for e in found:
                    if not e.zero:
                        continue
                    if e.offset != hi:
                        close()
                        lo = e.offset
                    hi = e.end
        except RequestError:  # block status is an optimisation: read everything
            return []
        close()
        return kept

    async def read(self, offset: int, buf: memoryview) -> None:
        await (self.engine or self.export).read_into(offset, buf)

    async def write(self, offset: int, data: memoryview | FileRange) -> None:
        if self.engine is not None:
            await self.engine.write(offset, data)
        else:
            await self.export.write(offset, data)

    async def zero(self, offset: int, length: int) -> None:
        """Zeroes over the range (NBD_CMD_WRITE_ZEROES, which may punch a hole; written
        zeroes when the server has no such command)."""
        await self.export.zero(offset, length)


@dataclass
class FileSide:
    """A local file, block device, or stdin/stdout.

    ``size`` is None for a pipe; ``fresh`` means the file was created (or was empty)
    for this copy, so every byte of it reads as zero already."""

    file: BinaryIO
    name: str
    size: int | None
    seekable: bool
    fresh: bool = False
    regular: bool = False
    _punch: bool = field(default=True, repr=False)

    @property
    def fd(self) -> int:
        return self.file.fileno()

    async def zero_ranges(self, offset: int, length: int) -> Ranges:
        """The holes of a regular file (SEEK_HOLE), and whatever lies past its end."""
        if self.fresh:
            return [(offset, offset + length)] if length else []
        if not self.regular:
            return []
        return await asyncio.to_thread(_holes, self.fd, offset, offset + length)

    async def read(self, offset: int, buf: memoryview) -> None:
        await asyncio.to_thread(_pread_exactly, self.fd, buf, offset, self.name)

    async def write(self, offset: int, data: memoryview | FileRange) -> None:
        view = memoryview(data.read()) if isinstance(data, FileRange) else data
        await asyncio.to_thread(pwrite_all, self.fd, view, offset)

    async def zero(self, offset: int, length: int) -> None:
        """A hole punched where the file system can, else zeroes written."""
        if self._punch and self.regular:
            try:
                await asyncio.to_thread(_punch_hole, self.fd, offset, length)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                self._punch = False
        dest = FileRange(self.file, offset, length)
        await asyncio.to_thread(write_zeroes, dest, 0, length)

    def sync(self) -> None:
        if self.seekable:
            os.fsync(self.fd)


def open_file_side(name: str, *, write: bool, stack: contextlib.ExitStack) -> FileSide:
    """Open a local SRC (``write`` False) or DST. ``-`` is stdin or stdout; a DST file
    that does not exist is created (it is then ``fresh``, as is an empty one)."""
    if name == "-":
        fd = sys.stdout.fileno() if write else sys.stdin.fileno()
        file = stack.enter_context(os.fdopen(fd, "wb" if write else "rb", 0, closefd=False))
        label = "stdout" if write else "stdin"
    else:
        flags = (os.O_RDWR | os.O_CREAT) if write else os.O_RDONLY
        fd = os.open(name, flags | os.O_CLOEXEC, 0o666)
        file = stack.enter_context(os.fdopen(fd, "r+b" if write else "rb", 0))
        label = name
    st = os.fstat(fd)
    regular = stat.S_ISREG(st.st_mode)
    seekable = regular or stat.S_ISBLK(st.st_mode)
    if seekable and name == "-" and write:
        import fcntl

        seekable = not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND
    size: int | None = None
    if regular:
        size = st.st_size
    elif seekable:
        size = os.lseek(fd, 0, os.SEEK_END)
    fresh = write and regular and size == 0
    return FileSide(file, label, size, seekable, fresh=fresh, regular=regular)


def merge(ranges: object) -> Ranges:
    """Sorted ranges with touching or overlapping neighbours joined."""
    out: Ranges = []
    for start, end in sorted(ranges):  # type: ignore[call-overload]
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def subtract(ranges: Ranges, minus: Ranges) -> Ranges:
    """The parts of ``ranges`` that no range of ``minus`` covers (both sorted)."""
    out: Ranges = []
    j = 0
    for start, end in ranges:
        pos = start
        while j < len(minus) and minus[j][1] <= pos:
            j += 1
        k = j
        while k < len(minus) and minus[k][0] < end:
            lo, hi = minus[k]
            if lo > pos:
                out.append((pos, lo))
            pos = max(pos, hi)
            k += 1
        if pos < end:
            out.append((pos, end))
    return out


def _holes(fd: int, start: int, end: int) -> Ranges:
    """The holes of a regular file between ``start`` and ``end`` (past its end too)."""
    size = os.fstat(fd).st_size
    out: Ranges = []
    pos = start
    while pos < min(end, size):
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no data after pos
                return merge(out)  # no SEEK_DATA here: say nothing is a hole
            data = size
        if data > pos:
            out.append((pos, min(data, end)))
        if data >= min(end, size):
            break
        pos = os.lseek(fd, data, os.SEEK_HOLE)
    if size < end:
        out.append((max(size, start), end))
    return merge(out)


def _pread_exactly(fd: int, buf: memoryview, offset: int, name: str) -> None:
    got = 0
    while got < len(buf):
        n = os.preadv(fd, [buf[got:]], offset + got)
        if not n:
            raise NbdError(f"{name} ended at byte {offset + got} (it shrank during the copy)")
        got += n


_libc_fallocate = None


def _punch_hole(fd: int, offset: int, length: int) -> None:
    """fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): the range reads as zeroes
    and takes no space (Python's os has no fallocate with flags)."""
    global _libc_fallocate
    if _libc_fallocate is None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.fallocate
        func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
        _libc_fallocate = func
    if _libc_fallocate(fd, 0x02 | 0x01, offset, length) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
