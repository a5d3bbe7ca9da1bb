"""Bulk reads and writes on threads: each connection of an export is lent to a thread
that drives it with blocking socket calls, for as long as a bulk transfer lasts.

Use it through :meth:`Export.bulk() <nbdtui.client.export.Export.bulk>`::

    async with export.bulk() as engine:
        await engine.read_into(0, buffer)              # or a FileRange to write into
        await engine.write(1 << 20, FileRange(f, 0, n))

Why threads: one event loop serving 4 sockets reached about 0.8x the throughput of
``nbdcopy`` here (a bare asyncio client did no better), while 4 threads, each blocked in
``recv_into`` or ``sendfile`` with the GIL released during the kernel's copy, reached
parity for reads and beat it for writes from a file. Nothing else changes: each thread
drives the connection's own sans-IO machine
(:class:`~nbdtui.proto.client_transmission.ClientTransmission`), which it owns alone while the
connection is lent (:meth:`Connection.lend`), and applies the replies with the same code
as the event loop (:mod:`nbdtui.client.replies`); READ payload is received straight into
the caller's buffer (MSG_WAITALL: one call per payload), or, for a :class:`FileRange`
destination, from the socket through a pipe into the file (splice: the bytes never
reach user space); WRITE payload from a :class:`FileRange` goes from the page cache to
the socket (sendfile); see :mod:`nbdtui.client.files`.

Only plain TCP and Unix streams are lent. asyncio's TLS state cannot be handed to a
thread: over TLS the engine opens blocking TLS connections of its own, as many as the
group may have (the group's others are then not opened), with the same certificate checks
(:mod:`nbdtui.client.bulk_tls`); READ payload is then decrypted into the caller's
buffer, a record at a time. SSH streams are not lent: when there is nothing to lend, the
engine works on the event loop (:attr:`BulkEngine.threaded` is False), with the same
methods. Whatever goes wrong on a thread (a server error, a lost connection, a timeout),
what failed is done again the usual way (:meth:`Export.read_into`, :meth:`Export.write`)
after every connection was given back: the errors, retries and reconnects are then
exactly those of any request. A write counts as done only once the server acknowledged
it. The group counts the transfers that went the event-loop way
(``PooledConnectionStats.bulk_fallbacks``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import struct
import threading
import time
import typing
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Protocol, TypeVar

from nbdtui.client.connection import CLOSE_TIMEOUT, Connection
from nbdtui.client.files import IntoFile, pwrite_all, receive_exactly, send_file_blocking
from nbdtui.client.group import ExportGroup
from nbdtui.client.messages import describe, located
from nbdtui.client.replies import deliver, stream_lost
from nbdtui.client.request import FileRange, Payload, Request
from nbdtui.errors import ConnectionLostError, NbdError, ProtocolError, RequestTimeoutError
from nbdtui.proto.client_events import BlockStatus, RequestDone
from nbdtui.proto.constants import Command, CommandFlag

if TYPE_CHECKING:
    from nbdtui.client.bulk_tls import SideConnection

log = logging.getLogger("nbdtui.client.bulk")

# How long the engine waits for a TLS connection of its own (see _open_sides), at most.
SIDE_TIMEOUT = 3.0
# The groups whose server would not take the engine's own TLS connections.
_NO_SIDES: weakref.WeakSet[ExportGroup] = weakref.WeakSet()
_FALLBACK_PIECE = 4 << 20  # of a FileRange read on the event loop, through a buffer
HEADER_PEEK = 28  # a structured chunk header and its data offset; see connection.py
_READ, _WRITE = int(Command.READ), int(Command.WRITE)
_T = TypeVar("_T")


class CheckedExport(Protocol):
    """What a threaded engine (this one, :mod:`nbdtui.client.splice_copy`) checks and
    sizes its requests by, of an :class:`~nbdtui.client.export.Export`."""

    @property
    def block_minimum(self) -> int: ...

    @property
    def request_size(self) -> int: ...

    @property
    def timeout(self) -> float | None: ...

    def _check_range(self, offset: int, length: int) -> None: ...

    def _check_write(self, what: str, *, fua: bool) -> None: ...


class UsualPath(CheckedExport, Protocol):
    """What the engine uses of the :class:`~nbdtui.client.export.Export` it serves:
    the checks, the sizes, and the usual path for what the threads cannot do."""

    async def read_into(self, offset: int, buffer: bytearray | memoryview) -> None: ...

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview | FileRange, *, fua: bool = False
    ) -> None: ...


class _Piece:
    """One :meth:`BulkEngine.read_into` or :meth:`BulkEngine.write` call: its requests
    left to finish, and the future settled (on the loop) once none is left."""

    __slots__ = ("done", "failed", "left")

    def __init__(self, done: asyncio.Future[bool], left: int) -> None:
        self.done = done  # result: True if every request succeeded
        self.left = left
        self.failed = False


class _Job:
    """A request for a thread, and the call it is part of (a
    :class:`~nbdtui.client.replies.Target` for the replies)."""

    __slots__ = ("dest", "offset", "piece", "request", "sent_at")
    statuses: list[BlockStatus] | None = None  # (no BLOCK_STATUS on threads)

    def __init__(self, request: Request, piece: _Piece) -> None:
        self.request = request
        self.piece = piece
        self.offset = request.offset
        self.dest = request.dest
        self.sent_at = 0.0  # time.monotonic() when it went out


class BulkEngine:
    """Reads and writes over lent connections; see the module documentation.

    Obtain one with :meth:`Export.bulk() <nbdtui.client.export.Export.bulk>` (or
    :meth:`start`); :meth:`close` gives the connections back.
    """

    def __init__(
        self,
        export: UsualPath,
        group: ExportGroup,
        lent: list[tuple[Connection | SideConnection, socket.socket]],
    ) -> None:
        self._export = export
        self._group = group
        self._loop = asyncio.get_running_loop()
        self._cond = threading.Condition()
        # Requests not sent yet, one queue per thread: a call's requests are dealt round
        # the threads, so that every connection works on the oldest piece (one shared
        # queue let a thread take a whole piece's requests while the others went on to
        # later pieces).
        self._queues: list[collections.deque[_Job]] = [collections.deque() for _ in lent]
        self._live = list(range(len(lent)))  # the threads whose stream still works
        self._turn = 0
        self._stopping = False
        self._fell_back = not lent
        self._closing: asyncio.Task[None] | None = None
        self._ended: list[asyncio.Future[None]] = []
        self._threads: list[threading.Thread] = []
        self._socks = [sock for _, sock in lent]
        # A connection of the engine's own (TLS) whose FLUSH of its writes failed.
        self._unflushed: NbdError | None = None
        timeout = export.timeout
        # The watchdog (with a timeout): each thread's oldest request in flight, by the
        # time it went out (None: nothing in flight), and whether it was found too old.
        self._oldest: list[float | None] = [None] * len(lent)
        self._expired = [False] * len(lent)
        self._watch: asyncio.TimerHandle | None = None
        if timeout is not None and lent:
            self._watch = self._loop.call_later(_watch_interval(timeout), self._check_ages)
        for index, (conn, sock) in enumerate(lent):
            if timeout is not None:
                # Blocking calls that give up after ``timeout`` (BlockingIOError): a
                # socket timeout would make CPython poll before each call, and
                # MSG_WAITALL would not wait.
                tv = struct.pack("ll", int(timeout), int(timeout % 1 * 1e6))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            ended: asyncio.Future[None] = self._loop.create_future()
            self._ended.append(ended)
            thread = threading.Thread(
                target=self._run,
                args=(conn, sock, index, ended),
                name=f"nbdtui-io-{conn.endpoint.display}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    @classmethod
    async def start(cls, export: UsualPath, group: ExportGroup) -> BulkEngine:
        """Open every connection of ``group`` and lend those that can be lent to
        transfer threads (over TLS, open the engine's own instead). With none lent
        (SSH, or all busy), the engine works on the event loop."""
        lent: list[tuple[Connection | SideConnection, socket.socket]] = []
        if group.endpoint.tls:
            # TLS connections of the engine's own, without first opening the group's
            # others on the event loop (each is a TLS handshake on both sides, and the
            # transfer would not use them); those open only if the engine's cannot.
            lent.extend(await _open_sides(group))
        if not lent:
            await group.open_all()
            try:
                for conn in [c for c in group.connections if c.usable]:
                    sock = await conn.lend()
                    if sock is not None:
                        lent.append((conn, sock))
            except BaseException:  # cancelled: nothing may stay lent
                for lender, sock in lent:
                    lender.give_back(sock)
                raise
        where = group.endpoint.display
        if lent:
            log.debug("bulk transfer on %s: %d threads", where, len(lent))
        else:
            group.bulk_fallbacks += 1
            log.debug("bulk transfer on %s: on the event loop (no stream to lend)", where)
        return cls(export, group, lent)

    @property
    def threaded(self) -> bool:
        """Requests go out on threads (until one fails; then on the event loop)."""
        return bool(self._threads) and not self._fell_back

    async def read_into(self, offset: int, buffer: memoryview | FileRange) -> None:
        """Fill ``buffer`` with the bytes at ``offset``, like :meth:`Export.read_into`
        (which does it, after :meth:`close`, if the threads could not). ``buffer`` may
        be a :class:`FileRange` of a file open for writing: the bytes are written there
        (and that file must not be written by others meanwhile)."""
        export = self._export
        if await self._on_threads(_READ, offset, buffer, 0):
            return
        if isinstance(buffer, FileRange):
            # (through a buffer a piece at a time: a call may cover many MiB)
            fd, length = buffer.file.fileno(), buffer.length
            data = memoryview(bytearray(min(length, _FALLBACK_PIECE)))
            for at in range(0, length, len(data)):
                part = data[: min(len(data), length - at)]
                await export.read_into(offset + at, part)
                pwrite_all(fd, part, buffer.offset + at)
        else:
            await export.read_into(offset, buffer)

    async def write(self, offset: int, data: memoryview | FileRange, *, fua: bool = False) -> None:
        """Write ``data`` at ``offset``, like :meth:`Export.write` (which does it, after
        :meth:`close`, if the threads could not). Returns once the server acknowledged
        every byte."""
        export = self._export
        export._check_write("write", fua=fua)
        flags = int(CommandFlag.FUA) if fua else 0
        if not await self._on_threads(_WRITE, offset, data, flags):
            await export.write(offset, data, fua=fua)

    async def _on_threads(
        self, command: int, offset: int, data: memoryview | FileRange, flags: int
    ) -> bool:
        """Do the request(s) on the threads; False if they could not (nothing, or
        something, was done: the caller does it all again the usual way)."""
        export = self._export
        length = len(data)
        export._check_range(offset, length)
        mb = export.block_minimum
        if self._closing is not None or not length or offset % mb or length % mb:
            return False
        size = export.request_size
        piece = _Piece(self._loop.create_future(), -(-length // size))
        with self._cond:
            live, queues, turn = self._live, self._queues, self._turn
            if not live:
                self._falling_back("no stream left")
                return False
            for off in range(offset, offset + length, size):
                at = off - offset
                part = data[at : at + size]
                if command == _READ:
                    request = Request(command, off, len(part), flags, dest=part)
                else:
                    request = Request(command, off, len(part), flags, payload=part)
                queues[live[turn % len(live)]].append(_Job(request, piece))
                turn += 1
            self._turn = turn
            self._cond.notify_all()
        try:
            ok = await asyncio.shield(piece.done)
        except asyncio.CancelledError:
            # The transfer is given up: the threads stop (within CLOSE_TIMEOUT, see
            # _close), and this returns only once none can touch ``data`` any more.
            if self._closing is None:
                self._closing = self._loop.create_task(self._close())
            await _uncancellable(piece.done)
            raise
        if not ok:
            self._falling_back(f"a {describe(command, offset, length)} failed on a thread")
            await self.close()
        return ok

    def _falling_back(self, why: str) -> None:
        """The transfer goes on the event loop from now on (counted once)."""
        if self._fell_back:
            return
        self._fell_back = True
        self._group.bulk_fallbacks += 1
        where = self._group.endpoint.display
        log.debug("bulk transfer on %s: back to the event loop (%s)", where, why)

    async def close(self) -> None:
        """Stop the threads once the replies to what they sent are in, and give every
        connection back. Requests queued and not sent yet are done the usual way. Raises
        NbdError when a TLS connection of the engine's own could not flush its writes."""
        if self._closing is None:
            self._closing = self._loop.create_task(self._close())
        try:
            await asyncio.shield(self._closing)
        except asyncio.CancelledError:
            await _uncancellable(self._closing)
            raise
        if self._unflushed is not None:
            error, self._unflushed = self._unflushed, None
            raise error

    def _check_ages(self) -> None:
        """The watchdog: a thread whose oldest request has waited ``timeout`` has its
        stream shut down, so that its blocked call returns and the thread fails with a
        RequestTimeoutError. A per-call socket timeout alone would let a server that
        sends a byte now and then keep a request alive for ever."""
        timeout = self._export.timeout
        if timeout is None:  # (lifted meanwhile)
            self._watch = None
            return
        now = time.monotonic()
        for index, since in enumerate(self._oldest):
            if self._ended[index].done() or self._expired[index]:
                continue
            if since is not None and now - since >= timeout:
                self._expired[index] = True
                with contextlib.suppress(OSError):  # given back (closed) meanwhile
                    _shutdown(self._socks[index])
        if all(f.done() for f in self._ended):
            self._watch = None
        else:
            self._watch = self._loop.call_later(_watch_interval(timeout), self._check_ages)

    async def _close(self) -> None:
        with self._cond:
            self._stopping = True
            queued = [job for queue in self._queues for job in queue]
            for queue in self._queues:
                queue.clear()
            self._cond.notify_all()
        for job in queued:
            self._finished(job.piece, False)
        if not self._ended:
            return
        _, late = await asyncio.wait(self._ended, timeout=CLOSE_TIMEOUT)
        if late:
            # A server that does not answer what was sent: end the streams (a thread
            # blocked in recv or send returns), as Connection.close does.
            for sock in self._socks:
                with contextlib.suppress(OSError):  # given back (closed) meanwhile
                    _shutdown(sock)
            await asyncio.gather(*self._ended)
        for thread in self._threads:
            thread.join()  # returning: its last act was to report it ended
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    # ---- on the threads ---------------------------------------------------------------

    def _run(
        self,
        conn: Connection | SideConnection,
        sock: socket.socket,
        index: int,
        ended: asyncio.Future[None],
    ) -> None:
        error: NbdError | None = None
        queue = self._queues[index]
        acked: list[int] = [0]  # writes the server acknowledged
        try:
            self._drive(conn, sock, index, acked)
            if not isinstance(conn, Connection):
                try:
                    conn.finish()  # FLUSH what it wrote, and NBD_CMD_DISC
                except (OSError, EOFError, NbdError) as exc:
                    # Written and acknowledged, but maybe not stable: close() says so.
                    self._unflushed = NbdError(
                        f"flushing the writes on {conn.endpoint.display} failed: "
                        f"{exc or type(exc).__name__}"
                    )
        except ProtocolError as exc:
            error = located(exc, conn.endpoint)
        except NbdError as exc:  # a timeout; the file of a FileRange shrank
            error = exc
        except (OSError, EOFError) as exc:
            error = stream_lost(conn.endpoint, exc)
        except BaseException as exc:  # pragma: no cover - a bug: do not hang the loop
            error = ConnectionLostError(f"transfer thread failed: {exc!r}")
        if error is not None:
            with self._cond:
                self._live.remove(index)
                queued = list(queue)  # dealt to this thread: nobody will send them
                queue.clear()
            for job in queued:
                self._finished(job.piece, False)
        self._oldest[index] = None  # nothing for the watchdog to look at any more
        self._call(self._ended_on_loop, conn, sock, index, error, acked[0], ended)

    def _ended_on_loop(
        self,
        conn: Connection | SideConnection,
        sock: socket.socket,
        index: int,
        error: NbdError | None,
        acked: int,
        ended: asyncio.Future[None],
    ) -> None:
        group = self._group
        if error is None and self._expired[index]:
            # The watchdog shut the stream down as the thread ended anyway.
            error = ConnectionLostError(
                f"connection to {conn.endpoint.display} ended by the request timeout"
            )
        if acked and isinstance(conn, Connection):  # (a side connection flushed its own)
            group.recovery.succeeded(conn, _WRITE, acked)
        if error is not None:
            log.debug("bulk transfer thread on %s failed: %s", conn.endpoint.display, error)
        conn.give_back(sock, error)
        if isinstance(error, RequestTimeoutError) and isinstance(conn, Connection):
            # as when the watchdog finds a request too old: a new connection is opened
            group.abort_connection(conn, str(error))
        ended.set_result(None)

    def _drive(
        self,
        conn: Connection | SideConnection,
        sock: socket.socket,
        index: int,
        acked: list[int],
    ) -> None:
        """Send requests from the queue of thread ``index`` (up to the connection's
        window) and receive their replies, until stopped with nothing in flight. Raises
        on a failure of the stream, after failing the pieces it had requests in flight
        for."""
        machine = conn.machine
        window = conn.window
        cond = self._cond
        queue = self._queues[index]
        watched = self._export.timeout is not None
        oldest = self._oldest
        sent: dict[int, _Job] = {}  # by cookie, the requests in flight (oldest first)
        reads = 0  # of which READs
        peek = memoryview(bytearray(HEADER_PEEK))
        finished = self._finished
        if isinstance(conn, Connection):
            into_file, receive, send_file = IntoFile(), receive_exactly, send_file_blocking
        else:  # TLS: no MSG_WAITALL, splice or sendfile
            from nbdtui.client.bulk_tls import INTO_FILE, receive_exactly_tls
            from nbdtui.client.bulk_tls import send_file as send_file_tls

            into_file = IntoFile(receive_exactly_tls, splice=False, buffer_size=INTO_FILE)
            receive, send_file = receive_exactly_tls, send_file_tls
        receive_into_file = into_file.receive

        def done(ev: RequestDone) -> None:
            nonlocal reads
            job = sent.pop(ev.cookie)
            command = job.request.command
            if command == _READ:
                reads -= 1
            if ev.error:
                conn.errors += 1
            elif command == _WRITE:
                acked[0] += 1
                conn.bytes_written += job.request.length
            finished(job.piece, not ev.error)

        try:
            while True:
                out: list[tuple[bytes, Payload | None]] = []
                if len(sent) < window:  # (a full window needs no lock)
                    with cond:
                        while len(sent) < window:
                            if queue:
                                job = queue[0]
                                request = job.request
                                command = request.command
                                # A WRITE payload is never sent while READ replies may fill
                                # the socket (a server that stops reading until its replies
                                # go out would never take the rest of the payload).
                                if command == _WRITE and reads:
                                    break
                                queue.popleft()
                                if watched:
                                    job.sent_at = time.monotonic()
                                cookie, header = machine.request(
                                    command, request.offset, request.length, request.flags
                                )
                                sent[cookie] = job
                                if command == _READ:
                                    reads += 1
                                    out.append((header, None))
                                else:
                                    out.append((header, request.payload))
                            elif sent:
                                break
                            elif self._stopping:
                                into_file.close()
                                return
                            else:
                                cond.wait()
                if out:
                    if watched and oldest[index] is None:
                        oldest[index] = next(iter(sent.values())).sent_at
                    _send(sock, out, send_file)
                    conn.requests += len(out)
                target = machine.read_target()
                if target is None:
                    n = sock.recv_into(peek)
                    if not n:
                        raise EOFError
                    events = machine.receive_data(peek[:n], copy=False)
                else:
                    job = sent[target.cookie]
                    at = target.offset - job.offset
                    dest = job.dest
                    if isinstance(dest, FileRange):
                        receive_into_file(sock, dest, at, target.length)
                    else:
                        assert dest is not None  # (every READ on a thread has one)
                        receive(sock, dest[at : at + target.length])
                    events = machine.payload_received(target.length)
                conn.bytes_read += deliver(events, sent, done)
                if watched and events:
                    first = next(iter(sent.values()), None)
                    oldest[index] = None if first is None else first.sent_at
        except BaseException as exc:
            into_file.close()
            first = next(iter(sent.values()), None)
            for job in sent.values():
                finished(job.piece, False)
            expired = self._expired[index]  # the watchdog shut the stream down
            if expired or isinstance(exc, (TimeoutError, BlockingIOError)):  # SO_*TIMEO
                what = "a request"
                if first is not None:
                    r = first.request
                    what = describe(r.command, r.offset, r.length)
                raise RequestTimeoutError(
                    f"{what} timed out after {self._export.timeout:g} s "
                    f"(server {conn.endpoint.display})"
                ) from None
            raise

    def _finished(self, piece: _Piece, ok: bool) -> None:
        """One request of ``piece`` is over (any thread)."""
        with self._cond:
            piece.left -= 1
            piece.failed |= not ok
            last = piece.left == 0
        if last:
            self._call(_settle, piece)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(callback, *args)


def _watch_interval(timeout: float) -> float:
    """How often the watchdog looks: a quarter of the timeout, between 50 ms and 1 s."""
    return min(max(timeout / 4, 0.05), 1.0)


def _shutdown(sock: socket.socket) -> None:
    """End the stream under ``sock`` (its blocked calls return; for a
    :class:`~nbdtui.client.bulk_tls.TlsStream`, the TCP stream under it)."""
    sock.shutdown(socket.SHUT_RDWR)


async def _open_sides(group: ExportGroup) -> list[tuple[SideConnection, socket.socket]]:
    """TLS connections of the engine's own, as many as ``group`` may open
    (asyncio's TLS cannot be lent; see :mod:`nbdtui.client.bulk_tls`), opened on
    threads. None when they cannot be opened (the transfer then goes on the event loop),
    except for a TLS failure, which is raised: certificates are checked here as anywhere."""
    from nbdtui.client import bulk_tls
    from nbdtui.errors import TLSError

    endpoint, options = group.endpoint, group.options
    count = group.max_connections  # (above 1 only when the server says multi-conn)
    healthy = bool(group.connections) and all(c.usable for c in group.connections)
    if count < 2 or not healthy or not bulk_tls.usable(endpoint) or group in _NO_SIDES:
        # One connection: the server may take no other (qemu-nbd's default --shared=1
        # accepts the TCP connection and says nothing), and one thread gains nothing
        # over the event loop.
        return []
    if options.opener is not None or options.start_tls is not None:
        return []  # connected or upgraded some other way: only the group knows how
    timeout = group.connect_timeout
    timeout = SIDE_TIMEOUT if timeout is None else min(timeout, SIDE_TIMEOUT)
    opening = asyncio.gather(
        *(
            asyncio.to_thread(
                bulk_tls.open_side, endpoint, connect_timeout=timeout, window=group.window
            )
            for _ in range(count)
        ),
        return_exceptions=True,
    )
    try:
        results = await asyncio.shield(opening)
    except asyncio.CancelledError:  # the threads go on: close what they open
        opening.add_done_callback(_close_sides)
        raise
    sides = [r for r in results if isinstance(r, bulk_tls.SideConnection)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        for side in sides:
            side.give_back(side.sock)
        for failure in failures:
            if isinstance(failure, TLSError):
                raise failure
        _NO_SIDES.add(group)  # (a server that takes no more connections: not again)
        log.debug(
            "bulk transfer on %s: no TLS connections of its own (%s)", endpoint.display, failures[0]
        )
        return []
    log.debug("bulk transfer on %s: %d TLS connections of its own", endpoint.display, len(sides))
    # A TlsStream has the methods of a socket that the threads use.
    return [(side, typing.cast(socket.socket, side.sock)) for side in sides]


def _close_sides(opening: asyncio.Future[list[SideConnection | BaseException]]) -> None:
    """Close the side connections opened for a transfer given up meanwhile."""
    from nbdtui.client.bulk_tls import SideConnection

    if not opening.cancelled():
        for side in opening.result():
            if isinstance(side, SideConnection):
                side.give_back(side.sock)


def _settle(piece: _Piece) -> None:
    if not piece.done.done():
        piece.done.set_result(not piece.failed)


async def _uncancellable(future: asyncio.Future[_T]) -> None:
    """Wait for ``future`` to be done, whatever cancellations come meanwhile."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(future)


def _send(
    sock: socket.socket,
    out: list[tuple[bytes, Payload | None]],
    send_file: Callable[[socket.socket, FileRange], None] = send_file_blocking,
) -> None:
    """Send request headers, each followed by its WRITE payload if any; headers without
    payload go out together."""
    headers: list[bytes] = []
    for header, payload in out:
        headers.append(header)
        if payload is None:
            continue
        sock.sendall(b"".join(headers))
        headers.clear()
        if isinstance(payload, FileRange):
            send_file(sock, payload)
        else:
            sock.sendall(payload)
    if headers:
        sock.sendall(b"".join(headers))


class OpenBulk:
    """What :meth:`Export.bulk() <nbdtui.client.export.Export.bulk>` returns: an async
    context manager yielding the started :class:`BulkEngine` (closed on exit), also
    awaitable (``engine = await export.bulk()``; then ``await engine.close()``)."""

    def __init__(self, export: UsualPath, group: ExportGroup) -> None:
        self._export = export
        self._group = group
        self._engine: BulkEngine | None = None

    def __await__(self) -> Generator[object, None, BulkEngine]:
        return BulkEngine.start(self._export, self._group).__await__()

    async def __aenter__(self) -> BulkEngine:
        self._engine = await BulkEngine.start(self._export, self._group)
        return self._engine

    async def __aexit__(self, *exc: object) -> None:
        if self._engine is not None:
            await self._engine.close()
