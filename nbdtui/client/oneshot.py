"""A blocking driver of the sans-IO core for one-shot commands (``nbdtui info``, a small
``read`` or ``dump``) over TCP or a Unix socket, plain or with X.509 TLS.

Importing asyncio (with ssl, logging, concurrent.futures and inspect behind it) was
more than a third of the instructions of ``nbdtui info``; a one-shot command that
makes one connection and a handful of requests needs none of it. This module drives
:class:`~nbdtui.proto.client_handshake.ClientHandshake` and
:class:`~nbdtui.proto.client_transmission.ClientTransmission` over a blocking socket
and imports nothing of asyncio.

It covers the usual case only; the caller falls back to the asyncio client for the
rest. :func:`usable` says which endpoints it serves (``tcp`` and ``unix``, plain or
``nbds`` with X.509 certificates: TLS goes through
:class:`~nbdtui.client.tls_stream.TlsStream` with the asyncio client's context and
checks, and imports ``ssl`` but still not asyncio).
The handshake is driven by :mod:`nbdtui.client.negotiate_blocking` (as for the bulk
engine's TLS connections): its failures and warnings are the asyncio driver's, word for
word; in the transmission phase
:meth:`OneShot.read` returns ``None`` on any trouble (an error reply, a lost connection,
a timeout), and the caller then does the whole command again the usual way, with its
retries, reconnects and messages.
"""

from __future__ import annotations

import _socket
from collections.abc import Callable
from typing import cast

from nbdtui.client.negotiate_blocking import BlockingStream, negotiate
from nbdtui.errors import NbdError
from nbdtui.proto.client_events import Data, Negotiated, RequestDone
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import BASE_ALLOCATION, Command
from nbdtui.uri import Endpoint

__all__ = ["OneShot", "connect", "probe", "usable"]

_RECV = 256 * 1024
_DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024  # what a server that says nothing takes


def usable(endpoint: Endpoint) -> bool:
    """Whether this driver can reach ``endpoint``: TCP or a Unix socket, plain or with
    X.509 TLS (not PSK, which needs a Python newer than 3.11 and is rare, nor anonymous
    TLS: the asyncio client serves those, and says what is wrong with contradictory
    TLS parameters)."""
    if endpoint.transport not in ("tcp", "unix"):
        return False
    if not endpoint.tls:
        return True
    kind = endpoint.tls_param("tls-type")
    return endpoint.tls_param("tls-psk-file") is None and kind not in ("psk", "anon")


class OneShot:
    """A connection in the transmission phase, driven with blocking calls."""

    def __init__(
        self, endpoint: Endpoint, sock: BlockingStream, negotiated: Negotiated, trailing: bytes
    ) -> None:
        self.endpoint = endpoint
        self.negotiated = negotiated
        self._sock = sock
        self._trailing = trailing  # bytes that came after the handshake (none, normally)
        self._machine = ClientTransmission(structured=negotiated.structured)

    def read(self, offset: int, length: int, timeout: float | None = None) -> bytearray | None:
        """``length`` bytes at ``offset``, or ``None`` when anything but a clean reply
        came back (the caller then reads the usual way). The range must be valid and
        aligned to the export's minimum block size (the caller checks)."""
        info = self.negotiated.info
        step = min(info.block_maximum or _DEFAULT_MAX_PAYLOAD, _DEFAULT_MAX_PAYLOAD)
        minimum = info.block_minimum or 1
        step -= step % minimum
        if step <= 0 or offset % minimum or length % minimum:
            return None
        out = bytearray(length)
        view = memoryview(out)
        machine = self._machine
        headers = []
        for at in range(offset, offset + length, step):
            headers.append(machine.request(Command.READ, at, min(step, offset + length - at))[1])
        waiting = len(headers)
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(b"".join(headers))
            data, self._trailing = self._trailing, b""
            while waiting:
                if not data:
                    data = self._sock.recv(_RECV)
                    if not data:
                        return None
                for event in machine.receive_data(data, copy=False):
                    if isinstance(event, Data) and event.data is not None:
                        start = event.offset - offset
                        view[start : start + event.length] = event.data
                    elif isinstance(event, RequestDone):
                        if event.error:
                            return None
                        waiting -= 1
                    # Hole: the buffer is zeroes already; ChunkError: RequestDone follows
                data = b""
        except (OSError, NbdError):
            return None
        return out

    def close(self) -> None:
        """NBD_CMD_DISC (and a TLS close_notify) when the connection is in a state to
        take it, then close."""
        try:
            if not self._machine.in_flight and self._machine.error is None:
                self._sock.sendall(self._machine.request(Command.DISC)[1])
                close_notify = getattr(self._sock, "close_notify", None)  # a TlsStream's
                if close_notify is not None:
                    close_notify()
        except (OSError, NbdError):
            pass
        finally:
            self._sock.close()


