"""Drive the sans-IO :class:`~nbdtui.proto.client_handshake.ClientHandshake` over a stream.

:func:`handshake` opens the stream (any opener, see :mod:`nbdtui.client.transport.stream`),
feeds the server's bytes to the handshake, sends what it queues, upgrades to TLS when it
says ``StartTLS``, and returns once it reports ``Negotiated`` or ``ExportsListed``. The
whole of it (connect + handshake) is bounded by ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from nbdtui.client.event_queue import EventQueue
from nbdtui.client.handshake_faults import located_faults, warn_flags
from nbdtui.client.transport.openers import open_stream, tls_upgrader
from nbdtui.client.transport.stream import Opener, StreamProtocol, TlsUpgrader
from nbdtui.errors import (
    ConnectionLostError,
    NbdError,
)
from nbdtui.proto.client_events import ExportsListed, Negotiated, StartTLS
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.uri import Endpoint

DEFAULT_CONNECT_TIMEOUT = 10.0

_log = logging.getLogger("nbdtui.client.transport")


@dataclass
class Handshaken:
    """A stream whose handshake is over."""

    transport: asyncio.Transport
    protocol: StreamProtocol
    result: Negotiated | ExportsListed
    trailing: bytes  # bytes received after the handshake (transmission phase)


class _HandshakeReceiver:
    """Feeds received bytes to the handshake and queues its events for the driver task."""

    def __init__(self, hs: ClientHandshake, endpoint: Endpoint) -> None:
        self.hs = hs
        self.endpoint = endpoint
        self.protocol: StreamProtocol | None = None
        self._buf = bytearray(65536)
        self._view = memoryview(self._buf)
        self._queue: EventQueue[BaseException] = EventQueue()
        self.tls_active = False  # the stream is TLS now
        self.tls_quiet = True  # and nothing has arrived through it yet

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._queue.error is not None:
            return
        if self.tls_active:
            self.tls_quiet = False
        try:
            events = self.hs.receive_data(self._view[:nbytes])
        except NbdError as exc:
            self.send_queued()  # a polite NBD_OPT_ABORT, when the handshake queued one
            self._queue.fail(exc)
            return
        self.send_queued()
        self._queue.extend(events)

    def eof_received(self) -> None:
        if not self.hs.done:
            self._queue.fail(
                self._tls_error(None)
                or self.hs.eof_error()
                or ConnectionLostError("server closed the connection")
            )

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.hs.done and not self._queue:
            return
        error = self._tls_error(exc)
        if error is None and exc is None:
            error = self.hs.eof_error()
        if error is None:
            reason = f": {exc}" if exc else ""
            error = ConnectionLostError(
                f"connection to {self.endpoint.display} lost during the handshake{reason}"
            )
        self._queue.fail(error)

    def _tls_error(self, exc: BaseException | None) -> NbdError | None:
        """A TLS alert, or a hang-up right after the TLS handshake (a server that rejects
        the client certificate under TLS 1.3 does that), as a TLSError; else None."""
        if not self.tls_active:
            return None
        from nbdtui.client.transport.tls import after_handshake_error

        return after_handshake_error(self.endpoint, exc, quiet=self.tls_quiet)

    def send_queued(self) -> None:
        """Write what the handshake has queued (nothing once the stream is closing)."""
        data = self.hs.data_to_send()
        if data and self.protocol is not None and self.protocol.transport is not None:
            transport = self.protocol.transport
            if not transport.is_closing():
                transport.write(data)

    async def next_event(self) -> object:
        return await self._queue.next()


async def handshake(
    endpoint: Endpoint,
    hs: ClientHandshake,
    *,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    opener: Opener | None = None,
    start_tls: TlsUpgrader | None = None,
) -> Handshaken:
    """Connect to ``endpoint`` and run ``hs`` to its end; see the module documentation.

    Raises ConnectError (unreachable, timed out), HandshakeError and its subclasses,
    ProtocolError, ConnectionLostError or NotSupportedError, each with the location.
    """
    if endpoint.tls and start_tls is None:
        start_tls = tls_upgrader(endpoint)  # unusable TLS settings fail before anything is sent
    receiver = _HandshakeReceiver(hs, endpoint)
    transport: asyncio.Transport | None = None
    protocol: StreamProtocol | None = None
    ok = False
    try:
        with located_faults(endpoint, hs, connect_timeout):
            async with asyncio.timeout(connect_timeout):
                transport, protocol = await open_stream(endpoint, receiver, opener=opener)
                receiver.protocol = protocol
                receiver.send_queued()  # the server speaks first; nothing is queued yet
                while True:
                    event = await receiver.next_event()
                    if isinstance(event, StartTLS):
                        assert start_tls is not None
                        try:
                            transport = await start_tls(endpoint, transport, protocol)
                        except OSError as exc:  # ssl.SSLError is one
                            from nbdtui.client.transport.tls import handshake_error

                            raise handshake_error(endpoint, exc) from exc
                        protocol.transport = transport
                        if _log.isEnabledFor(logging.DEBUG):
                            from nbdtui.client.transport.tls import describe

                            _log.debug(
                                "TLS upgraded: %s (%s)", describe(transport), endpoint.display
                            )
                        receiver.tls_active = True
                        hs.tls_established()
                        receiver.send_queued()
                        continue
                    if isinstance(event, Negotiated | ExportsListed):
                        if isinstance(event, Negotiated):
                            warn_flags(endpoint, event.info)
                        else:
                            for item in event.exports:
                                if item.info is not None:
                                    warn_flags(endpoint, item.info)
                        if event.tls:
                            from nbdtui.client.transport.tls import is_verified

                            event = event.replace(tls_verified=is_verified(transport))
                        ok = True
                        return Handshaken(transport, protocol, event, hs.trailing_data)
    finally:
        if not ok and transport is not None:
            with contextlib.suppress(Exception):
                transport.abort()
