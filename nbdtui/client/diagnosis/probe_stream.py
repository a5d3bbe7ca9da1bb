"""One connection driven a step at a time: :class:`~nbdtui.proto.option_probe.OptionProbe`
for the handshake, then :class:`~nbdtui.proto.client_transmission.ClientTransmission` for
a few reads, over any stream (TCP, Unix socket, SSH channel; TLS on top).

No timeouts here: the walk bounds each call (``asyncio.timeout``). Every failure is an
:class:`~nbdtui.errors.NbdError`; a closed connection is a ConnectionLostError whose
``__cause__`` is what the transport reported.
"""

from __future__ import annotations

import asyncio
import contextlib

from nbdtui.client.event_queue import EventQueue
from nbdtui.client.transport.openers import open_stream
from nbdtui.client.transport.stream import Opener, StreamProtocol, TlsUpgrader
from nbdtui.errors import ConnectionLostError, NbdError
from nbdtui.proto.client_events import ExportNameAnswered, Greeted, OptionAnswered, RequestDone
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import Command, Option
from nbdtui.proto.option_probe import OptionProbe
from nbdtui.uri import Endpoint

__all__ = ["ProbeStream"]

_BUFFER = 64 * 1024  # bytes received at a time


class ProbeStream:
    """A stream's receiver that queues the events of the machine in charge."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.probe = OptionProbe()
        self.transmission: ClientTransmission | None = None
        self.transport: asyncio.Transport | None = None
        self.protocol: StreamProtocol | None = None
        self.tls_active = False
        self.received_since_tls = False
        self.lost_exc: BaseException | None = None
        self._view = memoryview(bytearray(_BUFFER))
        self._queue: EventQueue[NbdError] = EventQueue()

    # ---- Receiver ------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._queue.error is not None:
            return
        self.received_since_tls = True
        data = self._view[:nbytes]
        try:
            events: list[object]
            if self.transmission is not None:
                events = [
                    e
                    for e in self.transmission.receive_data(data, copy=False)
                    if isinstance(e, RequestDone)
                ]
            else:
                events = list(self.probe.receive_data(data))
        except NbdError as exc:
            self._queue.fail(exc)
            return
        self._queue.extend(events)

    def eof_received(self) -> None:
        self._queue.fail(ConnectionLostError("the server closed the connection"))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost_exc = exc
        error = ConnectionLostError(
            "the connection was lost" + (f": {exc}" if exc else " (closed by the server)")
        )
        error.__cause__ = exc
        self._queue.fail(error)

    # ---- driving -------------------------------------------------------------------

    async def open(self, opener: Opener | None = None) -> None:
        """Connect (raises ConnectError)."""
        self.transport, self.protocol = await open_stream(self.endpoint, self, opener=opener)

    def _send(self, data: bytes) -> None:
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def _flush(self) -> None:
        self._send(self.probe.data_to_send())

    async def greeting(self) -> Greeted:
        event = await self._queue.next()
        assert isinstance(event, Greeted)
        self._flush()  # the client flags
        return event

    async def ask(self, option: int, payload: bytes = b"") -> OptionAnswered:
        self.probe.send_option(option, payload)
        self._flush()
        event = await self._queue.next()
        assert isinstance(event, OptionAnswered)
        return event

    async def export_name(self, name: bytes) -> ExportNameAnswered:
        self.probe.send_export_name(name)
        self._flush()
        event = await self._queue.next()
        assert isinstance(event, ExportNameAnswered)
        return event

    async def start_tls(self, upgrade: TlsUpgrader) -> None:
        """Wrap the stream in TLS (after the server accepted NBD_OPT_STARTTLS); raises
        TLSError."""
        assert self.transport is not None and self.protocol is not None
        self.transport = await upgrade(self.endpoint, self.transport, self.protocol)
        self.protocol.transport = self.transport
        self.tls_active = True
        self.received_since_tls = False

    def begin_transmission(self, structured: bool) -> None:
        self.transmission = ClientTransmission(structured=structured)
        trailing = self.probe.trailing_data
        if trailing:
            self._view[: len(trailing)] = trailing
            self.buffer_updated(len(trailing))

    def send_read(self, offset: int, length: int) -> int:
        """Send one READ; returns its cookie (its RequestDone comes from :meth:`done`)."""
        assert self.transmission is not None
        cookie, header = self.transmission.request(Command.READ, offset, length)
        self._send(header)
        return cookie

    async def done(self) -> RequestDone:
        event = await self._queue.next()
        assert isinstance(event, RequestDone)
        return event

    async def read(self, offset: int, length: int) -> RequestDone:
        self.send_read(offset, length)
        return await self.done()

    def close(self) -> None:
        """Leave politely when the protocol allows it (NBD_CMD_DISC, NBD_OPT_ABORT)."""
        transport = self.transport
        if transport is None:
            return
        with contextlib.suppress(Exception):
            if self._queue.error is None and not transport.is_closing():
                if self.transmission is not None and self.transmission.in_flight == 0:
                    self._send(self.transmission.request(Command.DISC)[1])
                elif self.probe.state == "idle" and self.probe.style == "newstyle-fixed":
                    self.probe.send_option(Option.ABORT)
                    self._flush()
            transport.close()
        self._queue.fail(ConnectionLostError("closed by nbdtui"))
        # A fleet check keeps every diagnosis; tracebacks and transports may keep this
        # object alive until the cycle collector runs: let its buffer go now.
        self._view = memoryview(bytearray(4096))
