"""Blocking TLS connections for the bulk engine (:mod:`nbdtui.client.bulk`).

asyncio's TLS state cannot be handed to a blocking :class:`ssl.SSLSocket`, so a TLS
connection of a group cannot be lent to a thread as a plain one is. Instead the engine
opens connections of its own for the transfer: :func:`open_side` negotiates with the
blocking driver of the handshake (:mod:`nbdtui.client.negotiate_blocking`, as the
one-shot commands do), whose StartTLS hook wraps the socket in a :class:`TlsStream` with
the same :class:`ssl.SSLContext` as the event loop's connections
(:func:`~nbdtui.client.transport.tls.context_for`: the same CA, client certificate, host
name check), and returns a :class:`SideConnection` that a transfer thread drives like a
lent one. ``ssl`` releases the GIL while it encrypts and decrypts, so several threads
use several cores.

A side connection lives for one bulk transfer: :meth:`SideConnection.finish` (on its
thread) flushes what it wrote, when the export takes FLUSH, and says NBD_CMD_DISC.
Handshake failures raise what the asyncio driver raises, with the same messages.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import os
import socket
from typing import cast

from nbdtui.client.negotiate_blocking import negotiate
from nbdtui.client.request import FileRange, short_file_error
from nbdtui.client.tls_stream import TlsStream
from nbdtui.errors import ConnectionLostError, NbdError
from nbdtui.proto.client_events import Negotiated, RequestDone
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import Command
from nbdtui.uri import Endpoint

__all__ = [
    "SideConnection",
    "TlsStream",
    "open_side",
    "receive_exactly_tls",
    "send_file",
]

_CHUNK = 1 << 20  # of a FileRange read or written through user space
INTO_FILE = 256 * 1024  # a thread's buffer between a TLS stream and a file


def usable(endpoint: Endpoint) -> bool:
    """Whether :func:`open_side` can reach ``endpoint`` (TLS over TCP or a Unix socket)."""
    return endpoint.tls and endpoint.transport in ("tcp", "unix")


class SideConnection:
    """A TLS connection in the transmission phase, for one transfer thread: what the
    engine's threads use of a :class:`~nbdtui.client.connection.Connection`."""

    def __init__(
        self, endpoint: Endpoint, sock: TlsStream, negotiated: Negotiated, window: int
    ) -> None:
        self.endpoint = endpoint
        self.negotiated = negotiated
        self.sock = sock
        self.machine = ClientTransmission(structured=negotiated.structured)
        self.window = window
        self.requests = 0
        self.errors = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def finish(self) -> None:
        """On the thread, nothing in flight: FLUSH what was written (if the export
        takes FLUSH), then NBD_CMD_DISC. Raises on a failed flush."""
        machine, sock = self.machine, self.sock
        if self.bytes_written and self.negotiated.info.can_flush:
            sock.sendall(machine.request(Command.FLUSH)[1])
            while True:
                data = sock.recv(4096)
                if not data:
                    raise EOFError
                done = [e for e in machine.receive_data(data) if isinstance(e, RequestDone)]
                if done:
                    if done[0].error:
                        code = done[0].error
                        raise NbdError(f"the server answered {errno.errorcode.get(code, code)}")
                    break
        with contextlib.suppress(OSError, NbdError):
            sock.sendall(machine.request(Command.DISC)[1])
            sock.close_notify()

    def give_back(self, sock: object, error: NbdError | None = None) -> None:
        """The thread is done (on the loop): close the connection."""
        self.sock.close()


def open_side(endpoint: Endpoint, *, connect_timeout: float | None, window: int) -> SideConnection:
    """Connect to ``endpoint``, upgrade to TLS and negotiate its export, with blocking
    calls (:func:`~nbdtui.client.negotiate_blocking.negotiate`), the whole bounded by
    ``connect_timeout``."""
    from nbdtui.client.transport.tls import handshake_error, wrapping_for

    context, hostname = wrapping_for(endpoint)

    def start_tls(sock: _socket.socket) -> TlsStream:
        try:
            return TlsStream.wrap(sock, context, hostname)
        except OSError as exc:
            raise handshake_error(endpoint, exc) from exc

    hs = ClientHandshake(export_name=endpoint.export, meta_contexts=(), tls=True)
    stream, negotiated, trailing = negotiate(
        endpoint, hs, connect_timeout=connect_timeout, start_tls=start_tls, warn=_quiet
    )
    if trailing or not isinstance(stream, TlsStream):
        stream.close()
        raise ConnectionLostError("unexpected data after the handshake")
    stream.settimeout(None)
    return SideConnection(endpoint, stream, negotiated, window)


def _quiet(text: str) -> None:
    """Warnings of the handshake: the export's own connection told them already."""


def receive_exactly_tls(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from a :class:`TlsStream` (passed where the engine's threads pass
    a socket)."""
    cast(TlsStream, sock).receive_exactly(view)


def send_file(sock: socket.socket, payload: FileRange) -> None:
    """WRITE payload from a file to a TLS socket, read into user space a chunk at a time
    (sendfile would send the plaintext)."""
    fd = payload.file.fileno()
    pos, left = payload.offset, payload.length
    while left:
        data = os.pread(fd, min(left, _CHUNK), pos)
        if not data:
            raise short_file_error(payload, pos - payload.offset)
        sock.sendall(data)
        pos += len(data)
        left -= len(data)
