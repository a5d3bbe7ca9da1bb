"""Client side of the NBD handshake as a sans-IO state machine (in the style of h11).

Theory of operation
-------------------

Two layers. The *parser* (:class:`_State`, this table) cuts the server's bytes into
messages; the *negotiation* is a generator (``_negotiate_go``, ``_negotiate_list`` or
``_negotiate_newstyle``, chosen by the greeting) that yields one request at a time
(send an option, send EXPORT_NAME, wait for TLS) and is resumed with the answer. What
the generator yields next decides the parser's next state; when it returns, its value
(``Negotiated`` or ``ExportsListed``) is the last event and the state is DONE. There is
no transitions dict: ``_step`` dispatches on the state and ``_advance`` sets the next one.

===================  ===========================================  ===================
state                what moves it                                next state
===================  ===========================================  ===================
GREETING             oldstyle greeting (emits ``Negotiated``)     DONE
GREETING             fixed newstyle greeting (client flags and    OPTION_REPLY
                     the first option queued)
GREETING             non-fixed newstyle greeting (client flags    EXPORT_NAME_REPLY
                     and EXPORT_NAME queued)
OPTION_REPLY         an intermediate reply (SERVER, INFO,         OPTION_REPLY
                     META_CONTEXT) to the option awaited
OPTION_REPLY         the final reply (ACK or error), the          OPTION_REPLY
                     negotiation sends the next option
OPTION_REPLY         final reply to GO is ERR_UNSUP (EXPORT_NAME  EXPORT_NAME_REPLY
                     queued)
OPTION_REPLY         ACK to STARTTLS (emits ``StartTLS``)         WAIT_TLS
OPTION_REPLY         the last final reply (emits ``Negotiated``   DONE
                     or ``ExportsListed``; LIST queues ABORT)
EXPORT_NAME_REPLY    size, flags (and zeroes unless NO_ZEROES)    DONE
                     (emits ``Negotiated``)
WAIT_TLS             ``tls_established()`` (the next option is    OPTION_REPLY
                     queued)
DONE                 any bytes: kept in ``trailing_data``         DONE
GREETING,            an error raised from ``receive_data``        FAILED
OPTION_REPLY,
WAIT_TLS
FAILED               any call to ``receive_data``: raises the     FAILED
                     same error again
===================  ===========================================  ===================

Errors, per state: a bad magic or an impossible message (GREETING, OPTION_REPLY), a
reply to an option that was not sent, or of a type that option cannot receive
(OPTION_REPLY), plaintext bytes while TLS is being set up (WAIT_TLS) are
``ProtocolError``; a greeting that cannot do what was asked (list or TLS with oldstyle
or non-fixed newstyle) and a refusal by the server (OPTION_REPLY) are
``HandshakeError``. ``tls_established()`` outside WAIT_TLS is a ``RuntimeError`` (the
driver's bug). End of file is reported by ``eof_error()`` for each state.

Driving it
----------

No sockets, no asyncio, no clocks: the driver feeds whatever bytes arrive to
:meth:`ClientHandshake.receive_data` (any fragmentation), sends whatever
:meth:`ClientHandshake.data_to_send` returns, and reacts to the events:

``StartTLS``
    The server accepted NBD_OPT_STARTTLS. Send ``data_to_send()`` (empty at this point),
    wrap the socket in TLS, call :meth:`ClientHandshake.tls_established`, then go on
    feeding the decrypted bytes. Nothing is queued while TLS is being set up.
``Negotiated``
    The handshake is over (oldstyle greeting, NBD_OPT_GO, or NBD_OPT_EXPORT_NAME);
    ``done`` is true and the transmission phase begins. Bytes that arrived after the
    end of the handshake are in ``trailing_data``.
``ExportsListed``
    List mode finished. NBD_OPT_ABORT is queued in ``data_to_send()``: send it, then
    close (the server may answer it with an ACK, which lands in ``trailing_data``, or
    simply close).

Exactly one of ``Negotiated`` / ``ExportsListed`` ends a successful handshake.

Options are sent one at a time, each after the final reply to the previous one (the
spec requires it for fixed newstyle; it also keeps error attribution exact). The order:
STARTTLS (if ``tls``), STRUCTURED_REPLY (if asked), then either

* connect mode: LIST_META_CONTEXT with no query (if ``list_contexts`` and structured
  replies were agreed), SET_META_CONTEXT (if structured and contexts were asked), GO
  asking NAME, DESCRIPTION and BLOCK_SIZE; GO answered with ERR_UNSUP falls back to
  EXPORT_NAME; or
* list mode: LIST, then, with ``list_details``, for each export LIST_META_CONTEXT (if
  structured) and INFO; then ABORT.

Errors (raised from ``receive_data``; afterwards every call raises the same error):

* :class:`~nbdtui.errors.ProtocolError`: the server broke the protocol (bad magic,
  impossible length, reply to an option that was not sent, ...), or sent more than
  the caps of :mod:`nbdtui.proto.option_caps` allow (``MAX_OPTION_REPLIES`` and
  ``MAX_OPTION_REPLY_BYTES`` for the replies to one option, ``MAX_HANDSHAKE_REPLY_BYTES``
  for the whole handshake): memory stays bounded whatever a server streams.
* :class:`~nbdtui.errors.HandshakeError` and its subclasses ``TLSRequiredError`` and
  ``ExportNotFoundError``: the server refused something nbdtui needs. ``reply`` and
  ``option`` name the error reply and the option it answered (when there was one), and
  ``server_message`` holds the server's own text (``""`` when it sent none). When the
  server speaks fixed newstyle, NBD_OPT_ABORT is queued before the error is raised: a
  polite driver sends ``data_to_send()`` before closing (a soft disconnect).

End of file: ``receive_data`` never sees EOF. When the connection closes before
``done``, the driver asks :meth:`ClientHandshake.eof_error` what to raise. In particular
a server that closes right after NBD_OPT_EXPORT_NAME (it cannot send an error there)
yields ``ExportNotFoundError("export 'NAME' not found")`` with
``option=NBD_OPT_EXPORT_NAME`` and ``reply=None``.

After ``done``, ``receive_data`` keeps appending to ``trailing_data`` and returns no
events.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Sequence

from nbdtui.errors import (
    ExportNotFoundError,
    HandshakeError,
    NbdError,
    ProtocolError,
    TLSRequiredError,
)
from nbdtui.proto import option_codec as wire
from nbdtui.proto.client_events import ExportsListed, HandshakeEvent, Negotiated, StartTLS
from nbdtui.proto.constants import (
    IHAVEOPT,
    HandshakeFlag,
    Info,
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
from nbdtui.proto.option_replies import INTERMEDIATE, fold_infos, take_reply
from nbdtui.proto.records import Record
from nbdtui.proto.types import ExportDetails, ExportInfo

_INFO_REQUESTS = (Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE)

# The reply type an option may receive (any number of times) before its final reply.
TLS_REQUIRED_MESSAGE = "server requires TLS: use nbds://"


class _State(enum.Enum):
    GREETING = enum.auto()
    OPTION_REPLY = enum.auto()  # waiting for replies to self._awaiting
    EXPORT_NAME_REPLY = enum.auto()
    WAIT_TLS = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


# ---- requests of the negotiation coroutine to the state machine ---------------------
# (Records: a NamedTuple costs about 70 µs to define, a frozen dataclass 450, and these
# are defined at every start of `nbdtui info`)


class _Send(Record):
    """Send one option; the coroutine resumes with its :class:`_Reply`."""

    _fields = ("option", "payload")
    __slots__ = _fields
    option: Option
    payload: bytes

    def __init__(self, option: Option, payload: bytes = b"") -> None:
        s = self._set
        s[0](self, option)
        s[1](self, payload)


class _SendExportName(Record):
    """Send NBD_OPT_EXPORT_NAME; the coroutine resumes with its :class:`_ExportNameReply`."""

    _fields = ("name",)
    __slots__ = _fields
    name: bytes

    def __init__(self, name: bytes) -> None:
        self._set[0](self, name)


class _AwaitTLS(Record):
    """Emit StartTLS and pause until ``tls_established()``."""

    __slots__ = ()


class _Reply(Record):
    """All replies to one option: decoded intermediate replies, then the final one.

    Only the kind of intermediate reply the option may receive is ever filled:
    ``servers`` (LIST), ``infos`` (INFO, GO), ``contexts`` (the META_CONTEXT options).
    """

    _fields = ("reply", "servers", "infos", "contexts", "message")
    __slots__ = _fields
    reply: int  # ACK or an error
    servers: tuple[tuple[str, str], ...]  # (name, description)
    infos: tuple[wire.InfoItem, ...]
    contexts: tuple[tuple[int, str], ...]  # (id, name)
    message: str  # the server's text of an error reply

    def __init__(
        self,
        reply: int,
        servers: tuple[tuple[str, str], ...] = (),
        infos: tuple[wire.InfoItem, ...] = (),
        contexts: tuple[tuple[int, str], ...] = (),
        message: str = "",
    ) -> None:
        s = self._set
        s[0](self, reply)
        s[1](self, servers)
        s[2](self, infos)
        s[3](self, contexts)
        s[4](self, message)

    @property
    def ok(self) -> bool:
        return self.reply == OptionReply.ACK


class _ExportNameReply(Record):
    """The server's answer to NBD_OPT_EXPORT_NAME."""

    _fields = ("size", "flags")
    __slots__ = _fields
    size: int
    flags: int

    def __init__(self, size: int, flags: int) -> None:
        s = self._set
        s[0](self, size)
        s[1](self, flags)


