"""Sans-IO server side of the NBD handshake (fixed newstyle, NO_ZEROES).

``ServerHandshake`` consumes option bytes and produces option replies; it never
touches a socket.  ``nbdtui.proto.server_connection.ServerConnection`` drives it and then
switches to the transmission phase.

Supported options: EXPORT_NAME, ABORT, LIST, INFO, GO (NBD_INFO_EXPORT, NAME,
DESCRIPTION, BLOCK_SIZE), STRUCTURED_REPLY, LIST_META_CONTEXT and
SET_META_CONTEXT (``base:allocation``).  STARTTLS, EXTENDED_HEADERS and unknown
options are answered with NBD_REP_ERR_UNSUP.

Theory of operation
-------------------

The connection (state OPTIONS of ``ServerConnection``) hands each option to
:meth:`ServerHandshake.handle_option`, which returns the reply bytes and the events.
There is no state enum: what the handshake remembers between options is
``structured`` (STRUCTURED_REPLY was accepted) and the SET_META_CONTEXT selection
(``meta_contexts`` for ``meta_export``); an event ending the handshake
(``TransmissionStarted`` or ``ConnectionClosed``) moves the connection out of OPTIONS.

==================  ==========================================  =======================
option              reply (events: ``OptionHandled``, and)      remembered / next
==================  ==========================================  =======================
EXPORT_NAME         size, flags, zeroes unless NO_ZEROES        transmission
                    (``TransmissionStarted``)
EXPORT_NAME         nothing: the spec allows no error here      closed
(unknown, invalid)  (only ``ConnectionClosed``, error)
ABORT               ACK (``ConnectionClosed``)                  closed
LIST                SERVER for each export, ACK; ERR_POLICY     --
                    when listing is disabled
INFO                INFO (EXPORT, NAME, DESCRIPTION,            --
                    BLOCK_SIZE), ACK; ERR_UNKNOWN
GO                  as INFO (``TransmissionStarted`` on ACK)    transmission
STRUCTURED_REPLY    ACK; ERR_INVALID when already agreed        ``structured``
LIST_META_CONTEXT   META_CONTEXT (id 0) for each match, ACK;    --
                    ERR_INVALID before STRUCTURED_REPLY
SET_META_CONTEXT    META_CONTEXT for each selected context,     ``meta_contexts``
                    ACK; ERR_INVALID before STRUCTURED_REPLY    (emptied on any error)
payload > 64 KiB    skipped unread; ERR_TOO_BIG (EXPORT_NAME:   --
                    ``ConnectionClosed``, error)
anything else       ERR_UNSUP                                   --
==================  ==========================================  =======================

Any other option whose data does not parse is answered with ERR_INVALID (a client's
mistake in one option does not end the handshake); ERR_UNKNOWN answers a name that
is not an export. The transmission flags sent with EXPORT_NAME, INFO and GO always
have HAS_FLAGS, and SEND_DF only with structured replies.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

from nbdtui.proto.constants import (
    BASE_ALLOCATION,
    DEFAULT_BLOCK_MAX,
    DEFAULT_BLOCK_MIN,
    DEFAULT_BLOCK_PREFERRED,
    IHAVEOPT,
    MAX_STRING,
    NBDMAGIC,
    OPTION_REPLY_MAGIC,
    ClientFlag,
    HandshakeFlag,
    Info,
    Option,
    OptionReply,
)
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.server_events import (
    ConnectionClosed,
    OptionHandled,
    ServerEvent,
    TransmissionStarted,
)
from nbdtui.proto.types import ExportInfo

GREETING = struct.pack(
    ">QQH", NBDMAGIC, IHAVEOPT, HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES
)
OPTION_HEADER = struct.Struct(">QII")  # IHAVEOPT, option, length
OPTION_REPLY_HEADER = struct.Struct(">QIII")  # magic, option, reply type, length
# Option payloads above this are skipped unread and answered with NBD_REP_ERR_TOO_BIG.
MAX_OPTION_LENGTH = 64 * 1024
# The id of the first context SET_META_CONTEXT selects (ids are opaque to clients).
BASE_ALLOCATION_ID = 1
# Context names LIST_META_CONTEXT may return (all of them live in the base: namespace).
KNOWN_CONTEXTS = (BASE_ALLOCATION,)

_KNOWN_CLIENT_FLAGS = int(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)

# One option's handler: (option, data) -> (reply bytes, events)
_OptionHandler = Callable[[int, bytes], tuple[bytes, list[ServerEvent]]]


# ---- helpers ---------------------------------------------------------------------------


class _Invalid(Exception):
    """An option payload that does not parse: answered with NBD_REP_ERR_INVALID."""


class _Reader:
    """Bounds-checked big-endian reads from one option payload."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def u16(self) -> int:
        return self._unpack(">H", 2)

    def u32(self) -> int:
        return self._unpack(">I", 4)

    def _unpack(self, fmt: str, size: int) -> int:
        if self.pos + size > len(self.data):
            raise _Invalid("option data is too short")
        value: int = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += size
        return value

    def string(self, length: int, what: str) -> str:
        if length > MAX_STRING:
            raise _Invalid(f"{what} is longer than {MAX_STRING} bytes")
        if self.pos + length > len(self.data):
            raise _Invalid(f"{what} runs past the end of the option data")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Invalid(f"{what} is not valid UTF-8") from None
        if "\0" in text:
            raise _Invalid(f"{what} contains a NUL character")
        return text

    def end(self) -> None:
        if self.pos != len(self.data):
            raise _Invalid("option data is longer than its fields")


