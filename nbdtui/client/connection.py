"""One NBD connection: handshake, then requests in flight matched to waiters by cookie.

A :class:`Connection` keeps up to ``window`` requests in flight (default 16). Each
request holds a window slot and its cookie from the moment it is sent until the server's
final reply to it has been parsed, *even if the caller stopped waiting* (cancellation):
READ payload for an abandoned request is then received into a scratch buffer, so the
caller's buffer is never touched after it gave up and the stream never desynchronises.

Failure modes:

* the server fails one request: that request raises
  :class:`~nbdtui.errors.RequestError`, the connection stays usable;
* the server breaks the protocol (bad magic, unknown cookie, impossible chunk): the
  connection ends with :class:`~nbdtui.errors.ProtocolError`;
* the connection drops while requests are in flight:
  :class:`~nbdtui.errors.ConnectionLostError`.

In both fatal cases every waiter (and every task waiting for a window slot) fails with
that error, and later requests fail immediately with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from nbdtui.client.files import own_descriptor, send_file
from nbdtui.client.messages import located, requests_word
from nbdtui.client.negotiate import DEFAULT_CONNECT_TIMEOUT, handshake
from nbdtui.client.replies import deliver, request_error
from nbdtui.client.request import ZERO_COPY_MIN, FileRange, PendingRequest, Request, consume
from nbdtui.client.transport.stream import NullReceiver, Opener, StreamProtocol, TlsUpgrader
from nbdtui.client.window import RequestWindow
from nbdtui.errors import ConnectionLostError, Errno, NbdError, ProtocolError
from nbdtui.proto.client_events import BlockStatus, Negotiated, RequestDone, TransmissionEvent
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import BASE_ALLOCATION, Command
from nbdtui.proto.types import ExportInfo
from nbdtui.uri import Endpoint

log = logging.getLogger("nbdtui.client.connection")

DEFAULT_WINDOW = 16
# Receiving: replies and payload pieces smaller than ZERO_COPY_MIN are received into a
# scratch buffer large enough for many replies at once (one recv, one buffer_updated for
# a whole burst of small replies) and copied to their destination; a payload of at
# least ZERO_COPY_MIN is received straight into the caller's buffer. While only such
# large reads are in flight, a header is received alone (HEADER_PEEK bytes: a structured
# chunk header and its data offset) so that the payload behind it is not copied.
SCRATCH_SIZE = 256 * 1024
HEADER_PEEK = 28
DISCARD_SIZE = 1 << 20  # payload of abandoned reads lands here
SMALL_WRITE = 64 * 1024  # below this, header and payload go out as one joined write
CLOSE_TIMEOUT = 5.0

_READ, _BLOCK_STATUS = int(Command.READ), int(Command.BLOCK_STATUS)


@dataclass(frozen=True)
class ConnectionStats:
    """A snapshot of one connection, for the Pool screen."""

    state: str  # "connecting", "ready", "lent" (to the bulk engine), "closing", "closed"
    endpoint: str
    export: str
    in_flight: int
    window: int
    requests: int
    errors: int
    bytes_read: int
    bytes_written: int
    error: str | None = None


class Connection:
    """One NBD connection in the transmission phase. Create with :meth:`connect`."""

    def __init__(
        self,
        endpoint: Endpoint,
        transport: asyncio.Transport,
        protocol: StreamProtocol,
        negotiated: Negotiated,
        *,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.endpoint = endpoint
        self.negotiated = negotiated
        self.transport = transport
        self.protocol = protocol
        self.machine = ClientTransmission(structured=negotiated.structured)
        self._window = RequestWindow(window)
        self._pending: dict[int, PendingRequest] = {}
        self._idle: asyncio.Event = asyncio.Event()
        self._idle.set()
        self._loop = asyncio.get_running_loop()
        self._scratch = memoryview(bytearray(SCRATCH_SIZE))
        self._peek = self._scratch[:HEADER_PEEK]
        self._small = 0  # requests in flight whose reply is small (PendingRequest.small)
        self._discard: memoryview | None = None
        # a READ payload being received in place: the rest of its buffer, its request,
        # and the bytes received so far
        self._stream: memoryview | None = None
        self._stream_req: PendingRequest | None = None
        self._stream_got = 0
        self._error: NbdError | None = None
        self._closing = False
        self._closed = False
        self._disc_sent = False
        self._close_task: asyncio.Task[None] | None = None
        self._outbox: list[bytes | bytearray] = []
        self._file_send: asyncio.Task[None] | None = None  # a FileRange payload going out
        self._flush_scheduled = False
        self._lent = 0  # window slots held while the socket is lent to a thread
        self.requests = 0
        self.peak_in_flight = 0
        self.errors = 0
        self.bytes_read = 0
        self.bytes_written = 0
        protocol.receiver = self

    # ---- construction -------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        endpoint: Endpoint,
        *,
        window: int = DEFAULT_WINDOW,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        meta_contexts: tuple[str, ...] = (BASE_ALLOCATION,),
        list_contexts: bool = False,
        opener: Opener | None = None,
        start_tls: TlsUpgrader | None = None,
    ) -> Connection:
        """Connect, run the handshake for ``endpoint.export`` and enter transmission."""
        hs = ClientHandshake(
            export_name=endpoint.export,
            meta_contexts=meta_contexts,
            list_contexts=list_contexts,
            tls=endpoint.tls,
        )
        done = await handshake(
            endpoint, hs, connect_timeout=connect_timeout, opener=opener, start_tls=start_tls
        )
        assert isinstance(done.result, Negotiated)
        conn = cls(endpoint, done.transport, done.protocol, done.result, window=window)
        if log.isEnabledFor(logging.DEBUG):
            info = done.result.info
            log.debug(
                "connected to %s: export %r, %d bytes, flags %#x, structured replies %s",
                endpoint.display,
                info.name or endpoint.export,
                info.size,
                info.flags,
                "on" if done.result.structured else "off",
            )
        if done.trailing:
            conn._feed(done.trailing)
        if done.protocol.lost:  # closed before we took over the receiver
            conn.connection_lost(done.protocol.lost_exc)
        return conn

    # ---- properties ---------------------------------------------------------------

    @property
    def info(self) -> ExportInfo:
        return self.negotiated.info

    @property
    def state(self) -> str:
        if self._closed or self._error is not None:
            return "closed"
        if self._closing:
            return "closing"
        return "lent" if self._lent else "ready"

    @property
    def usable(self) -> bool:
        return self._error is None and not self._closing and not self._closed

    @property
    def lent(self) -> bool:
        """The stream is lent to a thread of the bulk engine (see :meth:`lend`)."""
        return bool(self._lent)

    @property
    def error(self) -> NbdError | None:
        return self._error

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def sending(self) -> bool:
        """Bytes are waiting to go out: the server is not taking them as fast as they
        come (writing paused), or a FileRange payload is going out."""
        return self._file_send is not None or self.protocol.writing_paused

    @property
    def load(self) -> int:
        """Window slots in use plus tasks waiting for one (for least-loaded choice).

        A connection busy sending (writing paused: the server is not taking the bytes
        as fast as they come; or a FileRange payload going out) counts as full, so that
        large writes spread over other connections and more are opened while it stays so.
        """
        window = self._window
        load = window.used + window.waiting
        if self.sending and load < window.size:
            return window.size
        return load

    @property
    def window(self) -> int:
        """Requests in flight at most; may be changed at any time."""
        return self._window.size

    @window.setter
    def window(self, value: int) -> None:
        self._window.size = value

    def pending_requests(self) -> Iterator[PendingRequest]:
        """The requests in flight, oldest first (a live view: do not send or receive
        while iterating)."""
        return iter(self._pending.values())

    def context_id(self, name: str = BASE_ALLOCATION) -> int | None:
        return self.negotiated.context_id(name)

    def stats(self) -> ConnectionStats:
        return ConnectionStats(
            state=self.state,
            endpoint=self.endpoint.display,
            export=self.endpoint.export,
            in_flight=len(self._pending),
            window=self._window.size,
            requests=self.requests,
            errors=self.errors,
            bytes_read=self.bytes_read,
            bytes_written=self.bytes_written,
            error=str(self._error) if self._error else None,
        )

    # ---- requests -----------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing or self._closed:
            raise ConnectionLostError(f"connection to {self.endpoint.display} is closed")

    def submit_nowait(self, request: Request) -> PendingRequest | None:
        """Send the request at once if nothing needs waiting for (a free window slot, no
        large payload, the socket taking data): the hot path of small requests, without
        a coroutine. ``None`` when :meth:`submit` must be used (nothing was sent)."""
        payload = request.payload
        if payload is not None and (isinstance(payload, FileRange) or len(payload) > SMALL_WRITE):
            return None
        if (
            self._error is not None
            or self._closing
            or self._closed
            or self.protocol.writing_paused
            or not self._window.try_acquire()
        ):
            return None
        try:
            return self._send_small(request, payload)
        except BaseException:
            self._window.release()
            raise

    async def submit(self, request: Request) -> PendingRequest:
        """Wait for a window slot, send the request, and return it without waiting for
        the reply (await ``.future``). ``request.payload`` is WRITE data (a
        :class:`FileRange` is sent from its file); ``request.dest`` (``length`` bytes,
        format ``B``; not a FileRange here) receives READ data. If this coroutine is
        cancelled after the request was sent, the request is abandoned (its reply is
        still consumed)."""
        self._check_usable()
        payload = request.payload
        if isinstance(payload, FileRange) and payload.length <= SMALL_WRITE:
            payload = payload.read()  # sent like any small payload
        window = self._window
        if not window.try_acquire():
            await window.acquire()
            try:
                self._check_usable()
            except BaseException:
                window.release()
                raise
        if payload is None or (not isinstance(payload, FileRange) and len(payload) <= SMALL_WRITE):
            try:
                pending = self._send_small(request, payload)
            except BaseException:
                window.release()
                raise
        else:
            # Nothing may come between the header and the payload of a FileRange
            # going out: wait before anything of this request is registered or sent.
            while self._file_send is not None:
                try:
                    await asyncio.wait([self._file_send])
                    self._check_usable()
                except BaseException:
                    window.release()
                    raise
            try:
                cookie, header = self.machine.request(
                    request.command, request.offset, request.length, request.flags
                )
            except BaseException:
                window.release()
                raise
            pending = self._register(cookie, request)
            # Large payloads go out as they are, never joined into a copy.
            self._flush()
            self.transport.write(header)
            self.bytes_written += len(payload)
            if isinstance(payload, FileRange):
                # Not cancelled with the caller: the stream needs the whole payload, and
                # the caller may close its file as soon as it is cancelled, so the send
                # reads through a descriptor of its own.
                own = own_descriptor(payload)
                sending = self._file_send = self._loop.create_task(self._send_file(own))
                try:
                    await asyncio.wait([sending])
                except BaseException:
                    pending.abandon()
                    raise
                return pending
            self.transport.write(payload)
        if self.protocol.writing_paused:
            try:
                await self.protocol.drain()
            except ConnectionResetError:
                pass  # the failure reaches the future through connection_lost
            except BaseException:
                pending.abandon()
                raise
        return pending

    def _send_small(
        self, request: Request, payload: bytes | bytearray | memoryview | None
    ) -> PendingRequest:
        """Register a request with no payload or a small one and queue it (the caller
        holds its window slot)."""
        cookie, header = self.machine.request(
            request.command, request.offset, request.length, request.flags
        )
        pending = self._register(cookie, request)
        if payload is None:
            self._queue(header)
        else:
            self._queue(header + payload)
            self.bytes_written += len(payload)
        return pending

    def _register(self, cookie: int, request: Request) -> PendingRequest:
        loop = self._loop
        dest = request.dest
        if isinstance(dest, FileRange):
            raise TypeError("a READ into a FileRange needs the bulk engine (Export.bulk)")
        pending = PendingRequest(
            cookie,
            request.command,
            request.offset,
            request.length,
            dest,
            loop.create_future(),
            loop.time(),
        )
        pending_map = self._pending
        if not pending_map:
            self._idle.clear()
        pending_map[cookie] = pending
        if pending.small:
            self._small += 1
        self.requests += 1
        if len(pending_map) > self.peak_in_flight:
            self.peak_in_flight = len(pending_map)
        return pending

    def _queue(self, data: bytes | bytearray) -> None:
        """Cork small messages: everything queued during one event-loop iteration goes
        out in a single send (one syscall for a burst of requests)."""
        self._outbox.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    async def _send_file(self, payload: FileRange) -> None:
        """Send the payload of the WRITE whose header was just written. Meanwhile
        nothing else is written: other large payloads wait, small requests are queued
        and go out after it.

        asyncio's sendfile stops reading the socket while it sends. Replies carrying
        data (READ, BLOCK_STATUS) could then fill the server's socket, and a server that
        stops reading requests while its replies are stuck would never take the rest
        of the payload: with such requests in flight the bytes are read and written.
        """
        try:
            # sendfile only with no READ or BLOCK_STATUS in flight (see above)
            quiet = not any(p.command in (_READ, _BLOCK_STATUS) for p in self._pending.values())
            await send_file(self._loop, self.transport, payload, sendfile=quiet)
        except NbdError as exc:
            self._fail(exc)
        except OSError as exc:
            self._fail(
                ConnectionLostError(
                    f"connection to {self.endpoint.display} lost while sending a write ({exc})"
                )
            )
        finally:
            payload.file.close()  # (its own descriptor, see submit)
            self._file_send = None
            if self._error is None:
                self._flush()  # what was queued meanwhile

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._outbox or self._file_send is not None:
            return
        data = self._outbox[0] if len(self._outbox) == 1 else b"".join(self._outbox)
        self._outbox.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    async def request(self, request: Request) -> list[BlockStatus] | None:
        """Send one request and wait for its reply (see :meth:`submit`)."""
        pending = await self.submit(request)
        try:
            return await pending.future
        except asyncio.CancelledError:
            pending.abandon()
            raise

    # ---- lending the socket to a thread (bulk transfers, see nbdtui.client.bulk) -----

    async def lend(self) -> socket.socket | None:
        """Hand the stream to a thread: take every window slot (so nothing is in flight
        and nothing else is sent), stop receiving, and return a blocking duplicate of
        the socket. The thread then drives :attr:`machine` alone until
        :meth:`give_back`. ``None``, with nothing taken, when the stream is not a plain
        TCP or Unix socket (TLS and SSH streams are not lent)."""
        transport = self.transport
        raw: socket.socket | None = transport.get_extra_info("socket")
        if (
            raw is None
            or transport.get_extra_info("ssl_object") is not None
            or self.endpoint.transport not in ("tcp", "unix")
            or self._lent
        ):
            return None
        window, taken = self._window, 0
        try:
            while taken < window.size and self.usable:
                await window.acquire()
                taken += 1
        except BaseException:
            for _ in range(taken):
                window.release()
            raise
        if not self.usable or self._pending:
            for _ in range(taken):
                window.release()
            return None
        self._flush()
        self._lent = taken
        self._idle.clear()  # close() waits for the thread to give the stream back
        transport.pause_reading()
        sock = raw.dup()
        sock.setblocking(True)  # the open file is shared: the transport's socket too
        return sock

    def give_back(self, sock: socket.socket, error: NbdError | None = None) -> None:
        """End a :meth:`lend`: the thread is done with ``sock`` (every reply to what it
        sent was received), or the stream failed with ``error``."""
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
                sock.setsockopt(socket.SOL_SOCKET, option, bytes(16))
        sock.close()
        taken, self._lent = self._lent, 0
        if error is None and self._error is None and not self.transport.is_closing():
            self.transport.resume_reading()
        for _ in range(taken):
            self._window.release()
        if not self._pending:
            self._idle.set()
        if error is not None:
            self._fail(error)

    # ---- receiving (the StreamProtocol's receiver) ----------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        """A large READ payload is received in place, everything else into the scratch
        buffer (see ZERO_COPY_MIN)."""
        stream = self._stream
        if stream is not None:
            req = self._stream_req
            if req is not None and req.dest is not None:
                return stream  # the rest of the payload being received in place
            self._end_stream()  # abandoned meanwhile: its buffer is not touched again
            if self._error is not None:
                return self._scratch
        if self._error is None:
            target = self.machine.read_target()
            if target is None:
                if not self._small and self._pending:
                    return self._peek  # only large reads in flight: just the next header
            elif target.length >= ZERO_COPY_MIN:
                pending = self._pending[target.cookie]
                dest = pending.dest
                if dest is not None:
                    start = target.offset - pending.offset
                    stream = dest[start : start + target.length]
                else:
                    if self._discard is None:
                        self._discard = memoryview(bytearray(DISCARD_SIZE))
                    stream = self._discard[: min(target.length, DISCARD_SIZE)]
                self._stream = stream
                self._stream_req = pending
                self._stream_got = 0
                return stream
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        if self._error is not None:
            return
        stream = self._stream
        if stream is not None:
            # Payload received in place: the machine hears of it once the view is full
            # (one call per payload, not one per recv).
            if nbytes < len(stream):
                self._stream = stream[nbytes:]
                self._stream_got += nbytes
                return
            self._stream_got += nbytes
            self._end_stream()
            return
        try:
            # Data events are views of the scratch buffer, copied out by _dispatch.
            events = self.machine.receive_data(self._scratch[:nbytes], copy=False)
        except ProtocolError as exc:
            self._dispatch(getattr(exc, "events", []))
            self._fail(located(exc, self.endpoint))
            return
        self._dispatched(events)

    def _end_stream(self) -> None:
        """Tell the machine how much of the payload being received in place arrived."""
        got, self._stream, self._stream_req = self._stream_got, None, None
        if not got:
            return
        try:
            events = self.machine.payload_received(got)
        except ProtocolError as exc:  # pragma: no cover - payload bytes cannot be wrong
            self._fail(located(exc, self.endpoint))
            return
        self._dispatched(events)

    def _dispatched(self, events: list[TransmissionEvent]) -> None:
        in_flight = len(self._pending)
        self._dispatch(events)
        if len(self._pending) < in_flight and not self._flush_scheduled:
            # Requests completed: the tasks waiting for them run in the next loop
            # iteration and often send more at once. A flush scheduled now runs right
            # after them in that iteration; scheduled by their first request, it would
            # only run in the iteration after (one more poll per round trip).
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _feed(self, data: bytes) -> None:
        try:
            events = self.machine.receive_data(data)
        except ProtocolError as exc:
            self._dispatch(getattr(exc, "events", []))
            self._fail(located(exc, self.endpoint))
            return
        self._dispatch(events)

    def _dispatch(self, events: list[TransmissionEvent]) -> None:
        self.bytes_read += deliver(events, self._pending, self._complete)

    def _complete(self, done: RequestDone) -> None:
        pending = self._pending.pop(done.cookie)
        pending.dest = None
        if pending.small:
            self._small -= 1
        self._window.release()
        if not self._pending:
            self._idle.set()
        error = done.error
        future = pending.future
        if not error:
            if not future.done():
                future.set_result(pending.statuses)
            return
        self.errors += 1
        if not future.done():
            future.set_exception(request_error(done, pending.command))
        if error == Errno.ESHUTDOWN and not self._closing:
            # The server is shutting down: the spec asks for a soft disconnect.
            self._closing = True
            self._close_task = self._loop.create_task(self.close())

    def eof_received(self) -> None:
        self._lost(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost(exc)

    def _lost(self, exc: BaseException | None) -> None:
        if self._error is not None:
            return
        if self._disc_sent and not self._pending:
            self._closed = True
            self._window.fail(
                ConnectionLostError(f"connection to {self.endpoint.display} is closed")
            )
            return
        reason = f" ({exc})" if exc else ""
        if self._pending:
            message = (
                f"connection to {self.endpoint.display} lost with "
                f"{requests_word(len(self._pending))} in flight{reason}"
            )
        else:
            message = f"server {self.endpoint.display} closed the connection{reason}"
        self._fail(ConnectionLostError(message))

    # ---- failure and close ----------------------------------------------------------

    def abort(self, exc: NbdError) -> None:
        """End the connection now (a request timed out, the user cancelled it): every
        waiter fails with ``exc``, and no cookie of this stream is ever reused."""
        self._fail(exc)

    def _fail(self, exc: NbdError) -> None:
        """End the connection: every waiter fails with ``exc``; later requests too."""
        if self._error is not None:
            return
        log.debug("connection to %s ended: %s", self.endpoint.display, exc)
        self._error = exc
        self._closed = True
        self._stream = self._stream_req = None
        pending, self._pending = list(self._pending.values()), {}
        self._small = 0
        self._idle.set()
        for p in pending:
            p.dest = None
            if not p.future.done():
                p.future.set_exception(exc)
                # Nobody may be waiting any more (abandoned ahead of time).
                p.future.add_done_callback(consume)
        self._window.fail(exc)
        self.protocol.receiver = NullReceiver()
        if self._file_send is not None:
            self._file_send.cancel()  # its sendfile would wait for the closed socket forever
        if not self.transport.is_closing():
            self.transport.abort()

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Let in-flight requests finish (at most ``timeout`` seconds), send
        NBD_CMD_DISC and close the socket. New requests are refused at once."""
        if self._closed and self.transport.is_closing():
            return
        self._closing = True
        self._window.fail(ConnectionLostError(f"connection to {self.endpoint.display} is closed"))
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            self._fail(
                ConnectionLostError(
                    f"connection to {self.endpoint.display} closed with "
                    f"{requests_word(len(self._pending))} still in flight after {timeout:g} s"
                )
            )
        if self._error is None and not self._disc_sent:
            with contextlib.suppress(Exception):
                _, header = self.machine.request(Command.DISC)
                self._disc_sent = True
                self._flush()
                self.transport.write(header)
        self._closed = True
        if not self.transport.is_closing():
            self.transport.close()
        try:
            async with asyncio.timeout(1.0):
                await self.protocol.wait_closed()
        except TimeoutError:
            self.transport.abort()
