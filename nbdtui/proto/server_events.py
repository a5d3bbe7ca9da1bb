"""Every event the server side emits, in one place (as h11's ``_events.py``).

All derive from :class:`ServerEvent`, and
:meth:`~nbdtui.proto.server_connection.ServerConnection.receive_data` returns them:

* the handshake (:class:`~nbdtui.proto.server_handshake.ServerHandshake`):
  :class:`OptionHandled` for each option answered, then :class:`TransmissionStarted`
  (GO or EXPORT_NAME) or :class:`ConnectionClosed`;
* the transmission phase: one :class:`Request` subclass per request to answer
  (:class:`ReadRequest`, :class:`WriteRequest`, :class:`FlushRequest`,
  :class:`TrimRequest`, :class:`CacheRequest`, :class:`WriteZeroesRequest`,
  :class:`BlockStatusRequest`), :class:`RequestRejected` for an invalid request the
  connection already answered, :class:`DisconnectRequest` for NBD_CMD_DISC;
* :class:`ConnectionClosed` in either phase: close the socket once the queued bytes are
  sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nbdtui.errors import Errno
from nbdtui.proto.constants import Command, CommandFlag
from nbdtui.proto.types import ExportInfo


class ServerEvent:
    """Base class of the events of the server side (no fields of its own)."""

    __slots__ = ()


# ---- handshake ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionHandled(ServerEvent):
    """The server answered one option.  ``reply`` is the final reply type sent
    (``NBD_REP_ACK`` or an error); 0 for NBD_OPT_EXPORT_NAME, which has no reply."""

    option: int
    reply: int
    export: str | None = None


@dataclass(frozen=True)
class TransmissionStarted(ServerEvent):
    """The handshake finished (GO or EXPORT_NAME): requests for ``info.name`` follow.

    ``info.flags`` are the transmission flags sent to this client; ``meta_contexts``
    maps each selected context to its id (empty unless SET_META_CONTEXT chose the
    same export); ``block_size_requested`` tells whether the client asked for
    NBD_INFO_BLOCK_SIZE with GO (and so promised to honour the constraints).
    """

    info: ExportInfo
    structured: bool
    meta_contexts: tuple[tuple[str, int], ...] = ()
    via: str = "go"
    block_size_requested: bool = False


@dataclass(frozen=True)
class ConnectionClosed(ServerEvent):
    """The connection must be closed once queued bytes are sent.

    ``error`` is True when the client broke the protocol (or asked for an export
    that EXPORT_NAME cannot refuse), False for NBD_OPT_ABORT, NBD_CMD_DISC and EOF.
    """

    reason: str
    error: bool = False


# ---- transmission ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request(ServerEvent):
    """One request the server must answer (every command but DISC)."""

    command: ClassVar[Command]
    cookie: int
    flags: int
    offset: int
    length: int

    @property
    def fua(self) -> bool:
        return bool(self.flags & CommandFlag.FUA)


@dataclass(frozen=True)
class ReadRequest(Request):
    command: ClassVar[Command] = Command.READ

    @property
    def df(self) -> bool:
        """Don't fragment: the reply must carry at most one content chunk."""
        return bool(self.flags & CommandFlag.DF)


@dataclass(frozen=True)
class WriteRequest(Request):
    """``data`` is a read-only view of the payload, valid until the reply is sent;
    it is a slice of the received bytes when the payload arrived in one piece."""

    data: memoryview
    command: ClassVar[Command] = Command.WRITE


@dataclass(frozen=True)
class FlushRequest(Request):
    command: ClassVar[Command] = Command.FLUSH


@dataclass(frozen=True)
class TrimRequest(Request):
    command: ClassVar[Command] = Command.TRIM


@dataclass(frozen=True)
class CacheRequest(Request):
    command: ClassVar[Command] = Command.CACHE


@dataclass(frozen=True)
class WriteZeroesRequest(Request):
    command: ClassVar[Command] = Command.WRITE_ZEROES

    @property
    def no_hole(self) -> bool:
        return bool(self.flags & CommandFlag.NO_HOLE)

    @property
    def fast_zero(self) -> bool:
        return bool(self.flags & CommandFlag.FAST_ZERO)


@dataclass(frozen=True)
class BlockStatusRequest(Request):
    command: ClassVar[Command] = Command.BLOCK_STATUS

    @property
    def req_one(self) -> bool:
        return bool(self.flags & CommandFlag.REQ_ONE)


@dataclass(frozen=True)
class DisconnectRequest(ServerEvent):
    """NBD_CMD_DISC: answer what is outstanding, then close.  It has no reply."""

    cookie: int
    flags: int = 0


@dataclass(frozen=True)
class RequestRejected(ServerEvent):
    """A request the connection refused by itself; its error reply is already queued."""

    cookie: int
    command: int
    flags: int
    offset: int
    length: int
    error: Errno
    message: str
