"""Which transport opens a stream to an endpoint, and which upgrades it to TLS.

:func:`opener_for` turns an :class:`~nbdtui.uri.Endpoint` into an *opener*: an ``async``
callable taking a zero-argument protocol factory and returning ``(transport, protocol)``,
exactly like ``functools.partial(loop.create_connection, host=..., port=...)``:

- ``tcp`` and ``unix`` are asyncio's own connections (TCP with ``TCP_NODELAY``);
- ``ssh`` is a channel of :mod:`nbdtui.client.transport.ssh.tunnel`, imported only then
  (importing asyncssh costs a few tenths of a second);
- ``vsock`` is refused with :class:`~nbdtui.errors.NotSupportedError`.

:func:`tls_upgrader` checks an endpoint's TLS settings and returns
:func:`nbdtui.client.transport.tls.start_tls`, imported the first time a TLS endpoint is
opened. ``Connection`` and the ``api`` functions also take
``opener=`` and ``start_tls=`` arguments that replace these for one call (tests use them
to put a fault between client and server).

:func:`open_stream` opens the stream with a :class:`~nbdtui.client.transport.stream.StreamProtocol`
whose incoming bytes go to a receiver, and turns an ``OSError`` into a one-line
:class:`~nbdtui.errors.ConnectError`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from nbdtui.client.transport.stream import (
    Opener,
    P,
    ProtocolFactory,
    Receiver,
    StreamProtocol,
    TlsUpgrader,
)
from nbdtui.errors import ConnectError, NbdError, NotSupportedError
from nbdtui.uri import Endpoint

__all__ = ["connect_error", "open_stream", "opener_for", "tls_upgrader"]

_log = logging.getLogger("nbdtui.client.transport")


def tls_upgrader(endpoint: Endpoint) -> TlsUpgrader:
    """The built-in TLS upgrader, once ``endpoint``'s TLS settings proved usable: raises
    TLSError (or UriError) now, before anything connects. :mod:`nbdtui.client.transport.tls`
    is imported only then (``ssl`` is stdlib, but only TLS endpoints need that module)."""
    from nbdtui.client.transport import tls

    tls.check(endpoint)
    return tls.start_tls


def _tcp_opener(endpoint: Endpoint) -> Opener:
    host = endpoint.host
    assert host is not None  # every tcp endpoint has one

    async def open_tcp(factory: ProtocolFactory[P]) -> tuple[asyncio.Transport, P]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            factory, host=host, port=endpoint.tcp_port
        )
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return transport, protocol

    return open_tcp


def _unix_opener(endpoint: Endpoint) -> Opener:
    path = endpoint.socket
    assert path is not None  # a leading NUL names an abstract socket (Linux)

    async def open_unix(factory: ProtocolFactory[P]) -> tuple[asyncio.Transport, P]:
        loop = asyncio.get_running_loop()
        return await loop.create_unix_connection(factory, path=path)

    return open_unix


def opener_for(endpoint: Endpoint) -> Opener:
    """The opener for ``endpoint``'s transport: tcp, unix or ssh."""
    kind = endpoint.transport
    if kind == "tcp":
        return _tcp_opener(endpoint)
    if kind == "unix":
        return _unix_opener(endpoint)
    if kind == "ssh":
        from nbdtui.client.transport.ssh.tunnel import ssh_opener

        return ssh_opener(endpoint)
    if kind == "vsock":
        raise NotSupportedError("vsock endpoints are not supported")
    raise NotSupportedError(f"{kind} endpoints are not supported yet")


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
    _log.debug("stream opened: %s to %s", endpoint.transport, endpoint.display)
    return transport, protocol
