"""The export object: byte-range I/O over the pooled connections of one NBD export.

:class:`Export` turns calls of any size into requests the server accepts:

* large ranges are split into requests of :attr:`Export.request_size` bytes (at most
  the server's maximum payload, 32 MiB when it says nothing), aligned to multiples of
  that size, and kept in flight concurrently over the export's connections;
* when the server demands a minimum block size, unaligned reads read the covering
  blocks, and unaligned writes and zeroes read-modify-write the partial blocks at their
  ends; writes that touch the same blocks are serialised (a range lock) so a
  read-modify-write never undoes a concurrent write;
* commands the export does not support, and ranges past its end, are refused with
  :class:`~nbdtui.errors.NotSupportedError` / ``ValueError`` before anything is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass

from nbdtui.client.bulk import OpenBulk
from nbdtui.client.connection import ConnectionStats
from nbdtui.client.group import ExportGroup, Result
from nbdtui.client.pool import Pool
from nbdtui.client.request import FileRange, Request
from nbdtui.errors import NbdError, NotSupportedError, ProtocolError, RangeError
from nbdtui.proto.client_events import Negotiated
from nbdtui.proto.constants import (
    BASE_ALLOCATION,
    DEFAULT_BLOCK_MAX,
    AllocationFlag,
    Command,
    CommandFlag,
)
from nbdtui.proto.types import ExportInfo
from nbdtui.uri import Endpoint

# Requests of large transfers: 1 MiB measured fastest (bench: 1 GiB pattern read, 4
# connections); a transfer is split into at least SPREAD requests (down to
# MIN_REQUEST_SIZE) so that even medium ones use several connections.
DEFAULT_REQUEST_SIZE = 1024 * 1024
MIN_REQUEST_SIZE = 256 * 1024
SPREAD = 8
NO_PAYLOAD_MAX = 1 << 30  # TRIM / WRITE_ZEROES / BLOCK_STATUS requests are split at 1 GiB


_READ, _WRITE = int(Command.READ), int(Command.WRITE)


_HOLE, _ZERO = int(AllocationFlag.HOLE), int(AllocationFlag.ZERO)  # (IntFlag's & is slow)


@dataclass(frozen=True)
class Extent:
    """A run of bytes with the same ``base:allocation`` flags (AllocationFlag bits)."""

    offset: int
    length: int
    flags: int

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def hole(self) -> bool:
        return bool(self.flags & _HOLE)

    @property
    def zero(self) -> bool:
        return bool(self.flags & _ZERO)

    @property
    def description(self) -> str:
        """``data``, ``hole``, ``zero`` or ``hole,zero``: the words of ``nbdinfo --map``."""
        words = [w for w, on in (("hole", self.hole), ("zero", self.zero)) if on]
        unknown = self.flags & ~(AllocationFlag.HOLE | AllocationFlag.ZERO)
        if unknown:
            words.append(f"unknown ({unknown:#x})")
        return ",".join(words) or "data"


def _spans(offset: int, length: int, size: int) -> Iterator[tuple[int, int]]:
    """Split ``offset+length`` at multiples of ``size``."""
    end = offset + length
    while offset < end:
        stop = min((offset // size + 1) * size, end)
        yield offset, stop - offset
        offset = stop


def _as_bytes_view(buffer: bytes | bytearray | memoryview, *, writable: bool) -> memoryview:
    view = memoryview(buffer)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if writable and view.readonly:
        raise TypeError("read_into() needs a writable buffer")
    return view


class Export:
    """An open NBD export. Obtain one with :func:`nbdtui.open`.

    Every method is a coroutine safe to call concurrently from many tasks; requests are
    pipelined over the export's connections. Server errors raise
    :class:`~nbdtui.errors.RequestError` (the export stays usable); a broken
    connection raises :class:`~nbdtui.errors.ProtocolError` or
    :class:`~nbdtui.errors.ConnectionLostError`.
    """

    def __init__(self, group: ExportGroup, pool: Pool) -> None:
        assert group.negotiated is not None
        self._group = group
        self._pool = pool
        self._closed = False
        self.endpoint: Endpoint = group.endpoint
        self.negotiated: Negotiated = group.negotiated
        info = self.negotiated.info
        self.info: ExportInfo = info
        self.size: int = info.size
        self.name: str = info.name or group.endpoint.export
        self.block_minimum: int = info.block_minimum or 1
        self.max_payload: int = info.block_maximum or DEFAULT_BLOCK_MAX
        self._request_size = 0
        self.request_size = DEFAULT_REQUEST_SIZE

    def __repr__(self) -> str:
        return f"<Export {self.name!r} on {self.endpoint.display}, {self.size} bytes>"

    @property
    def request_size(self) -> int:
        """Size of the requests large transfers are split into: at most the server's
        maximum payload, a multiple of its minimum block size."""
        return self._request_size

    @request_size.setter
    def request_size(self, value: int) -> None:
        if value < 1:
            raise ValueError("request_size must be positive")
        self._request_size = self._aligned_down(min(value, self.max_payload))
        # reads up to this size are never split (see _split_size)
        self._single_max = self._aligned_down(min(self._request_size, MIN_REQUEST_SIZE))

    def _split_size(self, length: int) -> int:
        size = min(self._request_size, max(length // SPREAD, MIN_REQUEST_SIZE))
        return self._aligned_down(size)

    # ---- checks -------------------------------------------------------------------

    def _aligned_down(self, n: int) -> int:
        return max(n - n % self.block_minimum, self.block_minimum)

    def _check_open(self) -> None:
        if self._closed:
            raise NbdError("the export is closed")

    def _check_range(self, offset: int, length: int) -> None:
        self._check_open()
        if offset < 0 or length < 0:
            raise RangeError(f"negative offset or length ({offset}+{length})")
        if offset + length > self.size:
            raise RangeError(
                f"range {offset:#x}+{length} is past the end of the export (size {self.size})"
            )

    def _check_write(self, what: str, *, fua: bool) -> None:
        self._check_open()
        if self.info.read_only:
            raise NotSupportedError(f"cannot {what}: the export is read-only")
        if fua and not self.info.can_fua:
            raise NotSupportedError(f"cannot {what} with FUA: the server does not support FUA")

    # ---- request plumbing ---------------------------------------------------------

    async def _run(self, requests: Iterator[Request]) -> None:
        """Send ``requests``, keeping as many in flight as the connections allow; raise
        the first error once all are done. Requests a lost connection took with it are
        sent again when the export reconnects (see :mod:`nbdtui.client.recovery`)."""
        await self._group.perform_all(requests)

    async def _one(self, request: Request) -> Result:
        result, _ = await self._group.perform(request)
        return result

    async def open_connections(self) -> None:
        """Open every connection the export may use now (they open one at a time as
        request windows fill otherwise): worth it before a large transfer."""
        self._check_open()
        await self._group.open_all()

    def bulk(self) -> OpenBulk:
        """The bulk engine, for a large transfer: ``async with export.bulk() as engine:``
        then ``await engine.read_into(offset, buffer)`` and ``await engine.write(offset,
        data)`` as with the export (``buffer`` may also be a :class:`FileRange` to write
        the bytes into a file). Every connection is opened and, over plain TCP or Unix
        sockets, lent to a thread of its own for the duration (the export's other
        requests wait meanwhile); over TLS the engine opens blocking connections of its
        own instead; elsewhere (SSH) it uses the usual path (``engine.threaded`` is
        False). See :mod:`nbdtui.client.bulk`."""
        self._check_open()
        return OpenBulk(self, self._group)

    # ---- reads --------------------------------------------------------------------

    async def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``."""
        self._check_range(offset, length)
        buf = bytearray(length)
        await self.read_into(offset, buf)
        return bytes(buf)

    async def read_into(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` (any writable bytes-like object) with the bytes at ``offset``.

        The data is received straight into ``buffer``. If the call is cancelled,
        ``buffer`` is no longer written to once the cancellation is delivered.
        """
        view = _as_bytes_view(buffer, writable=True)
        length = len(view)
        self._check_range(offset, length)
        if not length:
            return
        mb = self.block_minimum
        if mb == 1 and length <= self._single_max:
            # One request (random reads: the hot path).
            await self._group.perform(Request(_READ, offset, length, dest=view))
        elif mb > 1 and (offset % mb or length % mb):
            start = offset - offset % mb
            end = min(-(-(offset + length) // mb) * mb, self.size)
            tmp = bytearray(end - start)
            await self._read(start, memoryview(tmp))
            view[:] = memoryview(tmp)[offset - start : offset - start + length]
        else:
            await self._read(offset, view)

    async def _read(self, offset: int, view: memoryview) -> None:
        size = self._split_size(len(view))
        if len(view) <= size:
            await self._one(Request(_READ, offset, len(view), dest=view))
            return
        await self._run(
            Request(_READ, off, n, dest=view[off - offset : off - offset + n])
            for off, n in _spans(offset, len(view), size)
        )

    # ---- writes -------------------------------------------------------------------

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview | FileRange, *, fua: bool = False
    ) -> None:
        """Write ``data`` at ``offset``; with ``fua`` the server persists it before
        answering. Returns once the server acknowledged every byte.

        ``data`` may be a :class:`~nbdtui.client.request.FileRange`: bytes of a file,
        sent from the file without passing through Python where the transport allows.
        """
        self._check_write("write", fua=fua)
        # A FileRange is split like a buffer and its pieces are sent from the file.
        view = data if isinstance(data, FileRange) else _as_bytes_view(data, writable=False)
        self._check_range(offset, len(view))
        if not view:
            return
        flags = int(CommandFlag.FUA) if fua else 0
        mb = self.block_minimum
        if mb == 1:
            await self._write(offset, view, flags)
            return
        start, end = offset - offset % mb, -(-(offset + len(view)) // mb) * mb
        async with self._group.locks.hold(start, end):
            await self._write_unaligned(offset, view, flags)

    async def _write(self, offset: int, view: memoryview | FileRange, flags: int) -> None:
        size = self._split_size(len(view))
        if len(view) <= size:
            await self._one(Request(_WRITE, offset, len(view), flags, payload=view))
            return
        await self._run(
            Request(_WRITE, off, n, flags, payload=view[off - offset : off - offset + n])
            for off, n in _spans(offset, len(view), size)
        )

    async def _write_unaligned(self, offset: int, view: memoryview | FileRange, flags: int) -> None:
        """Write with read-modify-write of the partial blocks at the ends of the range.
        The caller holds the range lock."""
        inner_start, inner_end = await self._patch_blocks(offset, len(view), view, flags)
        if inner_end > inner_start:
            await self._write(inner_start, view[inner_start - offset : inner_end - offset], flags)

    def _partial_blocks(self, offset: int, length: int) -> tuple[list[int], int, int]:
        """The partial blocks at the ends of ``offset+length`` (a range ending at the end
        of the export counts as aligned there) and the aligned interior ``(start, end)``."""
        mb = self.block_minimum
        end = offset + length
        blocks = []
        if offset % mb:
            blocks.append(offset - offset % mb)
        tail_partial = end % mb and end != self.size
        if tail_partial and end - end % mb not in blocks:
            blocks.append(end - end % mb)
        inner_start = -(-offset // mb) * mb
        inner_end = end - end % mb if tail_partial else end
        if inner_start >= inner_end:
            inner_start = inner_end = end
        return blocks, inner_start, inner_end

    async def _patch_blocks(
        self, offset: int, length: int, data: memoryview | FileRange | None, flags: int
    ) -> tuple[int, int]:
        """Read-modify-write the partial blocks at both ends of ``offset+length`` with
        ``data`` (zeroes when ``None``); return the aligned interior ``(start, end)``."""
        blocks, inner_start, inner_end = self._partial_blocks(offset, length)
        end = offset + length
        patched = []
        for block in blocks:
            block_end = min(block + self.block_minimum, self.size)
            buf = bytearray(block_end - block)
            await self._one(Request(_READ, block, len(buf), dest=memoryview(buf)))
            lo, hi = max(block, offset), min(block_end, end)
            if data is None:
                buf[lo - block : hi - block] = bytes(hi - lo)
            else:
                piece = data[lo - offset : hi - offset]
                buf[lo - block : hi - block] = (
                    piece.read() if isinstance(piece, FileRange) else piece
                )
            patched.append((block, buf))
        await self._run(
            Request(_WRITE, block, len(buf), flags, payload=memoryview(buf))
            for block, buf in patched
        )
        return inner_start, inner_end

    # ---- other commands -----------------------------------------------------------

    async def flush(self) -> None:
        """Make every write the server acknowledged so far persistent."""
        self._check_open()
        if not self.info.can_flush:
            raise NotSupportedError("cannot flush: the server does not support flush")
        # Without multi-conn the pool opens one connection: its flush covers everything.
        group = self._group
        covered = group.recovery.flush_started()
        await self._one(Request(Command.FLUSH))
        group.recovery.flush_done(
            covered
        )  # raises if acknowledged writes went with a lost connection

    async def trim(self, offset: int, length: int, *, fua: bool = False) -> None:
        """Tell the server the range is no longer needed (it may read back as anything).

        With a minimum block size, only the whole blocks inside the range are trimmed.
        """
        self._check_write("trim", fua=fua)
        if not self.info.can_trim:
            raise NotSupportedError("cannot trim: the server does not support trim")
        self._check_range(offset, length)
        mb = self.block_minimum
        start, end = -(-offset // mb) * mb, (offset + length) - (offset + length) % mb
        if offset + length == self.size:
            end = self.size
        if end <= start:
            return
        flags = int(CommandFlag.FUA) if fua else 0
        async with self._locked(start, end):
            await self._run(
                Request(Command.TRIM, off, n, flags)
                for off, n in _spans(start, end - start, self._aligned_down(NO_PAYLOAD_MAX))
            )

    async def zero(
        self,
        offset: int,
        length: int,
        *,
        fua: bool = False,
        fast: bool = False,
        no_hole: bool = False,
    ) -> None:
        """Make the range read back as zeroes (NBD_CMD_WRITE_ZEROES).

        ``no_hole`` asks the server to keep it allocated; ``fast`` asks it to fail with
        ENOTSUP rather than be slow. Without write-zeroes support on the server, zeroes
        are written (not with ``fast``, which is refused).
        """
        self._check_write("zero", fua=fua)
        if fast and not self.info.can_fast_zero:
            raise NotSupportedError("cannot fast-zero: the server does not support fast zero")
        self._check_range(offset, length)
        if length == 0:
            return
        flags = (int(CommandFlag.FUA) if fua else 0) | (int(CommandFlag.NO_HOLE) if no_hole else 0)
        flags |= int(CommandFlag.FAST_ZERO) if fast else 0
        mb = self.block_minimum
        start, end = offset - offset % mb, -(-(offset + length) // mb) * mb
        async with self._locked(start, end):
            if mb > 1:
                inner_start, inner_end = await self._patch_blocks(
                    offset, length, None, flags & CommandFlag.FUA
                )
            else:
                inner_start, inner_end = offset, offset + length
            if inner_end > inner_start:
                await self._zero_aligned(inner_start, inner_end - inner_start, flags)

    async def _zero_aligned(self, offset: int, length: int, flags: int) -> None:
        if not self.info.can_zero:
            zeroes = memoryview(bytes(min(length, self.request_size)))
            await self._run(
                Request(_WRITE, off, n, flags & CommandFlag.FUA, payload=zeroes[:n])
                for off, n in _spans(offset, length, self.request_size)
            )
            return
        await self._run(
            Request(Command.WRITE_ZEROES, off, n, flags)
            for off, n in _spans(offset, length, self._aligned_down(NO_PAYLOAD_MAX))
        )

    async def cache(self, offset: int, length: int) -> None:
        """Ask the server to prefetch the range (advisory)."""
        self._check_open()
        if not self.info.can_cache:
            raise NotSupportedError("cannot cache: the server does not support cache")
        self._check_range(offset, length)
        mb = self.block_minimum
        start = offset - offset % mb
        end = min(-(-(offset + length) // mb) * mb, self.size)
        if end <= start:
            return
        await self._run(
            Request(Command.CACHE, off, n)
            for off, n in _spans(start, end - start, self._aligned_down(self.max_payload))
        )

    async def extents(
        self, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> list[Extent]:
        """Allocation of the range (``base:allocation``): consecutive extents covering
        exactly ``offset+length`` (to the end of the export by default), neighbours with
        equal flags merged. Without block status support: one data extent.

        A fragmented export has many extents: ``limit`` returns at most that many, the
        first ones (they cover a part of the range from ``offset``; ask again from where
        they end, the last one may go on), so that what is held stays bounded whatever
        the server reports; :meth:`iter_extents` yields them as they come instead."""
        return await _first(self.iter_extents(offset, length), limit)

    async def iter_extents(
        self, offset: int = 0, length: int | None = None
    ) -> AsyncGenerator[Extent, None]:
        """:meth:`extents`, yielded as the replies come: block status is asked for one
        window (at most 1 GiB) at a time, from where the last reply ended, so memory
        stays bounded whatever the server reports (each reply holds at most
        ``MAX_STATUS_EXTENTS`` merged extents, see ``nbdtui.proto.client_transmission``)."""
        if length is None:
            length = max(self.size - offset, 0)
        self._check_range(offset, length)
        if length == 0:
            return
        if self.negotiated.context_id(BASE_ALLOCATION) is None:
            yield Extent(offset, length, 0)
            return
        async for extent in self._merged(BASE_ALLOCATION, offset, length):
            yield extent

    async def allocation(self, offset: int, length: int) -> list[Extent]:
        """What one block status reply says from ``offset``: consecutive extents (at
        least one) starting there and ending at ``offset+length`` at the latest (the
        server may describe less; ask again from where they end). At most 1 GiB is asked
        at once, and a reply holds at most ``MAX_STATUS_EXTENTS`` merged extents."""
        self._check_range(offset, length)
        if length == 0:
            return []
        if self.negotiated.context_id(BASE_ALLOCATION) is None:
            return [Extent(offset, length, 0)]
        out: list[Extent] = []
        pos, end = offset, offset + length
        for ext_length, flags in await self._status(BASE_ALLOCATION, offset, length):
            n = min(ext_length, end - pos)
            if n <= 0:
                break
            if out and out[-1].flags == flags:
                out[-1] = Extent(out[-1].offset, out[-1].length + n, flags)
            else:
                out.append(Extent(pos, n, flags))
            pos += n
        return out

    async def context_extents(
        self,
        context: str,
        offset: int = 0,
        length: int | None = None,
        *,
        limit: int | None = None,
    ) -> list[Extent]:
        """The extents of any meta context the server agreed to (opened with it in
        ``ExportOptions.meta_contexts``: ``qemu:dirty-bitmap:NAME``,
        ``qemu:allocation-depth``...): consecutive, covering exactly ``offset+length``,
        neighbours with equal flags merged; ``Extent.flags`` are the context's own
        values. ``limit``: at most that many, the first ones (as for :meth:`extents`).
        Raises NotSupportedError when the server did not agree to ``context``."""
        return await _first(self.iter_context_extents(context, offset, length), limit)

    async def iter_context_extents(
        self, context: str, offset: int = 0, length: int | None = None
    ) -> AsyncGenerator[Extent, None]:
        """:meth:`context_extents`, yielded as the replies come (bounded memory)."""
        if length is None:
            length = max(self.size - offset, 0)
        self._check_range(offset, length)
        if self.negotiated.context_id(context) is None:
            raise NotSupportedError(
                f"the server does not offer the meta context {context!r} "
                f"(server {self.endpoint.display})"
            )
        async for extent in self._merged(context, offset, length):
            yield extent

    async def _merged(self, context: str, offset: int, length: int) -> AsyncIterator[Extent]:
        """The extents of ``context`` over ``offset+length``, one reply at a time,
        neighbours of equal flags merged across replies (the last held back until one
        of other flags follows); nothing but the reply being read is held."""
        start = kind = -1
        run = 0  # the length of the extent held back (0: none yet)
        pos, end = offset, offset + length
        while pos < end:
            for ext_length, flags in await self._status(context, pos, end - pos):
                n = min(ext_length, end - pos)
                if n <= 0:
                    break
                if run and flags == kind:
                    run += n
                else:
                    if run:
                        yield Extent(start, run, kind)
                    start, run, kind = pos, n, flags
                pos += n
        if run:
            yield Extent(start, run, kind)

    async def _status(self, context: str, offset: int, length: int) -> tuple[tuple[int, int], ...]:
        """One block status reply for ``context`` from ``offset`` (at most 1 GiB asked):
        its ``(length, flags)`` pairs (at least one; merged, and cut after the one that
        reaches the end of the request, by the transmission machine)."""
        step = self._aligned_down(NO_PAYLOAD_MAX)
        statuses, conn = await self._group.perform(
            Request(Command.BLOCK_STATUS, offset, min(length, step))
        )
        ident = conn.context_id(context)  # may differ after a reconnect
        mine = [s for s in statuses or () if s.context_id == ident]
        if not mine or not mine[0].extents:
            raise ProtocolError(
                f"server sent no {context} status for {offset:#x} (server {self.endpoint.display})"
            )
        return mine[0].extents

    # ---- misc ---------------------------------------------------------------------

    def _locked(self, start: int, end: int) -> contextlib.AbstractAsyncContextManager[None]:
        """The range lock when read-modify-write is possible, else a no-op."""
        if self.block_minimum > 1:
            return self._group.locks.hold(start, end)
        return _NoLock()

    def connection_stats(self) -> list[ConnectionStats]:
        """A snapshot of each connection to this export (shared with other users):
        :class:`~nbdtui.client.group.PooledConnectionStats`, with the age of the oldest
        request in flight and a ``"reconnecting"`` row while a connection is reopened."""
        return self._group.stats()

    @property
    def timeout(self) -> float | None:
        """Seconds a request may wait for its reply (``None``: no limit); see
        :func:`nbdtui.open`. Shared with every user of the same connections."""
        return self._group.recovery.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._group.recovery.timeout = value

    @property
    def reconnect_delay(self) -> float:
        """Seconds to keep reconnecting after a lost connection (0: fail at once)."""
        return self._group.recovery.reconnect_delay

    @reconnect_delay.setter
    def reconnect_delay(self, value: float) -> None:
        if value < 0:
            raise ValueError("reconnect_delay must not be negative")
        self._group.recovery.reconnect_delay = value

    @property
    def reconnecting(self) -> bool:
        """A lost connection is being reopened (requests wait for it)."""
        return self._group.reconnecting

    def reconnect(self) -> None:
        """Try to reconnect now, also after nbdtui gave up (a "retry" key); requests
        sent meanwhile wait for it. Nothing happens while a connection is usable."""
        self._check_open()
        self._group.revive()

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Stop using the export; the last user of its connections closes them."""
        if self._closed:
            return
        self._closed = True
        await self._pool.release(self._group)

    async def __aenter__(self) -> Export:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _first(extents: AsyncGenerator[Extent, None], limit: int | None) -> list[Extent]:
    """The first ``limit`` of ``extents`` (all of them when ``limit`` is None)."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    out: list[Extent] = []
    async with contextlib.aclosing(extents):
        async for extent in extents:
            out.append(extent)
            if limit is not None and len(out) >= limit:
                break
    return out
