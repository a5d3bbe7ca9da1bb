"""A blocking driver of the sans-IO core for one-shot commands (``nbdtui info``, a small
``read`` or ``dump``) over plain TCP or a Unix socket.

Importing asyncio (with ssl, logging, concurrent.futures and inspect behind it) was
more than a third of the instructions of ``nbdtui info``; a one-shot command that
makes one connection and a handful of requests needs none of it. This module drives
:class:`~nbdtui.proto.client_handshake.ClientHandshake` and
:class:`~nbdtui.proto.client_transmission.ClientTransmission` over a blocking socket
and imports nothing of asyncio.

It covers the usual case only; the caller falls back to the asyncio client for the
rest. :func:`usable` says which endpoints it serves (``tcp`` and ``unix`` without TLS).
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

from nbdtui.client.negotiate_blocking import negotiate
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
    """Whether this driver can reach ``endpoint`` (plain TCP or Unix socket)."""
    return endpoint.transport in ("tcp", "unix") and not endpoint.tls


class OneShot:
    """A connection in the transmission phase, driven with blocking calls."""

    def __init__(
        self, endpoint: Endpoint, sock: _socket.socket, negotiated: Negotiated, trailing: bytes
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
        """NBD_CMD_DISC when the connection is in a state to take it, then close."""
        try:
            if not self._machine.in_flight and self._machine.error is None:
                self._sock.sendall(self._machine.request(Command.DISC)[1])
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
    """Connect and negotiate ``endpoint.export``; the whole bounded by
    ``connect_timeout``. Raises what :func:`nbdtui.client.negotiate.handshake` raises,
    with the same messages; its warnings go to ``warn`` when given (see
    :func:`~nbdtui.client.handshake_faults.warn_flags`)."""
    assert usable(endpoint)
    hs = ClientHandshake(
        export_name=endpoint.export,
        meta_contexts=meta_contexts,
        list_contexts=list_contexts,
        tls=False,  # (usable() is false for nbds: no StartTLS can come)
    )
    sock, negotiated, trailing = negotiate(endpoint, hs, connect_timeout=connect_timeout, warn=warn)
    return OneShot(endpoint, cast(_socket.socket, sock), negotiated, trailing)


def probe(
    endpoint: Endpoint,
    *,
    connect_timeout: float | None,
    warn: Callable[[str], None] | None = None,
) -> Negotiated:
    """:func:`nbdtui.client.api.probe` for a plain endpoint, without asyncio: connect,
    learn what the handshake tells (contexts listed, ``base:allocation`` set), then
    NBD_CMD_DISC."""
    shot = connect(endpoint, connect_timeout=connect_timeout, list_contexts=True, warn=warn)
    shot.close()
    return shot.negotiated
