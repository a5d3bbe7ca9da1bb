"""The byte stream under an NBD connection: an asyncio buffered protocol and its receiver.

Everything above this module (handshake driver, :class:`~nbdtui.client.connection.Connection`)
sees a stream as an ``asyncio.Transport`` (``write``, ``close``, ``abort``,
``is_closing``, ``get_extra_info``) plus a :class:`StreamProtocol`, whatever carries the
bytes (TCP, a Unix socket, TLS over either, an SSH channel). Receiving is delegated to a
*receiver* (see :class:`Receiver`) that hands out the buffers to receive into, so the
connection can receive READ payload straight into the caller's buffer. A stream that
delivers ``bytes`` (an asyncssh channel) calls ``data_received``; :class:`StreamProtocol`
copies them into its receiver's buffers.

The types every opener and upgrader shares are here too: :class:`Opener` (``await
opener(factory)`` opens a stream, like ``loop.create_connection``), ``ProtocolFactory``
and ``TlsUpgrader`` (``await upgrade(endpoint, transport, protocol)``, like
``loop.start_tls``). Which transport opens a stream is decided in
:mod:`nbdtui.client.transport.openers`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias, TypeVar, cast

from nbdtui.uri import Endpoint

__all__ = [
    "NullReceiver",
    "Opener",
    "ProtocolFactory",
    "Receiver",
    "StreamProtocol",
    "TlsUpgrader",
]


class Receiver(Protocol):
    """What a :class:`StreamProtocol` delegates its incoming bytes and events to."""

    def get_buffer(self, sizehint: int) -> memoryview | bytearray: ...

    def buffer_updated(self, nbytes: int) -> None: ...

    def eof_received(self) -> None: ...

    def connection_lost(self, exc: BaseException | None) -> None: ...


P = TypeVar("P", bound=asyncio.BaseProtocol)

ProtocolFactory: TypeAlias = Callable[[], P]
"""A zero-argument callable making the protocol of a new stream (``ProtocolFactory[P]``)."""


class Opener(Protocol):
    """Opens a stream: ``await opener(factory)`` connects, calls ``factory()`` once for the
    protocol, and returns ``(transport, protocol)`` with that very protocol, exactly like
    ``functools.partial(loop.create_connection, host=..., port=...)``."""

    def __call__(
        self, factory: ProtocolFactory[P], /
    ) -> Awaitable[tuple[asyncio.Transport, P]]: ...


TlsUpgrader: TypeAlias = Callable[
    [Endpoint, asyncio.Transport, "StreamProtocol"], Awaitable[asyncio.Transport]
]
"""``await upgrade(endpoint, transport, protocol)`` wraps an open plaintext stream in TLS
(like ``loop.start_tls``) and returns the TLS transport, delivering to ``protocol``."""


class NullReceiver:
    """Drops whatever arrives (before a real receiver is installed, after a failure)."""

    def __init__(self) -> None:
        self._buf = bytearray(4096)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buf

    def buffer_updated(self, nbytes: int) -> None:
        pass

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


class StreamProtocol(asyncio.BufferedProtocol):
    """An ``asyncio.BufferedProtocol`` that forwards to a swappable :class:`Receiver`
    and implements write flow control (:meth:`drain`)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.receiver: Receiver = NullReceiver()
        self.lost = False
        self.lost_exc: BaseException | None = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # ---- asyncio callbacks --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's signature says BaseTransport; a stream's transport is a full Transport
        # (a socket's, or an SSH channel's: ChannelTransport).
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview | bytearray:
        return self.receiver.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.receiver.buffer_updated(nbytes)

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        """For transports that deliver ``bytes`` (not ``BufferedProtocol``-aware)."""
        view = memoryview(data)
        while view:
            buf = self.receiver.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            self.receiver.buffer_updated(n)
            view = view[n:]

    def eof_received(self) -> bool:
        self.receiver.eof_received()
        return False  # let the transport close itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.lost_exc = exc
        self._wake_drainers(exc or ConnectionResetError("connection lost"))
        if not self._closed.done():
            self._closed.set_result(None)
        self.receiver.connection_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drainers(None)

    # ---- for the drivers ----------------------------------------------------------

    @property
    def writing_paused(self) -> bool:
        return self._paused

    async def drain(self) -> None:
        """Return once the transport's write buffer is below its high-water mark."""
        if self.lost:
            raise ConnectionResetError("connection lost")
        if not self._paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(ConnectionResetError(str(exc)))

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
