"""Byte streams for NBD connections: the asyncio protocol, openers, and the seams for
TLS and SSH.

Everything above this module (handshake driver, :class:`~nbdtui.client.connection.Connection`)
sees a stream as an ``asyncio.Transport`` (``write``, ``close``, ``abort``,
``is_closing``, ``get_extra_info``) plus a :class:`StreamProtocol`, whatever carries the
bytes. Receiving is delegated to a *receiver* (see :class:`Receiver`) that hands out the
buffers to receive into, so the connection can receive READ payload straight into the
caller's buffer.

How a new transport plugs in
============================

**A new kind of endpoint** (``Endpoint.transport``, e.g. ``"ssh"``): register a factory
with :func:`register_transport`. The factory takes the :class:`~nbdtui.uri.Endpoint` and
returns an *opener*: an ``async`` callable taking a zero-argument protocol factory and
returning ``(transport, protocol)``, exactly like ``functools.partial(loop.create_connection,
host=..., port=...)``. A stream that delivers ``bytes`` (an asyncssh channel) calls the
protocol's ``data_received``, ``eof_received`` and ``connection_lost`` and its
``pause_writing``/``resume_writing`` for flow control; :class:`StreamProtocol` copies the
bytes into its receiver's buffers. ``nbdtui.ssh`` is imported lazily the first time an
``nbd+ssh://`` endpoint is opened and is expected to call
``register_transport("ssh", factory)`` at import time.

**TLS**: register an upgrader with :func:`register_tls`. When the handshake accepts
NBD_OPT_STARTTLS, the driver awaits ``upgrader(endpoint, transport, protocol)``, which
must return the new (TLS) transport, typically
``await loop.start_tls(transport, protocol, context, server_hostname=...)`` (asyncio's
TLS layer works with buffered protocols). The built-in upgrader, :mod:`nbdtui.client.tls`,
is imported (and registers itself) the first time a TLS endpoint is opened with none
registered. An upgrader may have a ``check(endpoint)`` attribute, called before
connecting, that raises for unusable TLS settings. ``Connection``/``api`` functions
also accept ``opener=`` and ``start_tls=`` arguments that override the registries for
one call.

vsock endpoints are refused with NotSupportedError.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

from nbdtui.errors import ConnectError, NbdError, NotSupportedError
from nbdtui.uri import Endpoint

__all__ = [
    "NullReceiver",
    "Opener",
    "Receiver",
    "StreamProtocol",
    "TlsUpgrader",
    "open_stream",
    "opener_for",
    "register_tls",
    "register_transport",
    "tls_upgrader",
]


class Receiver(Protocol):
    """What a :class:`StreamProtocol` delegates its incoming bytes and events to."""

    def get_buffer(self, sizehint: int) -> memoryview | bytearray: ...

    def buffer_updated(self, nbytes: int) -> None: ...

    def eof_received(self) -> None: ...

    def connection_lost(self, exc: BaseException | None) -> None: ...


ProtocolFactory = Callable[[], asyncio.BaseProtocol]
Opener = Callable[[ProtocolFactory], Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]]
TlsUpgrader = Callable[
    [Endpoint, asyncio.Transport, "StreamProtocol"], Awaitable[asyncio.Transport]
]


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
        self.transport = transport  # type: ignore[assignment]

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


# ---- openers ------------------------------------------------------------------------

_TRANSPORTS: dict[str, Callable[[Endpoint], Opener]] = {}
_TLS: list[TlsUpgrader] = []


def register_transport(name: str, factory: Callable[[Endpoint], Opener]) -> None:
    """Make endpoints with ``Endpoint.transport == name`` open through ``factory``."""
    _TRANSPORTS[name] = factory


def register_tls(upgrader: TlsUpgrader | None) -> None:
    """Install (or, with ``None``, remove) the TLS upgrader used after NBD_OPT_STARTTLS."""
    _TLS.clear()
    if upgrader is not None:
        _TLS.append(upgrader)


def tls_upgrader() -> TlsUpgrader | None:
    """The registered upgrader; when none is, the built-in one of ``nbdtui.client.tls``
    (imported lazily: the import registers it)."""
    if not _TLS:
        with contextlib.suppress(ImportError):
            importlib.import_module("nbdtui.client.tls")
    return _TLS[0] if _TLS else None


def _tcp_opener(endpoint: Endpoint) -> Opener:
    async def open_tcp(factory: ProtocolFactory):
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            factory, host=endpoint.host, port=endpoint.tcp_port
        )
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return transport, protocol

    return open_tcp


def _unix_opener(endpoint: Endpoint) -> Opener:
    path = endpoint.socket
    assert path is not None  # a leading NUL names an abstract socket (Linux)

    async def open_unix(factory: ProtocolFactory):
        loop = asyncio.get_running_loop()
        return await loop.create_unix_connection(factory, path=path)

    return open_unix


def opener_for(endpoint: Endpoint) -> Opener:
    """The opener for ``endpoint``'s transport (built in: tcp, unix; ssh via ``nbdtui.ssh``)."""
    kind = endpoint.transport
    if kind == "vsock":
        raise NotSupportedError("vsock endpoints are not supported")
    if kind not in _TRANSPORTS and kind == "ssh":
        with contextlib.suppress(ImportError):
            importlib.import_module("nbdtui.ssh")
    factory = _TRANSPORTS.get(kind)
    if factory is None:
        raise NotSupportedError(f"{kind} endpoints are not supported yet")
    return factory(endpoint)


register_transport("tcp", _tcp_opener)
register_transport("unix", _unix_opener)


def _where(endpoint: Endpoint) -> str:
    return endpoint.display


def connect_error(endpoint: Endpoint, exc: OSError) -> ConnectError:
    """A one-line ConnectError for an OSError raised while connecting."""
    where = _where(endpoint)
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"cannot resolve host '{endpoint.host}': {exc.strerror}")
    text = str(exc)
    if (
        isinstance(exc, ConnectionRefusedError)
        or exc.errno == errno.ECONNREFUSED
        # create_connection tried several addresses (localhost: ::1, 127.0.0.1)
        or (
            text.startswith("Multiple exceptions")
            and text.count("[Errno ") == text.count("[Errno 111]")
        )
    ):
        return ConnectError(f"connection refused by {where}")
    if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
        return ConnectError(f"no such socket: {where}")
    if isinstance(exc, PermissionError):
        return ConnectError(f"permission denied connecting to {where}")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ConnectError(f"cannot connect to {where}: {reason}")


async def open_stream(
    endpoint: Endpoint,
    receiver: Receiver,
    *,
    opener: Opener | None = None,
) -> tuple[asyncio.Transport, StreamProtocol]:
    """Open a byte stream to ``endpoint`` whose incoming data goes to ``receiver``.

    No timeout here: callers bound connect + handshake together.
    """
    if opener is None:
        opener = opener_for(endpoint)

    def factory() -> StreamProtocol:
        proto = StreamProtocol()
        proto.receiver = receiver
        return proto

    try:
        transport, protocol = await opener(factory)
    except NbdError:
        raise
    except OSError as exc:
        raise connect_error(endpoint, exc) from exc
    if not isinstance(protocol, StreamProtocol):  # pragma: no cover - opener misuse
        transport.close()
        raise TypeError("an opener must use the protocol factory it is given")
    return transport, protocol  # type: ignore[return-value]
