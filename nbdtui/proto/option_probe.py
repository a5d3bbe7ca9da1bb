"""The client side of the NBD handshake one option at a time, for diagnosis.

:class:`~nbdtui.proto.client_handshake.ClientHandshake` runs a whole negotiation and
reports its outcome. A diagnosis (``nbdtui doctor``) needs to see each answer on its own:
which greeting the server sent, what it says to each option, whether GO fell back to
EXPORT_NAME, what LIST offers after a refusal. :class:`OptionProbe` parses the greeting
(and answers it with the client flags), then sends what its driver asks, one option at a
time, and returns each answer as an event. Decoding is :mod:`nbdtui.proto.option_codec`'s.

Theory of operation
-------------------

===================  ===========================================  ===================
state                what moves it                                next state
===================  ===========================================  ===================
GREETING             oldstyle greeting (emits ``Greeted`` with    DONE
                     the export's size and flags)
GREETING             newstyle greeting (emits ``Greeted``; the    IDLE
                     client flags are queued)
IDLE                 ``send_option()``                            REPLY
IDLE                 ``send_export_name()``                       EXPORT_NAME_REPLY
REPLY                an intermediate reply (kept)                 REPLY
REPLY                the final reply (emits ``OptionAnswered``)   IDLE
REPLY                ACK to NBD_OPT_GO (emits ``OptionAnswered``) DONE
EXPORT_NAME_REPLY    size and flags (emits ``ExportNameAnswered``) DONE
DONE                 any bytes: kept in ``trailing_data``         DONE
any                  bytes that break the protocol                FAILED
===================  ===========================================  ===================

Bytes in IDLE are a ``ProtocolError`` (the server speaks only when spoken to). After the
server accepted NBD_OPT_STARTTLS the driver wraps the stream in TLS and goes on calling
``send_option`` with the decrypted stream: the machine does not care. ``send_option`` on
a non-fixed newstyle server, or in any other state than IDLE, is a ``RuntimeError`` (the
driver's bug), as is any call in FAILED but ``receive_data``, which raises the error again.
"""

from __future__ import annotations

import enum

from nbdtui.errors import ProtocolError
from nbdtui.proto import option_codec as wire
from nbdtui.proto.client_events import (
    ExportNameAnswered,
    Greeted,
    OptionAnswered,
    ProbeEvent,
)
from nbdtui.proto.constants import (
    IHAVEOPT,
    HandshakeFlag,
    Option,
    OptionReply,
)
from nbdtui.proto.greeting import (
    client_flags,
    greeting_style,
    take_export_name_reply,
    take_newstyle_flags,
    take_oldstyle,
)
from nbdtui.proto.option_caps import ReplyCaps
from nbdtui.proto.option_replies import take_reply
from nbdtui.proto.types import ExportInfo

__all__ = ["OptionProbe"]


class _State(enum.Enum):
    GREETING = enum.auto()
    IDLE = enum.auto()
    REPLY = enum.auto()
    EXPORT_NAME_REPLY = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