_Request = _Send | _SendExportName | _AwaitTLS
# What the machine resumes the coroutine with: the answer to the request it yielded
# (None after _AwaitTLS, and to start it).
_Answer = _Reply | _ExportNameReply | None
_Negotiation = Generator[_Request, _Answer, Negotiated | ExportsListed]


class ClientHandshake:
    """The client half of the NBD handshake; see the module documentation.

    The constructor raises HandshakeError for an export or context name that NBD cannot
    carry (more than 4096 bytes of UTF-8, or a NUL), before anything is sent.
    """

    def __init__(
        self,
        *,
        export_name: str = "",
        list_exports: bool = False,
        list_details: bool = False,
        structured_replies: bool = True,
        meta_contexts: Sequence[str] = ("base:allocation",),
        list_contexts: bool = False,
        tls: bool = False,
    ) -> None:
        if isinstance(meta_contexts, str):  # one name, not a sequence of characters
            meta_contexts = (meta_contexts,)
        try:
            self._name_bytes = wire.encode_string(export_name, "export name")
            self._context_bytes = tuple(
                wire.encode_string(c, "metadata context name") for c in meta_contexts
            )
        except ValueError as exc:
            raise _handshake_error(str(exc)) from None
        self._name = export_name
        self._list_exports = list_exports
        self._list_details = list_details
        self._want_structured = structured_replies
        self._list_contexts = list_contexts
        self._tls = tls

        self._state = _State.GREETING
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._trailing = bytearray()
        self._events: list[HandshakeEvent] = []  # produced outside receive_data, returned by it
        self._error: NbdError | None = None
        self._negotiation: _Negotiation | None = None
        self._no_zeroes = False
        self._tls_active = False
        self._awaiting: Option | None = None
        # intermediate replies to the option awaited (see _Reply)
        self._servers: list[tuple[str, str]] = []
        self._infos: list[wire.InfoItem] = []
        self._contexts: list[tuple[int, str]] = []
        self._caps = ReplyCaps()  # what the option replies kept so far (option_caps)
        self._unsupported: set[Option] = set()  # options answered with ERR_UNSUP
        self._listed: int | None = None  # list mode: the exports NBD_OPT_LIST gave
        self._described = 0  # and how many of them were asked about (details)

    # ---- public API ------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[HandshakeEvent]:
        """Feed bytes as they arrive; returns the events they complete."""
        if self._error is not None:
            raise self._error
        if self._state is _State.DONE:
            self._trailing += data
            return []
        self._inbox += data
        try:
            while self._step():
                pass
        except NbdError as exc:
            self._error = exc
            self._state = _State.FAILED
            raise
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Bytes queued for the server (``b""`` when none); the queue is emptied."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def tls_established(self) -> None:
        """The socket is now wrapped in TLS: continue the negotiation inside it."""
        if self._state is not _State.WAIT_TLS:
            raise RuntimeError("tls_established() called while no TLS upgrade was pending")
        self._tls_active = True
        self._advance(None)

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the end of the handshake (they belong to transmission)."""
        return bytes(self._trailing)

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def listing(self) -> tuple[int, int | None] | None:
        """Where a listing is, for a driver that gives up waiting: ``(exports received,
        None)`` while NBD_OPT_LIST is answered, ``(exports described, exports listed)``
        while the details are asked; ``None`` before the listing (and in connect mode)."""
        if self._listed is not None:
            return (self._described, self._listed)
        if self._awaiting is Option.LIST:
            return (len(self._servers), None)
        return None

    def eof_error(self) -> NbdError | None:
        """What the driver should raise when the server closes the connection now.

        ``None`` once the handshake is done (closing after ExportsListed is normal).
        """
        if self._error is not None or self._state is _State.DONE:
            return self._error
        if self._state is _State.GREETING:
            if not self._inbox:
                return _handshake_error(
                    "server closed the connection without sending the NBD greeting"
                )
            return ProtocolError("server closed the connection in the middle of the NBD greeting")
        if self._state is _State.WAIT_TLS:
            return _handshake_error("server closed the connection instead of starting TLS")
        if self._state is _State.EXPORT_NAME_REPLY:
            if not self._inbox:
                # The server cannot send an error after EXPORT_NAME: it must disconnect.
                return _handshake_error(
                    f"export '{self._name}' not found",
                    cls=ExportNotFoundError,
                    option=Option.EXPORT_NAME,
                )
            return ProtocolError(
                "server closed the connection in the middle of its reply to NBD_OPT_EXPORT_NAME"
            )
        assert self._awaiting is not None
        return _handshake_error(
            "server closed the connection during the handshake "
            f"(while nbdtui waited for the reply to {wire.option_name(self._awaiting)})",
            option=self._awaiting,
        )

    # ---- parsing ---------------------------------------------------------------------

    def _step(self) -> bool:
        """Consume one message from the inbox if it is complete; False when stuck."""
        state = self._state
        if state is _State.GREETING:
            return self._parse_greeting()
        if state is _State.OPTION_REPLY:
            return self._parse_option_reply()
        if state is _State.EXPORT_NAME_REPLY:
            return self._parse_export_name_reply()
        if state is _State.WAIT_TLS:
            if self._inbox:
                raise ProtocolError("server sent plaintext data after accepting NBD_OPT_STARTTLS")
            return False
        if state is _State.DONE:
            self._trailing += self._inbox
            self._inbox.clear()
        return False

    def _parse_greeting(self) -> bool:
        buf = self._inbox
        style = greeting_style(buf)
        if style is None:
            return False
        if style == IHAVEOPT:
            flags = take_newstyle_flags(buf)
            if flags is None:
                return False
            self._start_newstyle(flags)
            return True
        if self._list_exports:
            raise _handshake_error("server uses the oldstyle protocol: it cannot list exports")
        if self._tls:
            raise _handshake_error("server uses the oldstyle protocol: it does not support TLS")
        oldstyle = take_oldstyle(buf)
        if oldstyle is None:
            return False
        size, flags = oldstyle
        # u16 global flags, then u16 transmission flags: the latter are the low half.
        info = ExportInfo(name="", size=size, flags=flags & 0xFFFF)
        self._events.append(Negotiated(info=info, protocol="oldstyle", structured=False))
        self._state = _State.DONE
        return True

    def _start_newstyle(self, flags: int) -> None:
        fixed = bool(flags & HandshakeFlag.FIXED_NEWSTYLE)
        self._no_zeroes = bool(flags & HandshakeFlag.NO_ZEROES)
        if not fixed:
            if self._list_exports:
                raise _handshake_error(
                    "server uses the non-fixed newstyle protocol: it cannot list exports"
                )
            if self._tls:
                raise _handshake_error(
                    "server uses the non-fixed newstyle protocol: it does not support TLS"
                )
        self._outbox += client_flags(flags)
        if not fixed:
            self._negotiation = self._negotiate_newstyle()
        elif self._list_exports:
            self._negotiation = self._negotiate_list()
        else:
            self._negotiation = self._negotiate_go()
        self._advance(None)

    def _parse_option_reply(self) -> bool:
        awaiting = self._awaiting
        assert awaiting is not None
        taken = take_reply(self._inbox, awaiting, self._caps)
        if taken is None:
            return False
        reply, payload = taken
        if reply == INTERMEDIATE.get(awaiting):
            if reply == OptionReply.SERVER:
                self._servers.append(wire.decode_server(payload))
            elif reply == OptionReply.INFO:
                self._infos.append(wire.decode_info(payload))
            else:
                self._contexts.append(wire.decode_meta_context(payload))
            return True
        message = wire.decode_message(payload) if wire.is_error(reply) else ""
        result = _Reply(
            reply=reply,
            servers=tuple(self._servers),
            infos=tuple(self._infos),
            contexts=tuple(self._contexts),
            message=message,
        )
        self._servers, self._infos, self._contexts = [], [], []
        self._caps.answered()
        self._awaiting = None
        self._advance(result)
        return True

    def _parse_export_name_reply(self) -> bool:
        reply = take_export_name_reply(self._inbox, self._no_zeroes)
        if reply is None:
            return False
        self._advance(_ExportNameReply(*reply))
        return True

    # ---- driving the negotiation coroutine ---------------------------------------------

    def _advance(self, value: _Answer) -> None:
        """Resume the negotiation with ``value`` and carry out what it asks next."""
        assert self._negotiation is not None
        try:
            request = self._negotiation.send(value)
        except StopIteration as stop:
            result: Negotiated | ExportsListed = stop.value
            self._events.append(result)
            self._state = _State.DONE
            return
        if isinstance(request, _Send):
            self._outbox += wire.encode_option(request.option, request.payload)
            self._awaiting = request.option
            self._state = _State.OPTION_REPLY
        elif isinstance(request, _SendExportName):
            self._outbox += wire.encode_option(Option.EXPORT_NAME, request.name)
            self._state = _State.EXPORT_NAME_REPLY
        else:
            self._events.append(StartTLS())
            self._state = _State.WAIT_TLS

    def _negotiate_newstyle(self) -> _Negotiation:
        """Non-fixed newstyle: EXPORT_NAME is the only option such a server knows."""
        answer = yield from _export_name(self._name_bytes)
        info = ExportInfo(name=self._name, size=answer.size, flags=answer.flags)
        return Negotiated(info=info, protocol="newstyle", structured=False)

    def _negotiate_go(self) -> _Negotiation:
        yield from self._start_tls()
        structured = yield from self._structured_reply()
        available = None
        if self._list_contexts and structured:
            available = yield from self._list_meta_contexts(self._name_bytes, per_export=False)
        agreed: tuple[tuple[str, int], ...] = ()
        if structured and self._context_bytes:
            agreed = yield from self._set_meta_contexts()
        payload = wire.encode_info_request(self._name_bytes, _INFO_REQUESTS)
        reply = yield from _ask(Option.GO, payload)
        if reply.ok:
            info = self._export_info(self._name, reply, Option.GO)
        elif reply.reply == OptionReply.ERR_UNSUP:
            answer = yield from _export_name(self._name_bytes)
            info = ExportInfo(name=self._name, size=answer.size, flags=answer.flags)
        else:
            self._check_fatal(reply, Option.GO)
            if reply.reply == OptionReply.ERR_UNKNOWN:
                text = f"export '{self._name}' not found"
                raise self._give_up(text, reply, Option.GO, cls=ExportNotFoundError)
            reason = wire.refusal(reply.reply, reply.message)
            raise self._give_up(
                f"server refused export '{self._name}' ({reason})", reply, Option.GO
            )
        return Negotiated(
            info=info,
            protocol="newstyle-fixed",
            structured=structured,
            meta_contexts=agreed,
            available_contexts=available,
            tls=self._tls_active,
        )

    def _negotiate_list(self) -> _Negotiation:
        yield from self._start_tls()
        structured = yield from self._structured_reply()
        reply = yield from _ask(Option.LIST)
        if not reply.ok:
            self._check_fatal(reply, Option.LIST)
            reason = wire.refusal(reply.reply, reply.message)
            raise self._give_up(f"server refuses to list exports ({reason})", reply, Option.LIST)
        exports = []
        self._listed = len(reply.servers)
        for index, (name, description) in enumerate(reply.servers):
            self._described = index
            contexts = info = None
            name_bytes = name.encode("utf-8")
            if self._list_details and structured and self._supported(Option.LIST_META_CONTEXT):
                contexts = yield from self._list_meta_contexts(name_bytes, per_export=True)
            if self._list_details and self._supported(Option.INFO):
                payload = wire.encode_info_request(name_bytes, _INFO_REQUESTS)
                answer = yield from _ask(Option.INFO, payload)
                if answer.ok:
                    info = self._export_info(name, answer, Option.INFO)
                else:
                    self._check_fatal(answer, Option.INFO, per_export=True)
            exports.append(ExportDetails(name, description, info=info, contexts=contexts))
        self._outbox += wire.encode_option(Option.ABORT)
        return ExportsListed(
            protocol="newstyle-fixed",
            exports=tuple(exports),
            structured=structured,
            tls=self._tls_active,
        )

    # ---- one option each ---------------------------------------------------------------

    def _start_tls(self) -> Generator[_Request, _Answer, None]:
        if not self._tls:
            return
        reply = yield from _ask(Option.STARTTLS)
        if not reply.ok:
            detail = wire.refusal(reply.reply, reply.message, quiet=OptionReply.ERR_UNSUP)
            text = "server does not support TLS" + (f" ({detail})" if detail else "")
            raise self._give_up(text, reply, Option.STARTTLS)
        yield _AwaitTLS()

    def _structured_reply(self) -> Generator[_Request, _Answer, bool]:
        if not self._want_structured:
            return False
        reply = yield from _ask(Option.STRUCTURED_REPLY)
        if not reply.ok:
            self._check_fatal(reply, Option.STRUCTURED_REPLY)
        return reply.ok

    def _list_meta_contexts(
        self, name: bytes, *, per_export: bool
    ) -> Generator[_Request, _Answer, tuple[str, ...] | None]:
        payload = wire.encode_meta_context_request(name, ())
        reply = yield from _ask(Option.LIST_META_CONTEXT, payload)
        if not reply.ok:
            # The spec: after an error, disregard any context replies already sent.
            self._check_fatal(reply, Option.LIST_META_CONTEXT, per_export=per_export)
            return None
        return tuple(context for _ident, context in reply.contexts)

    def _set_meta_contexts(self) -> Generator[_Request, _Answer, tuple[tuple[str, int], ...]]:
        payload = wire.encode_meta_context_request(self._name_bytes, self._context_bytes)
        reply = yield from _ask(Option.SET_META_CONTEXT, payload)
        if not reply.ok:
            self._check_fatal(reply, Option.SET_META_CONTEXT)
            return ()  # no context agreed: block status is unavailable, nothing more
        return tuple((context, ident) for ident, context in reply.contexts)

    # ---- helpers -----------------------------------------------------------------------

    def _export_info(self, requested: str, reply: _Reply, option: Option) -> ExportInfo:
        """Fold the NBD_REP_INFO replies to a successful INFO/GO into an ExportInfo."""
        info = fold_infos(reply.infos, requested)
        if info is None:
            raise ProtocolError(
                f"server accepted {wire.option_name(option)} for export '{requested}' "
                "without sending NBD_INFO_EXPORT"
            )
        return info

    def _supported(self, option: Option) -> bool:
        """False once the server answered ``option`` with ERR_UNSUP (no point asking again)."""
        return option not in self._unsupported

    def _check_fatal(self, reply: _Reply, option: Option, *, per_export: bool = False) -> None:
        """Raise for the error replies that end the negotiation whatever the option.

        ERR_SHUTDOWN always does (the spec demands a soft disconnect). ERR_TLS_REQD does
        unless it concerns a single export of a listing (SELECTIVETLS servers may hide
        TLS-only exports that way). Also remembers ERR_UNSUP.
        """
        if reply.reply == OptionReply.ERR_UNSUP:
            self._unsupported.add(option)
        if reply.reply == OptionReply.ERR_SHUTDOWN:
            text = "server is shutting down" + (f" ({reply.message})" if reply.message else "")
            raise self._give_up(text, reply, option)
        if reply.reply == OptionReply.ERR_TLS_REQD:
            if self._tls_active:
                raise ProtocolError(
                    f"server answered {wire.option_name(option)} with NBD_REP_ERR_TLS_REQD "
                    "although TLS is already active"
                )
            if not per_export:
                raise self._give_up(TLS_REQUIRED_MESSAGE, reply, option, cls=TLSRequiredError)

    def _give_up(
        self,
        text: str,
        reply: _Reply,
        option: Option,
        *,
        cls: type[HandshakeError] = HandshakeError,
    ) -> HandshakeError:
        """The error for a refusal by the server; queues NBD_OPT_ABORT (soft disconnect)."""
        self._outbox += wire.encode_option(Option.ABORT)
        return _handshake_error(text, cls=cls, reply=reply, option=option)


def _handshake_error(
    text: str,
    *,
    cls: type[HandshakeError] = HandshakeError,
    reply: _Reply | None = None,
    option: Option | None = None,
) -> HandshakeError:
    """A HandshakeError (or subclass) with ``reply``, ``option`` and ``server_message`` set."""
    exc = cls(text, reply=reply.reply if reply else None, option=option)
    # HandshakeError (nbdtui.errors) does not declare server_message; the handshake is
    # what sets it, for every HandshakeError it raises.
    exc.server_message = reply.message if reply else ""  # type: ignore[attr-defined]
    return exc


# ---- the requests the coroutine yields, typed by their answers -------------------------


def _ask(option: Option, payload: bytes = b"") -> Generator[_Request, _Answer, _Reply]:
    """Send one option; returns all the replies to it."""
    answer = yield _Send(option, payload)
    assert isinstance(answer, _Reply)
    return answer


def _export_name(name: bytes) -> Generator[_Request, _Answer, _ExportNameReply]:
    """Send NBD_OPT_EXPORT_NAME; returns the export's size and flags."""
    answer = yield _SendExportName(name)
    assert isinstance(answer, _ExportNameReply)
    return answer