def option_reply(option: int, reply: int, data: bytes = b"") -> bytes:
    """One fixed-newstyle option reply: magic, option, reply type, length, data."""
    return OPTION_REPLY_HEADER.pack(OPTION_REPLY_MAGIC, option, reply, len(data)) + data


def _string(text: str) -> bytes:
    return text.encode("utf-8")


def _canonical(info: ExportInfo) -> ExportInfo:
    """Fill the defaults a server announces: HAS_FLAGS and the block sizes."""
    return info.replace(
        flags=int(info.flags | TF.HAS_FLAGS),
        block_minimum=info.block_minimum or DEFAULT_BLOCK_MIN,
        block_preferred=info.block_preferred or DEFAULT_BLOCK_PREFERRED,
        block_maximum=info.block_maximum or DEFAULT_BLOCK_MAX,
    )


# ---- the state machine -----------------------------------------------------------------


class ServerHandshake:
    """Option haggling for one connection.

    ``exports`` maps export names to ``ExportInfo`` (name, size, transmission flags,
    description, block sizes; missing block sizes default to 1/4096/32 MiB).  An
    empty export name selects ``default_export`` when given.  ``allow_list=False``
    answers NBD_OPT_LIST with NBD_REP_ERR_POLICY.

    ``handle_option`` returns ``(reply bytes, events)``; after a TransmissionStarted or
    ConnectionClosed event the handshake accepts nothing more.
    """

    def __init__(
        self,
        exports: Mapping[str, ExportInfo],
        *,
        allow_list: bool = True,
        default_export: str | None = None,
    ):
        self.exports = {name: _canonical(info) for name, info in exports.items()}
        self.allow_list = allow_list
        self.default_export = default_export
        self.client_flags = 0
        self.structured = False
        self.meta_export: str | None = None  # export SET_META_CONTEXT referred to
        self.meta_contexts: tuple[tuple[str, int], ...] = ()

    @property
    def no_zeroes(self) -> bool:
        return bool(self.client_flags & ClientFlag.NO_ZEROES)

    def set_client_flags(self, flags: int) -> str | None:
        """Record the client's flags; return why the connection must close, if it must."""
        unknown = flags & ~_KNOWN_CLIENT_FLAGS
        if unknown:
            return f"client sent unknown handshake flags 0x{unknown:x}"
        self.client_flags = flags
        return None

    def resolve(self, name: str) -> ExportInfo | None:
        if name in self.exports:
            return self.exports[name]
        if name == "" and self.default_export is not None:
            return self.exports.get(self.default_export)
        return None

    def transmission_info(self, info: ExportInfo) -> ExportInfo:
        """The export as sent to this client: SEND_DF only with structured replies."""
        flags = info.flags | TF.SEND_DF if self.structured else info.flags & ~int(TF.SEND_DF)
        return info.replace(flags=int(flags))

    # -- options --------------------------------------------------------------------

    def handle_option(self, option: int, data: bytes) -> tuple[bytes, list[ServerEvent]]:
        if option == Option.EXPORT_NAME:
            return self._export_name(data)
        handlers: dict[int, _OptionHandler] = {
            Option.ABORT: self._abort,
            Option.LIST: self._list,
            Option.INFO: self._info_or_go,
            Option.GO: self._info_or_go,
            Option.STRUCTURED_REPLY: self._structured_reply,
            Option.LIST_META_CONTEXT: self._meta_context,
            Option.SET_META_CONTEXT: self._meta_context,
        }
        handler = handlers.get(option)
        if handler is None:
            return self._unsupported(option)
        try:
            return handler(option, data)
        except _Invalid as exc:
            if option == Option.SET_META_CONTEXT:
                self.meta_contexts, self.meta_export = (), None
            return self._error(option, OptionReply.ERR_INVALID, str(exc))

    def too_big(self, option: int, length: int) -> tuple[bytes, list[ServerEvent]]:
        """An option whose payload was skipped unread because it is too large."""
        if option == Option.EXPORT_NAME:
            return b"", [ConnectionClosed("NBD_OPT_EXPORT_NAME name is too long", error=True)]
        if option == Option.SET_META_CONTEXT:
            self.meta_contexts, self.meta_export = (), None
        message = f"option data of {length} bytes is larger than {MAX_OPTION_LENGTH}"
        return self._error(option, OptionReply.ERR_TOO_BIG, message)

    def _error(self, option: int, reply: int, message: str) -> tuple[bytes, list[ServerEvent]]:
        return option_reply(option, reply, _string(message)), [OptionHandled(option, reply)]

    def _unsupported(self, option: int) -> tuple[bytes, list[ServerEvent]]:
        try:
            name = f"NBD_OPT_{Option(option).name}"
        except ValueError:
            name = f"option {option}"
        return self._error(option, OptionReply.ERR_UNSUP, f"{name} is not supported")

    def _export_name(self, data: bytes) -> tuple[bytes, list[ServerEvent]]:
        try:
            reader = _Reader(data)
            name = reader.string(len(data), "export name")
        except _Invalid as exc:
            return b"", [ConnectionClosed(f"NBD_OPT_EXPORT_NAME: {exc}", error=True)]
        info = self.resolve(name)
        if info is None:
            return b"", [ConnectionClosed(f"NBD_OPT_EXPORT_NAME: no export {name!r}", error=True)]
        info = self.transmission_info(info)
        reply = struct.pack(">QH", info.size, info.flags)
        if not self.no_zeroes:
            reply += bytes(124)
        contexts = self.meta_contexts if self.meta_export == info.name else ()
        started = TransmissionStarted(info, self.structured, contexts, via="export_name")
        return reply, [OptionHandled(Option.EXPORT_NAME, 0, info.name), started]

    def _abort(self, option: int, data: bytes) -> tuple[bytes, list[ServerEvent]]:
        # The spec says to ignore any data sent with ABORT.
        reply = option_reply(option, OptionReply.ACK)
        closed = ConnectionClosed("client sent NBD_OPT_ABORT")
        return reply, [OptionHandled(option, OptionReply.ACK), closed]

    def _list(self, option: int, data: bytes) -> tuple[bytes, list[ServerEvent]]:
        if data:
            raise _Invalid("NBD_OPT_LIST takes no data")
        if not self.allow_list:
            return self._error(option, OptionReply.ERR_POLICY, "listing exports is disabled")
        out = bytearray()
        for name, info in self.exports.items():
            encoded = _string(name)
            payload = struct.pack(">I", len(encoded)) + encoded
            payload += _string(info.description or "")
            out += option_reply(option, OptionReply.SERVER, payload)
        out += option_reply(option, OptionReply.ACK)
        return bytes(out), [OptionHandled(option, OptionReply.ACK)]

    def _info_or_go(self, option: int, data: bytes) -> tuple[bytes, list[ServerEvent]]:
        reader = _Reader(data)
        name = reader.string(reader.u32(), "export name")
        requests = [reader.u16() for _ in range(reader.u16())]
        reader.end()
        info = self.resolve(name)
        if info is None:
            return self._error(option, OptionReply.ERR_UNKNOWN, f"no export named {name!r}")
        info = self.transmission_info(info)
        out = bytearray()

        def send_info(kind: int, payload: bytes) -> None:
            out.extend(option_reply(option, OptionReply.INFO, struct.pack(">H", kind) + payload))

        send_info(Info.EXPORT, struct.pack(">QH", info.size, info.flags))
        if Info.NAME in requests or name != info.name:
            send_info(Info.NAME, _string(info.name))
        if Info.DESCRIPTION in requests and info.description:
            send_info(Info.DESCRIPTION, _string(info.description))
        # Always sent: these are the defaults anyway, and telling is cheap.
        sizes = (info.block_minimum, info.block_preferred, info.block_maximum)
        send_info(Info.BLOCK_SIZE, struct.pack(">III", *sizes))
        out += option_reply(option, OptionReply.ACK)
        events: list[ServerEvent] = [OptionHandled(option, OptionReply.ACK, info.name)]
        if option == Option.GO:
            contexts = self.meta_contexts if self.meta_export == info.name else ()
            events.append(
                TransmissionStarted(
                    info,
                    self.structured,
                    contexts,
                    via="go",
                    block_size_requested=Info.BLOCK_SIZE in requests,
                )
            )
        return bytes(out), events

    def _structured_reply(self, option: int, data: bytes) -> tuple[bytes, list[ServerEvent]]:
        if data:
            raise _Invalid("NBD_OPT_STRUCTURED_REPLY takes no data")
        if self.structured:
            raise _Invalid("structured replies are already negotiated")
        self.structured = True
        return option_reply(option, OptionReply.ACK), [OptionHandled(option, OptionReply.ACK)]

    def _meta_context(self, option: int, data: bytes) -> tuple[bytes, list[ServerEvent]]:
        setting = option == Option.SET_META_CONTEXT
        if setting:
            # SET replaces the previous selection even when it fails.
            self.meta_contexts, self.meta_export = (), None
        if not self.structured:
            raise _Invalid("negotiate NBD_OPT_STRUCTURED_REPLY before meta contexts")
        reader = _Reader(data)
        name = reader.string(reader.u32(), "export name")
        queries = [reader.string(reader.u32(), "query") for _ in range(reader.u32())]
        reader.end()
        info = self.resolve(name)
        if info is None:
            return self._error(option, OptionReply.ERR_UNKNOWN, f"no export named {name!r}")
        selected: list[str] = []
        if not queries and not setting:
            selected = list(KNOWN_CONTEXTS)
        for query in queries:
            namespace, colon, leaf = query.partition(":")
            if not colon or not namespace:
                raise _Invalid(f"query {query!r} does not start with a namespace and a colon")
            if namespace != "base":
                continue  # unknown namespaces are ignored, as the spec requires
            if leaf == "" and not setting:
                matches = list(KNOWN_CONTEXTS)  # "base:" lists the whole namespace
            else:
                matches = [query] if query in KNOWN_CONTEXTS else []
            selected += [m for m in matches if m not in selected]
        out = bytearray()
        if setting:
            self.meta_contexts = tuple(
                (ctx, BASE_ALLOCATION_ID + i) for i, ctx in enumerate(selected)
            )
            self.meta_export = info.name
            for ctx, ident in self.meta_contexts:
                payload = struct.pack(">I", ident) + _string(ctx)
                out += option_reply(option, OptionReply.META_CONTEXT, payload)
        else:
            for ctx in selected:
                payload = struct.pack(">I", 0) + _string(ctx)
                out += option_reply(option, OptionReply.META_CONTEXT, payload)
        out += option_reply(option, OptionReply.ACK)
        return bytes(out), [OptionHandled(option, OptionReply.ACK, info.name)]
