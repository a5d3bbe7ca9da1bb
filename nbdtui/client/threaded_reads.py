"""Large reads on threads: each connection of an export is lent to a thread that drives
it with blocking socket calls, for as long as a bulk transfer lasts.

Why threads: one event loop receiving from 4 sockets reached about 0.8x the throughput
of ``nbdcopy`` here (a bare asyncio client did no better), while 4 threads, each
blocked in ``recv_into`` with the GIL released during the kernel's copy, reached
parity. Nothing else changes: each thread drives the connection's own sans-IO machine
(:class:`~nbdtui.proto.transmission.ClientTransmission`), which it owns alone while the
connection is lent (:meth:`Connection.lend`), and payload is received straight into
the caller's buffer.

Only plain TCP and Unix streams are lent (not TLS, not SSH): :func:`threaded_reads`
returns ``None`` when there is none to lend, and the caller reads as usual. Whatever
goes wrong on a thread (a server error, a lost connection, a timeout), the reads that
failed are done again the usual way (:meth:`Export.read_into`), after every connection
was given back: the errors, retries and reconnects are then exactly those of any read.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
import threading

from nbdtui.errors import ConnectionLostError, NbdError, ProtocolError, RequestTimeoutError
from nbdtui.proto.constants import Command
from nbdtui.proto.transmission import Data, Hole, RequestDone

from .connection import Connection, _fill_zero, _located

HEADER_PEEK = 28  # a structured chunk header and its data offset; see connection.py
_READ = int(Command.READ)


class _Piece:
    """One :meth:`ThreadedReads.read_into` call: its requests left to finish, and the
    future settled (on the loop) once none is left."""

    __slots__ = ("done", "failed", "left")

    def __init__(self, done: asyncio.Future[bool], left: int) -> None:
        self.done = done  # result: True if every request succeeded
        self.left = left
        self.failed = False


class ThreadedReads:
    """Reads into caller buffers over lent connections; see the module documentation.

    Use through :func:`threaded_reads`; :meth:`close` gives the connections back.
    """

    def __init__(self, export, lent: list[tuple[Connection, socket.socket]]) -> None:
        self._export = export
        self._loop = asyncio.get_running_loop()
        self._cond = threading.Condition()
        # Requests not sent yet, (offset, destination, piece), one queue per thread: a
        # read's requests are dealt round the threads, so that every connection works on
        # the oldest piece (one shared queue let a thread take a whole piece's requests
        # while the others went on to later pieces: the oldest came 4 times slower).
        self._queues: list[collections.deque[tuple[int, memoryview, _Piece]]] = [
            collections.deque() for _ in lent
        ]
        self._live = list(range(len(lent)))  # the threads whose stream still works
        self._turn = 0
        self._stopping = False
        self._closing: asyncio.Task[None] | None = None
        self._ended: list[asyncio.Future[None]] = []
        self._threads: list[threading.Thread] = []
        timeout = export.timeout
        for index, (conn, sock) in enumerate(lent):
            if timeout is not None:
                # Blocking calls that give up after ``timeout`` (BlockingIOError): a
                # socket timeout would make CPython poll before each call, and
                # MSG_WAITALL would not wait.
                tv = struct.pack("ll", int(timeout), int(timeout % 1 * 1e6))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            ended = self._loop.create_future()
            self._ended.append(ended)
            thread = threading.Thread(
                target=self._run,
                args=(conn, sock, index, ended),
                name=f"nbdtui-read-{conn.endpoint.display}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    async def read_into(self, offset: int, buffer: memoryview) -> None:
        """Fill ``buffer`` with the bytes at ``offset``, like :meth:`Export.read_into`
        (which does it, after :meth:`close`, if the threads could not)."""
        export = self._export
        length = len(buffer)
        mb = export.block_minimum
        if self._closing is not None or not length or offset % mb or length % mb:
            await export.read_into(offset, buffer)
            return
        size = export.request_size
        piece = _Piece(self._loop.create_future(), -(-length // size))
        with self._cond:
            live, queues, turn = self._live, self._queues, self._turn
            if live:
                for off in range(offset, offset + length, size):
                    queues[live[turn % len(live)]].append(
                        (off, buffer[off - offset : off - offset + size], piece)
                    )
                    turn += 1
                self._turn = turn
                self._cond.notify_all()
        if live and await _settled(piece.done):
            return
        await self.close()
        await export.read_into(offset, buffer)

    async def close(self) -> None:
        """Stop the threads once the replies to what they sent are in, and give every
        connection back. Reads queued and not sent yet are done the usual way."""
        if self._closing is None:
            self._closing = self._loop.create_task(self._close())
        await _settled(self._closing)

    async def _close(self) -> None:
        with self._cond:
            self._stopping = True
            queued = [job for queue in self._queues for job in queue]
            for queue in self._queues:
                queue.clear()
            self._cond.notify_all()
        for _, _, piece in queued:
            self._finished(piece, False)
        await asyncio.gather(*self._ended)
        for thread in self._threads:
            thread.join()  # returning: its last act was to report it ended

    # ---- on the threads ---------------------------------------------------------------

    def _run(
        self,
        conn: Connection,
        sock: socket.socket,
        index: int,
        ended: asyncio.Future[None],
    ) -> None:
        error: NbdError | None = None
        queue = self._queues[index]
        try:
            self._drive(conn, sock, queue)
        except (TimeoutError, BlockingIOError):
            error = RequestTimeoutError(
                f"read timed out after {self._export.timeout:g} s (server {conn.endpoint.display})"
            )
        except ProtocolError as exc:
            error = _located(exc, conn.endpoint)
        except (OSError, EOFError) as exc:
            error = ConnectionLostError(
                f"connection to {conn.endpoint.display} lost during a read ({exc or 'closed'})"
            )
        except BaseException as exc:  # pragma: no cover - a bug: do not hang the loop
            error = ConnectionLostError(f"read thread failed: {exc!r}")
        if error is not None:
            with self._cond:
                self._live.remove(index)
                queued = list(queue)  # dealt to this thread: nobody will send them
                queue.clear()
            for _, _, piece in queued:
                self._finished(piece, False)
        self._call(self._ended_on_loop, conn, sock, error, ended)

    def _ended_on_loop(
        self,
        conn: Connection,
        sock: socket.socket,
        error: NbdError | None,
        ended: asyncio.Future[None],
    ) -> None:
        conn.give_back(sock, error)
        ended.set_result(None)

    def _drive(
        self,
        conn: Connection,
        sock: socket.socket,
        queue: collections.deque[tuple[int, memoryview, _Piece]],
    ) -> None:
        """Send requests from ``queue`` (up to the connection's window) and receive
        their replies, until stopped with nothing in flight. Raises on a failure of
        the stream, after failing the pieces it had requests in flight for."""
        machine = conn.machine
        window = conn.window
        cond = self._cond
        # cookie -> (offset, destination, piece) of the requests in flight
        sent: dict[int, tuple[int, memoryview, _Piece]] = {}
        peek = memoryview(bytearray(HEADER_PEEK))
        try:
            while True:
                headers = []
                with cond:
                    while len(sent) < window:
                        if queue:
                            job = queue.popleft()
                            cookie, header = machine.request(_READ, job[0], len(job[1]))
                            sent[cookie] = job
                            headers.append(header)
                        elif sent:
                            break
                        elif self._stopping:
                            return
                        else:
                            cond.wait()
                if headers:
                    sock.sendall(b"".join(headers))
                    conn.requests += len(headers)
                target = machine.read_target()
                if target is None:
                    n = sock.recv_into(peek)
                    if not n:
                        raise EOFError
                    events = machine.receive_data(peek[:n], copy=False)
                else:
                    start, view, _ = sent[target.cookie]
                    at = target.offset - start
                    _receive_exactly(sock, view[at : at + target.length])
                    events = machine.payload_received(target.length)
                for ev in events:
                    kind = type(ev)
                    if kind is Data:
                        conn.bytes_read += ev.length
                        if ev.data is not None:
                            start, view, _ = sent[ev.cookie]
                            at = ev.offset - start
                            view[at : at + ev.length] = ev.data
                    elif kind is Hole:
                        start, view, _ = sent[ev.cookie]
                        _fill_zero(view, ev.offset - start, ev.length)
                    elif kind is RequestDone:
                        if ev.error:
                            conn.errors += 1
                        self._finished(sent.pop(ev.cookie)[2], not ev.error)
        except BaseException:
            for _, _, piece in sent.values():
                self._finished(piece, False)
            raise

    def _finished(self, piece: _Piece, ok: bool) -> None:
        """One request of ``piece`` is over (any thread)."""
        with self._cond:
            piece.left -= 1
            piece.failed |= not ok
            last = piece.left == 0
        if last:
            self._call(_settle, piece)

    def _call(self, callback, *args) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(callback, *args)


def _settle(piece: _Piece) -> None:
    if not piece.done.done():
        piece.done.set_result(not piece.failed)


async def _settled(future: asyncio.Future):
    """The result of ``future``; when cancelled meanwhile, wait for it all the same (a
    thread may still be writing into the caller's buffer), then raise CancelledError."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
        raise


def _receive_exactly(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view``: with MSG_WAITALL, in one call (one release of the GIL, one wake-up
    of this thread) unless a signal or the timeout cuts it short."""
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:], 0, socket.MSG_WAITALL)
        if not k:
            raise EOFError
        got += k


async def threaded_reads(export) -> ThreadedReads | None:
    """Open every connection of ``export`` and lend those that can be lent to reading
    threads; ``None`` when none can (nothing is then taken from the export)."""
    await export.open_connections()
    conns = [c for c in export._group.connections if c.usable]
    socks = await asyncio.gather(*(c.lend() for c in conns), return_exceptions=True)
    lent = [(c, s) for c, s in zip(conns, socks, strict=True) if isinstance(s, socket.socket)]
    if not lent:
        return None
    return ThreadedReads(export, lent)