class OptionProbe:
    """See the module documentation."""

    def __init__(self) -> None:
        self._state = _State.GREETING
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._trailing = bytearray()
        self._error: ProtocolError | None = None
        self.style = ""  # set by the greeting
        self.no_zeroes = False
        self._awaiting: int | None = None
        self._servers: list[tuple[str, str]] = []
        self._infos: list[tuple[int, object]] = []
        self._contexts: list[tuple[int, str]] = []
        self._caps = ReplyCaps()  # what the option replies kept so far (option_caps)

    # ---- driver API ----------------------------------------------------------------

    @property
    def state(self) -> str:
        """``greeting``, ``idle``, ``reply``, ``export-name-reply``, ``done`` or ``failed``."""
        return self._state.name.lower().replace("_", "-")

    @property
    def awaiting(self) -> int | None:
        """The option whose answer is awaited (None when none is)."""
        return self._awaiting

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._trailing)

    def data_to_send(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def send_option(self, option: int, payload: bytes = b"") -> None:
        if self._state is not _State.IDLE or self.style != "newstyle-fixed":
            raise RuntimeError(f"cannot send an option now (state {self.state}, {self.style})")
        self._outbox += wire.encode_option(option, payload)
        self._awaiting = option
        self._state = _State.REPLY

    def send_export_name(self, name: bytes) -> None:
        if self._state is not _State.IDLE:
            raise RuntimeError(f"cannot send NBD_OPT_EXPORT_NAME now (state {self.state})")
        self._outbox += wire.encode_option(Option.EXPORT_NAME, name)
        self._awaiting = Option.EXPORT_NAME
        self._state = _State.EXPORT_NAME_REPLY

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[ProbeEvent]:
        if self._error is not None:
            raise self._error
        if self._state is _State.DONE:
            self._trailing += data
            return []
        self._inbox += data
        events: list[ProbeEvent] = []
        try:
            while self._inbox and self._step(events):
                pass
        except ProtocolError as exc:
            self._error = exc
            self._state = _State.FAILED
            raise
        return events

    # ---- parsing -------------------------------------------------------------------

    def _step(self, events: list[ProbeEvent]) -> bool:
        state = self._state
        if state is _State.GREETING:
            return self._greeting(events)
        if state is _State.REPLY:
            return self._reply(events)
        if state is _State.EXPORT_NAME_REPLY:
            return self._export_name_reply(events)
        if state is _State.DONE:
            self._trailing += self._inbox
            self._inbox.clear()
            return False
        raise ProtocolError(f"server sent {len(self._inbox)} bytes while nbdtui had asked nothing")

    def _greeting(self, events: list[ProbeEvent]) -> bool:
        buf = self._inbox
        style = greeting_style(buf)
        if style is None:
            return False
        if style == IHAVEOPT:
            flags = take_newstyle_flags(buf)
            if flags is None:
                return False
            fixed = bool(flags & HandshakeFlag.FIXED_NEWSTYLE)
            self.no_zeroes = bool(flags & HandshakeFlag.NO_ZEROES)
            self._outbox += client_flags(flags)
            self.style = "newstyle-fixed" if fixed else "newstyle"
            self._state = _State.IDLE
            events.append(Greeted(self.style, flags))
            return True
        oldstyle = take_oldstyle(buf)
        if oldstyle is None:
            return False
        size, flags = oldstyle
        self.style = "oldstyle"
        self._state = _State.DONE
        info = ExportInfo(name="", size=size, flags=flags & 0xFFFF)
        events.append(Greeted("oldstyle", flags >> 16, info))
        return True

    def _reply(self, events: list[ProbeEvent]) -> bool:
        awaiting = self._awaiting
        assert awaiting is not None
        taken = take_reply(self._inbox, awaiting, self._caps)
        if taken is None:
            return False
        reply, payload = taken
        if reply == OptionReply.SERVER:
            self._servers.append(wire.decode_server(payload))
        elif reply == OptionReply.INFO:
            self._infos.append(wire.decode_info(payload))
        elif reply == OptionReply.META_CONTEXT:
            self._contexts.append(wire.decode_meta_context(payload))
        else:
            message = wire.decode_message(payload) if wire.is_error(reply) else ""
            events.append(
                OptionAnswered(
                    option=awaiting,
                    reply=reply,
                    message=message,
                    servers=tuple(self._servers),
                    infos=tuple(self._infos),
                    contexts=tuple(self._contexts),
                )
            )
            self._servers, self._infos, self._contexts = [], [], []
            self._caps.answered()
            self._awaiting = None
            done = awaiting == Option.GO and reply == OptionReply.ACK
            self._state = _State.DONE if done else _State.IDLE
        return True

    def _export_name_reply(self, events: list[ProbeEvent]) -> bool:
        reply = take_export_name_reply(self._inbox, self.no_zeroes)
        if reply is None:
            return False
        size, flags = reply
        self._awaiting = None
        self._state = _State.DONE
        events.append(ExportNameAnswered(size, flags))
        return True
