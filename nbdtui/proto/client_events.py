"""Every event the client's machines emit, in one place (as h11's ``_events.py``).

All derive from :class:`ClientEvent`. :class:`~nbdtui.proto.client_handshake.ClientHandshake`
emits the :data:`HandshakeEvent` kinds (:class:`StartTLS`, then exactly one of
:class:`Negotiated` / :class:`ExportsListed`);
:class:`~nbdtui.proto.client_transmission.ClientTransmission` emits the
:data:`TransmissionEvent` kinds (:class:`Data`, :class:`Hole`, :class:`BlockStatus`,
:class:`ChunkError`, and last for every request :class:`RequestDone`).

The events are frozen :class:`~nbdtui.proto.records.Record` classes (slots, a
hand-written ``__init__``; equality, hashing and repr from the base), not dataclasses:
defining eleven of those was 5 ms of every start-up. :func:`make_data` and
:func:`make_done` build the events of every reply without calling ``__init__`` at all.
"""

from __future__ import annotations

from nbdtui.proto.records import Record, SlotSetter
from nbdtui.proto.types import ExportDetails, ExportInfo


class ClientEvent(Record):
    """Base class of the events of the client machines (no fields of its own)."""

    __slots__ = ()


# ---- handshake: returned by ClientHandshake.receive_data ---------------------------


class StartTLS(ClientEvent):
    """The server accepted NBD_OPT_STARTTLS: wrap the socket in TLS now, then call
    ``ClientHandshake.tls_established()`` and go on feeding (decrypted) bytes."""

    __slots__ = ()


class Negotiated(ClientEvent):
    """The handshake finished (GO, EXPORT_NAME or oldstyle): transmission begins.

    ``protocol`` is ``"newstyle-fixed"``, ``"newstyle"`` or ``"oldstyle"`` (nbdinfo's words).
    ``meta_contexts`` maps each context the server agreed to (SET_META_CONTEXT) to its id.
    ``available_contexts`` is what LIST_META_CONTEXT returned, when it was asked for.
    """

    _fields = (
        "info",
        "protocol",
        "structured",
        "meta_contexts",
        "available_contexts",
        "tls",
        "tls_verified",
    )
    __slots__ = _fields
    info: ExportInfo
    protocol: str
    structured: bool
    meta_contexts: tuple[tuple[str, int], ...]
    available_contexts: tuple[str, ...] | None
    tls: bool
    #: TLS authenticated the server (verified certificate, or PSK); False when plaintext
    tls_verified: bool

    def __init__(
        self,
        info: ExportInfo,
        protocol: str,
        structured: bool,
        meta_contexts: tuple[tuple[str, int], ...] = (),
        available_contexts: tuple[str, ...] | None = None,
        tls: bool = False,
        tls_verified: bool = False,
    ) -> None:
        s = self._set
        s[0](self, info)
        s[1](self, protocol)
        s[2](self, structured)
        s[3](self, meta_contexts)
        s[4](self, available_contexts)
        s[5](self, tls)
        s[6](self, tls_verified)

    def context_id(self, name: str) -> int | None:
        for ctx, ident in self.meta_contexts:
            if ctx == name:
                return ident
        return None


class ExportsListed(ClientEvent):
    """NBD_OPT_LIST finished (and INFO for each export when details were asked for)."""

    _fields = ("protocol", "exports", "structured", "tls", "tls_verified")
    __slots__ = _fields
    protocol: str
    exports: tuple[ExportDetails, ...]
    structured: bool
    tls: bool
    tls_verified: bool  # as in Negotiated

    def __init__(
        self,
        protocol: str,
        exports: tuple[ExportDetails, ...],
        structured: bool = False,
        tls: bool = False,
        tls_verified: bool = False,
    ) -> None:
        s = self._set
        s[0](self, protocol)
        s[1](self, exports)
        s[2](self, structured)
        s[3](self, tls)
        s[4](self, tls_verified)


# ---- transmission: returned by ClientTransmission.receive_data / payload_received -----


class Data(ClientEvent):
    """``length`` bytes of the export at ``offset`` for READ ``cookie``.

    ``data`` holds them when they came through ``receive_data`` (``bytes``, or a
    ``memoryview`` of the data given with ``copy=False``); it is ``None`` when the
    driver received them itself (``payload_received``) into the target it was given.
    """

    _fields = ("cookie", "offset", "length", "data")
    __slots__ = _fields
    cookie: int
    offset: int
    length: int
    data: bytes | memoryview | None

    def __init__(
        self, cookie: int, offset: int, length: int, data: bytes | memoryview | None = None
    ) -> None:
        s = self._set
        s[0](self, cookie)
        s[1](self, offset)
        s[2](self, length)
        s[3](self, data)


class Hole(ClientEvent):
    """``length`` bytes at ``offset`` read as zeroes (structured OFFSET_HOLE chunk)."""

    _fields = ("cookie", "offset", "length")
    __slots__ = _fields
    cookie: int
    offset: int
    length: int

    def __init__(self, cookie: int, offset: int, length: int) -> None:
        s = self._set
        s[0](self, cookie)
        s[1](self, offset)
        s[2](self, length)


