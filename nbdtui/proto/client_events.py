"""Every event the client's machines emit, in one place (as h11's ``_events.py``).

All derive from :class:`ClientEvent`. :class:`~nbdtui.proto.client_handshake.ClientHandshake`
emits the :data:`HandshakeEvent` kinds (:class:`StartTLS`, then exactly one of
:class:`Negotiated` / :class:`ExportsListed`);
:class:`~nbdtui.proto.client_transmission.ClientTransmission` emits the
:data:`TransmissionEvent` kinds (:class:`Data`, :class:`Hole`, :class:`BlockStatus`,
:class:`ChunkError`, and last for every request :class:`RequestDone`).

The events are frozen dataclasses. The transmission events have slots and fast
constructors (:func:`make_data`, :func:`make_done`) for the hot path of the parser.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbdtui.proto.types import ExportDetails, ExportInfo, SlotSetter, slot_setters


class ClientEvent:
    """Base class of the events of the client machines (no fields, no slots of its own,
    so that the slotted events stay without a ``__dict__``)."""

    __slots__ = ()


# ---- handshake: returned by ClientHandshake.receive_data ---------------------------


@dataclass(frozen=True)
class StartTLS(ClientEvent):
    """The server accepted NBD_OPT_STARTTLS: wrap the socket in TLS now, then call
    ``ClientHandshake.tls_established()`` and go on feeding (decrypted) bytes."""


@dataclass(frozen=True)
class Negotiated(ClientEvent):
    """The handshake finished (GO, EXPORT_NAME or oldstyle): transmission begins.

    ``protocol`` is ``"newstyle-fixed"``, ``"newstyle"`` or ``"oldstyle"`` (nbdinfo's words).
    ``meta_contexts`` maps each context the server agreed to (SET_META_CONTEXT) to its id.
    ``available_contexts`` is what LIST_META_CONTEXT returned, when it was asked for.
    """

    info: ExportInfo
    protocol: str
    structured: bool
    meta_contexts: tuple[tuple[str, int], ...] = ()
    available_contexts: tuple[str, ...] | None = None
    tls: bool = False
    #: TLS authenticated the server (verified certificate, or PSK); False when plaintext
    tls_verified: bool = False

    def context_id(self, name: str) -> int | None:
        for ctx, ident in self.meta_contexts:
            if ctx == name:
                return ident
        return None


@dataclass(frozen=True)
class ExportsListed(ClientEvent):
    """NBD_OPT_LIST finished (and INFO for each export when details were asked for)."""

    protocol: str
    exports: tuple[ExportDetails, ...]
    structured: bool = False
    tls: bool = False
    tls_verified: bool = False  # as in Negotiated


# ---- transmission: returned by ClientTransmission.receive_data / payload_received -----


@dataclass(frozen=True, slots=True)
class Data(ClientEvent):
    """``length`` bytes of the export at ``offset`` for READ ``cookie``.

    ``data`` holds them when they came through ``receive_data`` (``bytes``, or a
    ``memoryview`` of the data given with ``copy=False``); it is ``None`` when the
    driver received them itself (``payload_received``) into the target it was given.
    """

    cookie: int
    offset: int
    length: int
    data: bytes | memoryview | None = None


@dataclass(frozen=True, slots=True)
class Hole(ClientEvent):
    """``length`` bytes at ``offset`` read as zeroes (structured OFFSET_HOLE chunk)."""

    cookie: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class BlockStatus(ClientEvent):
    """One NBD_REPLY_TYPE_BLOCK_STATUS chunk: ``extents`` are ``(length, flags)`` pairs
    describing consecutive bytes from the request's offset."""

    cookie: int
    context_id: int
    extents: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ChunkError(ClientEvent):
    """An error chunk (``offset`` is set for NBD_REPLY_TYPE_ERROR_OFFSET)."""

    cookie: int
    error: int
    message: str = ""
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class RequestDone(ClientEvent):
    """The reply to ``cookie`` is complete; ``error`` is 0 or the first error reported."""

    cookie: int
    error: int = 0
    message: str = ""
    offset: int | None = None

    @property
    def ok(self) -> bool:
        return self.error == 0


HandshakeEvent = StartTLS | Negotiated | ExportsListed
TransmissionEvent = Data | Hole | BlockStatus | ChunkError | RequestDone

# Constructors for the events of every reply (the hot path), storing through the slot
# descriptors (see types.slot_setters). Positional, every field given.
_new = object.__new__
_data_set = slot_setters(Data, "cookie", "offset", "length", "data")
_done_set = slot_setters(RequestDone, "cookie", "error", "message", "offset")


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


@dataclass(frozen=True)
class Greeted(ClientEvent):
    """The server's greeting. ``style`` is ``"oldstyle"``, ``"newstyle"`` (not fixed) or
    ``"newstyle-fixed"``; ``flags`` the handshake flags (newstyle) and ``info`` the
    export an oldstyle server serves (it has no names and no options)."""

    style: str
    flags: int = 0
    info: ExportInfo | None = None


@dataclass(frozen=True)
class OptionAnswered(ClientEvent):
    """Every reply to one option: the intermediate ones decoded (``servers`` for LIST,
    ``infos`` for INFO/GO as ``(type, value)`` pairs, ``contexts`` as ``(id, name)``),
    then the final ``reply`` (ACK or an error, with the server's ``message``)."""

    option: int
    reply: int
    message: str = ""
    servers: tuple[tuple[str, str], ...] = ()
    infos: tuple[tuple[int, object], ...] = ()
    contexts: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class ExportNameAnswered(ClientEvent):
    """The server's answer to NBD_OPT_EXPORT_NAME: transmission begins."""

    size: int
    flags: int


ProbeEvent = Greeted | OptionAnswered | ExportNameAnswered
