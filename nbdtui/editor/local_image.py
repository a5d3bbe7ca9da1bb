"""A local image file (or block device) read like an export: size, bytes, allocation.

Reads run on threads (``os.preadv``), several at once, so that a local image keeps up
with an export read over several connections. Its allocation comes from
``SEEK_DATA``/``SEEK_HOLE``: a hole reads as zeros. A file system that cannot tell
(or a block device) says it is all data.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nbdtui.errors import UsageError

#: How much of a file ``iter_extents`` asks the file system about at a time.
EXTENT_WINDOW = 64 << 20


@dataclass(frozen=True)
class FileExtent:
    """A run of a file that is all data or all hole (see ``ExtentView``)."""

    offset: int
    length: int
    hole: bool

    @property
    def zero(self) -> bool:
        return self.hole


class LocalImage:
    """A local file or block device, open read-only. Close it with :meth:`close` (or
    use it as a context manager)."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise UsageError(f"{path}: is a directory, not an image")
            size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
        except BaseException:
            os.close(fd)
            raise
        self.path = path
        self._fd = fd
        self._size = size

    @property
    def name(self) -> str:
        return self.path

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LocalImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self._size:
            raise ValueError(f"range {offset}+{length} is past the end of {self.path}")

    async def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        await self.read_into(offset, memoryview(buf))
        return bytes(buf)

    async def read_into(self, offset: int, buffer: memoryview) -> None:
        """Fill ``buffer`` with the bytes at ``offset`` (on a thread)."""
        self._check_range(offset, len(buffer))
        await asyncio.to_thread(self._pread_all, offset, buffer)

    def _pread_all(self, offset: int, buffer: memoryview) -> None:
        got = 0
        while got < len(buffer):
            n = os.preadv(self._fd, [buffer[got:]], offset + got)
            if n == 0:  # the file shrank under us
                raise OSError(f"{self.path}: unexpected end of file at {offset + got}")
            got += n

    async def iter_extents(self, offset: int, length: int) -> AsyncIterator[FileExtent]:
        """:meth:`extents` a window at a time (what is held stays bounded however
        fragmented the file is), as an export's ``iter_extents``."""
        self._check_range(offset, length)
        end = offset + length
        for start in range(offset, end, EXTENT_WINDOW):
            for extent in await self.extents(start, min(start + EXTENT_WINDOW, end) - start):
                yield extent

    async def extents(self, offset: int, length: int) -> list[FileExtent]:
        """Data and holes of ``[offset, offset + length)``, consecutive."""
        self._check_range(offset, length)
        return await asyncio.to_thread(self._extents, offset, offset + length)

    def _extents(self, start: int, end: int) -> list[FileExtent]:
        out: list[FileExtent] = []
        pos = start
        while pos < end:
            try:
                data = os.lseek(self._fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos
                    out.append(FileExtent(pos, end - pos, True))
                    break
                return [*out, FileExtent(pos, end - pos, False)]  # cannot tell: data
            if data > pos:
                out.append(FileExtent(pos, min(data, end) - pos, True))
                pos = min(data, end)
                if pos >= end:
                    break
            try:
                hole = os.lseek(self._fd, pos, os.SEEK_HOLE)
            except OSError:
                hole = end
            hole = min(max(hole, pos + 1), end)
            out.append(FileExtent(pos, hole - pos, False))
            pos = hole
        return out
