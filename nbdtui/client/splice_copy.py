"""Export to export copies that never bring the data into user space: READ reply payload
is spliced from the source's socket into a pipe, and from the pipe into the destination's
socket as the payload of a WRITE request (``os.splice``; on Unix sockets and TCP the
kernel moves page references, not bytes).

Connections of the two exports are lent in pairs (:meth:`Connection.lend`, as the bulk
engine does), and one thread drives each pair with blocking calls: it keeps READs in
flight on the source and, as each data chunk of a reply arrives, sends it on as a WRITE
of that chunk's range (a hole chunk becomes a WRITE of zeroes). Bytes count as copied
only once the destination acknowledged their WRITE (``advance`` is called then, on the
loop). The first failure stops every pair: a server's error reply is raised once what
was in flight was answered; a failed stream (including one torn mid-payload) is given
back with its error, so the connection is reopened or reported as usual. With a
timeout, each blocking call gives up after it (SO_RCVTIMEO/SO_SNDTIMEO); there is no
per-request watchdog as in :mod:`nbdtui.client.bulk`.

:func:`splice_copy` returns False, having done nothing, when no pair can be lent (TLS,
SSH) or the ranges do not suit both exports' block sizes; the caller copies the usual
way then.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from nbdtui.client.bulk import CheckedExport
from nbdtui.client.connection import Connection
from nbdtui.client.files import PIPE_SIZE, ZEROES
from nbdtui.client.group import ExportGroup
from nbdtui.client.messages import located
from nbdtui.client.replies import request_error, stream_lost
from nbdtui.errors import ConnectionLostError, NbdError, ProtocolError, RequestTimeoutError
from nbdtui.proto.client_events import Data, Hole, RequestDone
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import Command

_READ, _WRITE = int(Command.READ), int(Command.WRITE)
HEADER_PEEK = 28  # the largest header piece the machine asks for at once


class CopySide(CheckedExport, Protocol):
    """What the copy uses of an :class:`~nbdtui.client.export.Export`."""

    _group: ExportGroup


class _Shared:
    """The work the pairs share: the requests left, and the first failure."""

    def __init__(self, jobs: collections.deque[tuple[int, int]]) -> None:
        self.lock = threading.Lock()
        self.jobs = jobs
        self.failed = False

    def take(self) -> tuple[int, int] | None:
        with self.lock:
            if self.failed or not self.jobs:
                return None
            return self.jobs.popleft()


async def splice_copy(
    src: CopySide,
    dst: CopySide,
    ranges: Sequence[tuple[int, int]],
    advance: Callable[[int], None],
) -> bool:
    """Copy the ``(start, end)`` ``ranges`` of ``src`` to the same offsets of ``dst``;
    see the module documentation. False when this cannot be done (nothing was)."""
    dst._check_write("write", fua=False)
    size = min(src.request_size, dst.request_size)
    mb = max(src.block_minimum, dst.block_minimum)
    if size % src.block_minimum or size % dst.block_minimum or size < mb:
        return False
    for start, end in ranges:
        src._check_range(start, end - start)
        dst._check_range(start, end - start)
        if start % mb or end % mb:
            return False
    pairs = await _lend_pairs(src._group, dst._group)
    if not pairs:
        return False
    jobs: collections.deque[tuple[int, int]] = collections.deque(
        (pos, min(size, end - pos)) for start, end in ranges for pos in range(start, end, size)
    )
    shared = _Shared(jobs)
    loop = asyncio.get_running_loop()
    timeout = src.timeout if dst.timeout is None else dst.timeout
    ended: list[asyncio.Future[NbdError | None]] = []
    for pair in pairs:
        future: asyncio.Future[NbdError | None] = loop.create_future()
        ended.append(future)
        thread = threading.Thread(
            target=_run,
            args=(pair, dst._group, shared, loop, future, advance, timeout),
            name="nbdtui-splice",
            daemon=True,
        )
        thread.start()
    try:
        await asyncio.shield(asyncio.gather(*ended))
    except asyncio.CancelledError:
        with shared.lock:
            shared.failed = True
        for pair in pairs:
            for _, sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        while not all(f.done() for f in ended):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(asyncio.gather(*ended))
        raise
    errors = [f.result() for f in ended]
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return True


async def _lend_pairs(
    src: ExportGroup, dst: ExportGroup
) -> list[list[tuple[Connection, socket.socket]]]:
    """As many (source, destination) pairs of lent connections as both groups have;
    the rest, and everything when one side has none, given back."""
    await src.open_all()
    await dst.open_all()
    lent: list[list[tuple[Connection, socket.socket]]] = [[], []]
    try:
        for side, group in zip(lent, (src, dst), strict=True):
            for conn in [c for c in group.connections if c.usable]:
                sock = await conn.lend()
                if sock is not None:
                    side.append((conn, sock))
    except BaseException:
        for side in lent:
            for conn, sock in side:
                conn.give_back(sock)
        raise
    n = min(len(lent[0]), len(lent[1]))
    for side in lent:
        for conn, sock in side[n:]:
            conn.give_back(sock)
    return [[lent[0][i], lent[1][i]] for i in range(n)]


def _run(
    pair: list[tuple[Connection, socket.socket]],
    group: ExportGroup,
    shared: _Shared,
    loop: asyncio.AbstractEventLoop,
    ended: asyncio.Future[NbdError | None],
    advance: Callable[[int], None],
    timeout: float | None,
) -> None:
    """A pair's thread: copy until no request is left, then give both connections back
    (on the loop) and report the first error, if any."""
    (sconn, ssock), (dconn, dsock) = pair
    if timeout is not None:
        tv = struct.pack("ll", int(timeout), int(timeout % 1 * 1e6))
        for sock in (ssock, dsock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    pair_copy = _PairCopy(sconn, ssock, dconn, dsock, shared, loop, advance)
    error: NbdError | None = None
    broken: NbdError | None = None  # the streams can no longer be used
    try:
        pair_copy.run()
        error = pair_copy.error
    except (TimeoutError, BlockingIOError):
        broken = RequestTimeoutError(
            f"a request timed out after {timeout:g} s "
            f"(copying from {sconn.endpoint.display} to {dconn.endpoint.display})"
        )
    except ProtocolError as exc:
        broken = located(exc, pair_copy.failing.endpoint)
    except NbdError as exc:
        broken = exc
    except (OSError, EOFError) as exc:
        broken = stream_lost(pair_copy.failing.endpoint, exc)
    except BaseException as exc:  # pragma: no cover - a bug: do not hang the loop
        broken = ConnectionLostError(f"copy thread failed: {exc!r}")
    finally:
        pair_copy.close()
    if broken is not None:
        with shared.lock:
            shared.failed = True
    result = broken or error

    def finish() -> None:
        sconn.give_back(ssock, broken)
        dconn.give_back(dsock, broken)
        if pair_copy.acked:
            group.recovery.succeeded(dconn, _WRITE, pair_copy.acked)
        if not ended.done():
            ended.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
        loop.call_soon_threadsafe(finish)


class _PairCopy:
    """The state of one pair's copy (on its thread)."""

    def __init__(
        self,
        sconn: Connection,
        ssock: socket.socket,
        dconn: Connection,
        dsock: socket.socket,
        shared: _Shared,
        loop: asyncio.AbstractEventLoop,
        advance: Callable[[int], None],
    ) -> None:
        self.sconn, self.ssock, self.dconn, self.dsock = sconn, ssock, dconn, dsock
        self.shared = shared
        self.loop = loop
        self.advance = advance
        self.reads: dict[int, int] = {}  # READs in flight: cookie -> length
        self.writes: dict[int, int] = {}  # WRITEs in flight: cookie -> length
        self.error: NbdError | None = None  # the first error reply
        self.acked = 0  # WRITEs acknowledged
        self.failing: Connection = sconn  # whose stream a failure is about
        self.pipe_r, self.pipe_w = os.pipe()
        with contextlib.suppress(OSError):  # (the default size otherwise)
            fcntl.fcntl(self.pipe_w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.pipe_size = fcntl.fcntl(self.pipe_w, fcntl.F_GETPIPE_SZ)

    def close(self) -> None:
        os.close(self.pipe_r)
        os.close(self.pipe_w)

    def _failed(self, error: NbdError) -> None:
        if self.error is None:
            self.error = error
        with self.shared.lock:
            self.shared.failed = True

    def run(self) -> None:
        sm: ClientTransmission = self.sconn.machine
        window = min(self.sconn.window, self.dconn.window)
        peek = memoryview(bytearray(HEADER_PEEK))
        reads = self.reads
        while True:
            out: list[bytes] = []
            while len(reads) < window:
                job = self.shared.take()
                if job is None:
                    break
                cookie, header = sm.request(_READ, job[0], job[1], 0)
                reads[cookie] = job[1]
                out.append(header)
            if out:
                self.failing = self.sconn
                self.ssock.sendall(b"".join(out))
                self.sconn.requests += len(out)
            if not reads:
                break
            target = sm.read_target()
            self.failing = self.sconn
            if target is None:
                n = self.ssock.recv_into(peek, min(sm.bytes_wanted() or 1, HEADER_PEEK))
                if not n:
                    raise EOFError
                events = sm.receive_data(peek[:n])
            else:
                self._write_header(target.offset, target.length)
                self._splice(target.length)
                events = sm.payload_received(target.length)
                self.sconn.bytes_read += target.length
            for ev in events:
                kind = type(ev)
                if kind is Data:
                    assert isinstance(ev, Data)
                    if ev.data is not None:  # (payload that came with a header)
                        self._write_header(ev.offset, ev.length)
                        self.dsock.sendall(ev.data)
                elif kind is Hole:
                    assert isinstance(ev, Hole)
                    self._write_zeroes(ev.offset, ev.length)
                elif kind is RequestDone:
                    assert isinstance(ev, RequestDone)
                    reads.pop(ev.cookie)
                    if ev.error:
                        self.sconn.errors += 1
                        self._failed(request_error(ev, _READ))
            self._receive_acks(block=False)
        while self.writes:
            self._receive_acks(block=True)

    def _write_header(self, offset: int, length: int) -> None:
        """Send a WRITE request's header (its payload is sent next), once the
        destination's window has room."""
        while len(self.writes) >= self.dconn.window:
            self._receive_acks(block=True)
        cookie, header = self.dconn.machine.request(_WRITE, offset, length, 0)
        self.writes[cookie] = length
        self.failing = self.dconn
        self.dsock.sendall(header)
        self.dconn.requests += 1

    def _write_zeroes(self, offset: int, length: int) -> None:
        while length:
            n = min(length, len(ZEROES))
            self._write_header(offset, n)
            self.dsock.sendall(ZEROES[:n])
            offset, length = offset + n, length - n

    def _splice(self, length: int) -> None:
        """Move ``length`` bytes of payload from the source to the destination."""
        src, dst = self.ssock.fileno(), self.dsock.fileno()
        pipe_r, pipe_w, most = self.pipe_r, self.pipe_w, self.pipe_size
        while length:
            self.failing = self.sconn
            n = os.splice(src, pipe_w, min(length, most))
            if not n:
                raise EOFError
            length -= n
            self.failing = self.dconn
            while n:
                n -= os.splice(pipe_r, dst, n)

    def _receive_acks(self, *, block: bool) -> None:
        """Apply the destination's replies that came (at least one if ``block``)."""
        if not self.writes:
            return
        self.failing = self.dconn
        try:
            data = self.dsock.recv(4096, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            if block:
                raise
            return
        if not data:
            raise EOFError
        done = 0
        for ev in self.dconn.machine.receive_data(data):
            if type(ev) is RequestDone:
                assert isinstance(ev, RequestDone)
                length = self.writes.pop(ev.cookie)
                if ev.error:
                    self.dconn.errors += 1
                    self._failed(request_error(ev, _WRITE))
                else:
                    self.acked += 1
                    self.dconn.bytes_written += length
                    done += length
        if done:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.advance, done)