class BlockStatus(ClientEvent):
    """One NBD_REPLY_TYPE_BLOCK_STATUS chunk: ``extents`` are ``(length, flags)`` pairs
    describing consecutive bytes from the request's offset."""

    _fields = ("cookie", "context_id", "extents")
    __slots__ = _fields
    cookie: int
    context_id: int
    extents: tuple[tuple[int, int], ...]

    def __init__(self, cookie: int, context_id: int, extents: tuple[tuple[int, int], ...]) -> None:
        s = self._set
        s[0](self, cookie)
        s[1](self, context_id)
        s[2](self, extents)


class ChunkError(ClientEvent):
    """An error chunk (``offset`` is set for NBD_REPLY_TYPE_ERROR_OFFSET)."""

    _fields = ("cookie", "error", "message", "offset")
    __slots__ = _fields
    cookie: int
    error: int
    message: str
    offset: int | None

    def __init__(
        self, cookie: int, error: int, message: str = "", offset: int | None = None
    ) -> None:
        s = self._set
        s[0](self, cookie)
        s[1](self, error)
        s[2](self, message)
        s[3](self, offset)


class RequestDone(ClientEvent):
    """The reply to ``cookie`` is complete; ``error`` is 0 or the first error reported."""

    _fields = ("cookie", "error", "message", "offset")
    __slots__ = _fields
    cookie: int
    error: int
    message: str
    offset: int | None

    def __init__(
        self, cookie: int, error: int = 0, message: str = "", offset: int | None = None
    ) -> None:
        s = self._set
        s[0](self, cookie)
        s[1](self, error)
        s[2](self, message)
        s[3](self, offset)

    @property
    def ok(self) -> bool:
        return self.error == 0


HandshakeEvent = StartTLS | Negotiated | ExportsListed
TransmissionEvent = Data | Hole | BlockStatus | ChunkError | RequestDone

# Constructors for the events of every reply (the hot path), storing through the slot
# descriptors (records.slot_setters) without calling __init__. Positional, every field
# given.
_new = object.__new__
_data_set = Data._set
_done_set = RequestDone._set


def make_data(
    cookie: int,
    offset: int,
    length: int,
    data: bytes | memoryview | None,
    _s: tuple[SlotSetter, ...] = _data_set,
) -> Data:
    ev = _new(Data)
    _s[0](ev, cookie)
    _s[1](ev, offset)
    _s[2](ev, length)
    _s[3](ev, data)
    return ev


def make_done(
    cookie: int,
    error: int,
    message: str,
    offset: int | None,
    _s: tuple[SlotSetter, ...] = _done_set,
) -> RequestDone:
    ev = _new(RequestDone)
    _s[0](ev, cookie)
    _s[1](ev, error)
    _s[2](ev, message)
    _s[3](ev, offset)
    return ev


# ---- step by step: returned by OptionProbe.receive_data (nbdtui.proto.option_probe) ----


class Greeted(ClientEvent):
    """The server's greeting. ``style`` is ``"oldstyle"``, ``"newstyle"`` (not fixed) or
    ``"newstyle-fixed"``; ``flags`` the handshake flags (newstyle) and ``info`` the
    export an oldstyle server serves (it has no names and no options)."""

    _fields = ("style", "flags", "info")
    __slots__ = _fields
    style: str
    flags: int
    info: ExportInfo | None

    def __init__(self, style: str, flags: int = 0, info: ExportInfo | None = None) -> None:
        s = self._set
        s[0](self, style)
        s[1](self, flags)
        s[2](self, info)


class OptionAnswered(ClientEvent):
    """Every reply to one option: the intermediate ones decoded (``servers`` for LIST,
    ``infos`` for INFO/GO as ``(type, value)`` pairs, ``contexts`` as ``(id, name)``),
    then the final ``reply`` (ACK or an error, with the server's ``message``)."""

    _fields = ("option", "reply", "message", "servers", "infos", "contexts")
    __slots__ = _fields
    option: int
    reply: int
    message: str
    servers: tuple[tuple[str, str], ...]
    infos: tuple[tuple[int, object], ...]
    contexts: tuple[tuple[int, str], ...]

    def __init__(
        self,
        option: int,
        reply: int,
        message: str = "",
        servers: tuple[tuple[str, str], ...] = (),
        infos: tuple[tuple[int, object], ...] = (),
        contexts: tuple[tuple[int, str], ...] = (),
    ) -> None:
        s = self._set
        s[0](self, option)
        s[1](self, reply)
        s[2](self, message)
        s[3](self, servers)
        s[4](self, infos)
        s[5](self, contexts)


class ExportNameAnswered(ClientEvent):
    """The server's answer to NBD_OPT_EXPORT_NAME: transmission begins."""

    _fields = ("size", "flags")
    __slots__ = _fields
    size: int
    flags: int

    def __init__(self, size: int, flags: int) -> None:
        s = self._set
        s[0](self, size)
        s[1](self, flags)


ProbeEvent = Greeted | OptionAnswered | ExportNameAnswered
