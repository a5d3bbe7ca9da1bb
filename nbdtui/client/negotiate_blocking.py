"""The blocking driver of the handshake: connect a blocking socket and drive
:class:`~nbdtui.proto.client_handshake.ClientHandshake` over it to the transmission
phase, for the drivers that do without asyncio: the one-shot commands
(:mod:`nbdtui.client.oneshot`, TCP or Unix, plain or X.509 TLS) and the bulk engine's
own TLS connections (:mod:`nbdtui.client.bulk_tls`); over TLS they upgrade the stream
mid-handshake through the ``start_tls`` hook.

The failures and warnings are the asyncio driver's (:mod:`nbdtui.client.negotiate`),
word for word, through :mod:`nbdtui.client.handshake_faults`; the whole is bounded by
the connect timeout. Nothing here imports asyncio, ssl or even ``socket`` (start-up
time: ``nbdtui info`` uses this); the StartTLS hook brings ssl. Under TLS a hang-up or
an alert is told as the asyncio driver tells it
(:func:`~nbdtui.client.transport.tls.after_handshake_error`).
"""

from __future__ import annotations

import _socket
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

from nbdtui.client.handshake_faults import located_faults, warn_flags
from nbdtui.errors import ConnectionLostError, NbdError
from nbdtui.proto.client_events import Negotiated, StartTLS
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.uri import Endpoint

__all__ = ["BlockingStream", "negotiate", "open_socket"]

_RECV = 65536  # the most received per call while negotiating


class BlockingStream(Protocol):
    """What the driver needs of a stream: a socket, or a TLS stream over one."""

    def recv(self, size: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> None: ...

    def settimeout(self, timeout: float | None, /) -> None: ...

    def close(self) -> None: ...


def open_socket(endpoint: Endpoint, timeout: float | None) -> _socket.socket:
    """A connected blocking socket. ``_socket``, not ``socket``: the ``socket`` module
    builds four enums from ``_socket``'s constants on import (about 3 ms, a twentieth of
    the whole start-up of ``nbdtui info``); this needs only the bare calls."""
    if endpoint.transport == "unix":
        assert endpoint.socket is not None
        candidates: list[tuple[int, str | tuple[Any, ...]]] = [(_socket.AF_UNIX, endpoint.socket)]
    else:
        assert endpoint.host is not None
        # Every address of the host in turn, as socket.create_connection does.
        candidates = [
            (family, address)
            for family, _, _, _, address in _socket.getaddrinfo(
                endpoint.host, endpoint.tcp_port, 0, _socket.SOCK_STREAM
            )
        ]
    error: OSError | None = None
    for family, address in candidates:
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        if family != _socket.AF_UNIX:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        return sock
    assert error is not None  # getaddrinfo returns at least one address or raises
    raise error


def negotiate(
    endpoint: Endpoint,
    hs: ClientHandshake,
    *,
    connect_timeout: float | None,
    start_tls: Callable[[_socket.socket], BlockingStream] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[BlockingStream, Negotiated, bytes]:
    """Connect to ``endpoint`` and run ``hs`` to the transmission phase, the whole
    bounded by ``connect_timeout``. On the handshake's StartTLS, ``start_tls`` turns the
    socket into a TLS stream (it raises what a failed TLS handshake raises; it must
    close nothing). Returns the stream (the caller's to close), what was negotiated, and
    any bytes that came after the handshake. Raises what
    :func:`nbdtui.client.negotiate.handshake` raises, with the same messages; the
    warnings go to ``warn`` when given (see
    :func:`~nbdtui.client.handshake_faults.warn_flags`)."""
    deadline = None if connect_timeout is None else time.monotonic() + connect_timeout
    stream: BlockingStream | None = None
    try:
        with located_faults(endpoint, hs, connect_timeout):
            raw = stream = open_socket(endpoint, connect_timeout)
            tls_quiet: bool | None = None  # under TLS: nothing has arrived through it yet
            while True:
                if deadline is not None:
                    stream.settimeout(max(deadline - time.monotonic(), 1e-3))
                data = _receive(stream, endpoint, tls_quiet)
                if not data:
                    raise (
                        (tls_quiet is not None and _tls_error(endpoint, None, tls_quiet))
                        or hs.eof_error()
                        or ConnectionLostError("server closed the connection")
                    )
                if tls_quiet:
                    tls_quiet = False
                try:
                    events = hs.receive_data(data)
                except NbdError:
                    with contextlib.suppress(OSError):  # a polite NBD_OPT_ABORT, if queued
                        stream.sendall(hs.data_to_send())
                    raise
                _send_queued(stream, hs, endpoint, tls_quiet)
                for event in events:
                    if isinstance(event, StartTLS):
                        if start_tls is None or stream is not raw:
                            raise ConnectionLostError("unexpected TLS upgrade in the handshake")
                        stream = start_tls(raw)
                        tls_quiet = True
                        hs.tls_established()
                        _send_queued(stream, hs, endpoint, tls_quiet)
                    elif isinstance(event, Negotiated):
                        warn_flags(endpoint, event.info, warn)
                        done, stream = stream, None  # the caller's now
                        return done, event, bytes(hs.trailing_data)
    finally:
        if stream is not None:  # (a TLS stream closes the socket under it)
            stream.close()


def _receive(stream: BlockingStream, endpoint: Endpoint, tls_quiet: bool | None) -> bytes:
    """What the server sent next (b"" at its end). ``tls_quiet``: ``None`` before TLS,
    then whether nothing has arrived through TLS yet."""
    try:
        return stream.recv(_RECV)
    except TimeoutError:
        raise
    except OSError as exc:
        if tls_quiet is not None:
            import ssl  # (imported already: the stream is TLS)

            if isinstance(exc, ssl.SSLEOFError):  # a hang-up without close_notify:
                return b""  # asyncio's TLS layer tells it as the end of the stream
        raise _lost(endpoint, exc, tls_quiet) from exc


def _lost(endpoint: Endpoint, exc: OSError, tls_quiet: bool | None) -> NbdError:
    """A connection reset (or refusing what is sent) while negotiating, as the asyncio
    driver tells it."""
    error = None if tls_quiet is None else _tls_error(endpoint, exc, tls_quiet)
    return error or ConnectionLostError(
        f"connection to {endpoint.display} lost during the handshake: {exc}"
    )


def _tls_error(endpoint: Endpoint, exc: BaseException | None, quiet: bool) -> NbdError | None:
    """A failure under TLS as the asyncio driver tells it: a TLS alert, or a hang-up
    right after the TLS handshake (how GnuTLS servers reject a client certificate under
    TLS 1.3); None when neither applies."""
    from nbdtui.client.transport.tls import after_handshake_error

    return after_handshake_error(endpoint, exc, quiet=quiet)


def _send_queued(
    stream: BlockingStream, hs: ClientHandshake, endpoint: Endpoint, tls_quiet: bool | None
) -> None:
    """Send what ``hs`` queued. A server that hung up (EPIPE, a reset: a server that
    rejects the client certificate just after the TLS handshake) fails the handshake
    as :func:`_receive` would say, not as a failure to connect."""
    queued = hs.data_to_send()
    if queued:
        try:
            stream.sendall(queued)
        except TimeoutError:
            raise
        except OSError as exc:
            raise _lost(endpoint, exc, tls_quiet) from exc
