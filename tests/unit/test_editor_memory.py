"""An in-memory stand-in for ``nbdtui.client.api.Export``, for UNIT tests of the editor core.

It holds sparse data (a dict of 4 KiB pages: absent pages are holes reading as zeros), so
a 1 TiB export costs nothing; it counts reads and can fail chosen reads. The functional
tests (``tests/integration/test_editor_functional.py``, ``tests/tui/``) use real servers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbdtui.client.export import Extent
from nbdtui.errors import NotSupportedError, RequestError

PAGE = 4096


@dataclass(frozen=True)
class FakeInfo:
    read_only: bool = False
    can_flush: bool = True
    can_trim: bool = True
    can_zero: bool = True
    block_minimum: int | None = None


@dataclass(frozen=True)
class FakeEndpoint:
    uri: str = "nbd://fake/mem"
    display: str = "fake/mem"


@dataclass
class MemoryExport:
    size: int
    name: str = "mem"
    info: FakeInfo = field(default_factory=FakeInfo)
    endpoint: FakeEndpoint = field(default_factory=FakeEndpoint)
    block_status: bool = True
    pages: dict[int, bytearray] = field(default_factory=dict)
    reads: list[tuple[int, int]] = field(default_factory=list)
    bad: set[int] = field(default_factory=set)  # offsets whose reads fail with EIO
    fail_writes: bool = False
    flushes: int = 0

    def put(self, offset: int, data: bytes) -> None:
        for i, b in enumerate(data):
            page = self.pages.setdefault((offset + i) // PAGE, bytearray(PAGE))
            page[(offset + i) % PAGE] = b

    def get(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        for pno in range(offset // PAGE, (offset + length - 1) // PAGE + 1 if length else 0):
            page = self.pages.get(pno)
            if page is None:
                continue
            lo, hi = max(offset, pno * PAGE), min(offset + length, (pno + 1) * PAGE)
            out[lo - offset : hi - offset] = page[lo - pno * PAGE : hi - pno * PAGE]
        return bytes(out)

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise RequestError(22, command="read")

    async def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        self.reads.append((offset, length))
        if any(offset <= b < offset + length for b in self.bad):
            raise RequestError(5, "bad sector", command="read")
        return self.get(offset, length)

    async def write(self, offset: int, data: bytes, fua: bool = False) -> None:
        self._check(offset, len(data))
        if self.fail_writes:
            raise RequestError(5, "injected", command="write")
        self.put(offset, data)

    async def flush(self) -> None:
        self.flushes += 1

    async def zero(self, offset: int, length: int) -> None:
        self._check(offset, length)
        self.put(offset, bytes(length))

    async def trim(self, offset: int, length: int) -> None:
        await self.zero(offset, length)

    async def extents(self, offset: int, length: int) -> list[Extent]:
        if not self.block_status:
            raise NotSupportedError("no block status")
        self._check(offset, length)
        out: list[Extent] = []
        pos, end = offset, offset + length
        while pos < end:
            flags = 0 if pos // PAGE in self.pages else 3
            nxt = min(end, (pos // PAGE + 1) * PAGE)
            if out and out[-1].flags == flags:
                last = out.pop()
                out.append(Extent(last.offset, nxt - last.offset, flags))
            else:
                out.append(Extent(pos, nxt - pos, flags))
            # Jump over long runs of holes without walking every page.
            if flags == 3:
                later = [p for p in self.pages if p * PAGE >= nxt]
                stop = min([end, *(p * PAGE for p in later)])
                if stop > nxt:
                    last = out.pop()
                    out.append(Extent(last.offset, stop - last.offset, flags))
                    nxt = stop
            pos = nxt
        return out


async def test_fake_reads_holes_as_zeros_and_maps_them():
    mem = MemoryExport(1 << 40)
    mem.put((1 << 40) - 3, b"end")
    assert await mem.read((1 << 40) - 4, 4) == b"\0end"
    extents = await mem.extents(0, 1 << 40)
    assert [(e.offset, e.length, e.flags) for e in extents] == [
        (0, (1 << 40) - PAGE, 3),
        ((1 << 40) - PAGE, PAGE, 0),
    ]