def connect(
    endpoint: Endpoint,
    *,
    connect_timeout: float | None,
    meta_contexts: tuple[str, ...] = (BASE_ALLOCATION,),
    list_contexts: bool = False,
    warn: Callable[[str], None] | None = None,
) -> OneShot:
    """Connect and negotiate ``endpoint.export`` (upgrading to TLS for ``nbds``); the
    whole bounded by ``connect_timeout``. Raises what
    :func:`nbdtui.client.negotiate.handshake` raises, with the same messages; its
    warnings go to ``warn`` when given (see
    :func:`~nbdtui.client.handshake_faults.warn_flags`)."""
    assert usable(endpoint)
    hs = ClientHandshake(
        export_name=endpoint.export,
        meta_contexts=meta_contexts,
        list_contexts=list_contexts,
        tls=endpoint.tls,
    )
    if not endpoint.tls:
        sock, negotiated, trailing = negotiate(
            endpoint, hs, connect_timeout=connect_timeout, warn=warn
        )
        return OneShot(endpoint, cast(_socket.socket, sock), negotiated, trailing)
    start_tls, verified = _tls_upgrade(endpoint, connect_timeout)
    stream, negotiated, trailing = negotiate(
        endpoint, hs, connect_timeout=connect_timeout, start_tls=start_tls, warn=warn
    )
    return OneShot(endpoint, stream, negotiated.replace(tls_verified=verified), trailing)


def _tls_upgrade(
    endpoint: Endpoint, connect_timeout: float | None
) -> tuple[Callable[[_socket.socket], BlockingStream], bool]:
    """The StartTLS hook for ``endpoint`` and whether it authenticates the server. The
    context and the checks are the asyncio client's
    (:func:`~nbdtui.client.transport.tls.wrapping_for`): unusable settings raise its
    TLSError now, before connecting; a failed TLS handshake raises its TLSError; one
    that outlasts the connect timeout, TimeoutError (told as a connect timeout)."""
    import time

    from nbdtui.client.tls_stream import TlsStream
    from nbdtui.client.transport.tls import handshake_error, wrapping_for

    context, hostname = wrapping_for(endpoint)
    deadline = None if connect_timeout is None else time.monotonic() + connect_timeout

    def start_tls(sock: _socket.socket) -> TlsStream:
        try:
            return TlsStream.wrap(sock, context, hostname, deadline)
        except TimeoutError:
            raise
        except OSError as exc:
            raise handshake_error(endpoint, exc) from exc

    return start_tls, context.verified


def probe(
    endpoint: Endpoint,
    *,
    connect_timeout: float | None,
    warn: Callable[[str], None] | None = None,
) -> Negotiated:
    """:func:`nbdtui.client.api.probe` for an endpoint it serves, without asyncio: connect,
    learn what the handshake tells (contexts listed, ``base:allocation`` set), then
    NBD_CMD_DISC."""
    shot = connect(endpoint, connect_timeout=connect_timeout, list_contexts=True, warn=warn)
    shot.close()
    return shot.negotiated
