"""Sans-IO NBD server connection, in the style of h11: bytes in, events out.

It combines the two halves of the server side: the handshake
(:class:`~nbdtui.proto.server_handshake.ServerHandshake` haggles over the options) and
the transmission phase (requests parsed here and checked by
:func:`~nbdtui.proto.server_transmission.check_request`, replies encoded by
:mod:`~nbdtui.proto.server_transmission`). It emits the events of
:mod:`~nbdtui.proto.server_events`::

    conn = ServerConnection({"disk": ExportInfo("disk", size, flags)})
    send(conn.data_to_send())                 # the greeting
    for event in conn.receive_data(received): # options are answered by the connection
        ...                                   # requests are answered by the caller:
    conn.send_reply(cookie) / conn.send_read(cookie, data) / conn.send_error(...)
    send(conn.data_to_send())

Theory of operation
-------------------

The greeting is queued at construction. :class:`ServerState` is the connection's state
(``state``, public); there is no transitions dict, ``_step`` dispatches on the state:

=============  ======================================================  =============
state          what moves it (events emitted)                          next state
=============  ======================================================  =============
CLIENT_FLAGS   the client's 4 flag bytes, known flags only             OPTIONS
CLIENT_FLAGS   unknown client flags (``ConnectionClosed``, error)      CLOSED
OPTIONS        an option, answered by ServerHandshake                  OPTIONS
               (``OptionHandled``; a refused option stays here)
OPTIONS        GO or EXPORT_NAME accepted (``OptionHandled``,          TRANSMISSION
               ``TransmissionStarted``)
OPTIONS        ABORT (``OptionHandled``, ``ConnectionClosed``); bad    CLOSED
               option magic or EXPORT_NAME of an unknown export
               (``ConnectionClosed``, error)
TRANSMISSION   a valid request (a ``Request`` subclass; WRITE once     TRANSMISSION
               its payload is in)
TRANSMISSION   an invalid request (``RequestRejected``; its error      TRANSMISSION
               reply is queued, a WRITE payload skipped)
TRANSMISSION   NBD_CMD_DISC (``DisconnectRequest``,                    CLOSED
               ``ConnectionClosed``)
TRANSMISSION   bad request magic (``ConnectionClosed``, error)         CLOSED
any but        end of file, ``receive_data(b"")``                      CLOSED
CLOSED         (``ConnectionClosed``)
CLOSED         anything: ``receive_data`` returns no events            CLOSED
=============  ======================================================  =============

Replies (``send_reply``, ``send_read``, ``send_read_data``, ``send_read_hole``,
``send_block_status``, ``send_done``, ``send_error``) may be sent in any order for the
requests handed out and not yet finished (``pending``); a reply for a cookie that is not
pending, or of a kind the request cannot take, raises ``ValueError`` (the caller's bug,
not the client's). The lifecycle of one request is in
:mod:`~nbdtui.proto.server_transmission`.

Received ``bytes`` are not copied: a WRITE payload that arrived in one piece is a
view of it.  Payloads that span several pieces are copied once.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from nbdtui.proto.constants import (
    IHAVEOPT,
    REQUEST_HEADER_SIZE,
    REQUEST_MAGIC,
    Command,
    command_name,
)
from nbdtui.proto.server_events import (
    ConnectionClosed,
    DisconnectRequest,
    Request,
    RequestRejected,
    ServerEvent,
    TransmissionStarted,
    WriteRequest,
)
from nbdtui.proto.server_handshake import (
    GREETING,
    MAX_OPTION_LENGTH,
    OPTION_HEADER,
    ServerHandshake,
)
from nbdtui.proto.server_transmission import (
    MAX_CHUNK_DATA,
    REQUEST_HEADER,
    REQUEST_TYPES,
    check_request,
    chunk_block_status,
    chunk_error,
    chunk_none,
    chunk_offset_data_header,
    chunk_offset_hole,
    error_reply,
    simple_reply,
)
from nbdtui.proto.types import ExportInfo

__all__ = ["ServerConnection", "ServerState"]

_CLIENT_FLAGS = struct.Struct(">I")
_EMPTY = memoryview(b"")


class ServerState(enum.Enum):
    CLIENT_FLAGS = "client-flags"
    OPTIONS = "options"
    TRANSMISSION = "transmission"
    CLOSED = "closed"


@dataclass
class _Pending:
    command: int
    offset: int
    length: int


class ServerConnection:
    """One client connection, from greeting to NBD_CMD_DISC.

    ``exports`` maps names to ``ExportInfo`` (size, transmission flags — HAS_FLAGS is
    added, SEND_DF follows structured replies —, description, block sizes).
    """

    def __init__(
        self,
        exports: Mapping[str, ExportInfo],
        *,
        allow_list: bool = True,
        default_export: str | None = None,
    ):
        self._handshake = ServerHandshake(
            exports, allow_list=allow_list, default_export=default_export
        )
        self.state = ServerState.CLIENT_FLAGS
        self.export: ExportInfo | None = None
        self.structured = False
        self.meta_contexts: tuple[tuple[str, int], ...] = ()
        self._out: list[bytes | bytearray | memoryview] = [GREETING]
        self._in: deque[memoryview] = deque()
        self._in_len = 0
        self._skip = 0
        self._option: tuple[int, int] | None = None  # option header awaiting its data
        self._write: tuple[int, int, int, int] | None = None  # WRITE awaiting its payload
        self._pending: dict[int, deque[_Pending]] = {}

    # ---- output -----------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued so far, as one bytes object (empties the queue)."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def buffers_to_send(self) -> list[bytes | bytearray | memoryview]:
        """Everything queued so far as separate buffers, so that large READ data
        can be written without joining it to its header (empties the queue)."""
        out, self._out = self._out, []
        return out

    @property
    def pending(self) -> int:
        """Requests handed out as events and not yet answered with a final reply."""
        return sum(len(q) for q in self._pending.values())

    # ---- input ------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[ServerEvent]:
        """Feed received bytes; ``b""`` means the client closed its side (EOF).

        ``bytes`` are kept by reference (WRITE payloads are views of them); other
        buffer types are copied first because their owner may reuse them.
        """
        if self._closed():
            return []
        if not data:
            return [self._close(self._eof_reason(), error=False)]
        if not isinstance(data, bytes):
            data = bytes(data)
        self._in.append(memoryview(data))
        self._in_len += len(data)
        events: list[ServerEvent] = []
        while not self._closed() and self._step(events):
            pass
        return events

    def _closed(self) -> bool:
        # a method, not ``self.state is ...`` inline: mypy would keep self.state narrowed
        # across _step(), which changes it
        return self.state is ServerState.CLOSED

    def _eof_reason(self) -> str:
        if self.state is ServerState.TRANSMISSION:
            if self._in_len or self._write or self._skip:
                return "client closed the connection in the middle of a request"
            return "client closed the connection without NBD_CMD_DISC"
        return "client closed the connection during the handshake"

    def _close(self, reason: str, *, error: bool) -> ConnectionClosed:
        self.state = ServerState.CLOSED
        self._in.clear()
        self._in_len = 0
        return ConnectionClosed(reason, error=error)

    def _take(self, n: int) -> memoryview:
        """Remove exactly ``n`` buffered bytes: a view when they lie in one piece."""
        if n == 0:
            return _EMPTY
        first = self._in[0]
        self._in_len -= n
        if len(first) >= n:
            if len(first) == n:
                self._in.popleft()
            else:
                self._in[0] = first[n:]
            return first[:n]
        out = bytearray(n)
        pos = 0
        while pos < n:
            piece = self._in[0]
            k = min(len(piece), n - pos)
            out[pos : pos + k] = piece[:k]
            pos += k
            if k == len(piece):
                self._in.popleft()
            else:
                self._in[0] = piece[k:]
        return memoryview(out).toreadonly()

    def _discard(self) -> bool:
        """Drop bytes of a payload being skipped; True when the skip is over."""
        while self._skip and self._in:
            piece = self._in[0]
            k = min(len(piece), self._skip)
            if k == len(piece):
                self._in.popleft()
            else:
                self._in[0] = piece[k:]
            self._skip -= k
            self._in_len -= k
        return self._skip == 0

    def _step(self, events: list[ServerEvent]) -> bool:
        if self._skip and not self._discard():
            return False
        if self.state is ServerState.CLIENT_FLAGS:
            return self._step_client_flags(events)
        if self.state is ServerState.OPTIONS:
            return self._step_option(events)
        return self._step_request(events)

    # ---- handshake --------------------------------------------------------------------

    def _step_client_flags(self, events: list[ServerEvent]) -> bool:
        if self._in_len < 4:
            return False
        (flags,) = _CLIENT_FLAGS.unpack(self._take(4))
        problem = self._handshake.set_client_flags(flags)
        if problem:
            events.append(self._close(problem, error=True))
        else:
            self.state = ServerState.OPTIONS
        return True

    def _step_option(self, events: list[ServerEvent]) -> bool:
        if self._option is None:
            if self._in_len < OPTION_HEADER.size:
                return False
            magic, option, length = OPTION_HEADER.unpack(self._take(OPTION_HEADER.size))
            if magic != IHAVEOPT:
                events.append(self._close(f"bad option magic 0x{magic:x}", error=True))
                return True
            if length > MAX_OPTION_LENGTH:
                reply, more = self._handshake.too_big(option, length)
                self._skip = length
                self._emit_handshake(reply, more, events)
                return True
            self._option = (option, length)
        option, length = self._option
        if self._in_len < length:
            return False
        self._option = None
        reply, more = self._handshake.handle_option(option, bytes(self._take(length)))
        self._emit_handshake(reply, more, events)
        return True

    def _emit_handshake(
        self, reply: bytes, more: list[ServerEvent], events: list[ServerEvent]
    ) -> None:
        if reply:
            self._out.append(reply)
        for event in more:
            if isinstance(event, TransmissionStarted):
                self.state = ServerState.TRANSMISSION
                self.export = event.info
                self.structured = event.structured
                self.meta_contexts = event.meta_contexts
                events.append(event)
            elif isinstance(event, ConnectionClosed):
                events.append(self._close(event.reason, error=event.error))
            else:
                events.append(event)

    # ---- transmission -----------------------------------------------------------------

    def _step_request(self, events: list[ServerEvent]) -> bool:
        if self._write is not None:
            flags, cookie, offset, length = self._write
            if self._in_len < length:
                return False
            self._write = None
            data = self._take(length)
            events.append(self._accept(WriteRequest(cookie, flags, offset, length, data)))
            return True
        if self._in_len < REQUEST_HEADER_SIZE:
            return False
        header = self._take(REQUEST_HEADER_SIZE)
        magic, flags, command, cookie, offset, length = REQUEST_HEADER.unpack(header)
        if magic != REQUEST_MAGIC:
            events.append(self._close(f"bad request magic 0x{magic:08x}", error=True))
            return True
        if command == Command.DISC:
            events.append(DisconnectRequest(cookie, flags))
            events.append(self._close("client sent NBD_CMD_DISC", error=False))
            return True
        assert self.export is not None
        problem = check_request(
            command,
            flags,
            offset,
            length,
            info=self.export,
            structured=self.structured,
            has_contexts=bool(self.meta_contexts),
        )
        if problem is not None:
            errno, message = problem
            if command == Command.WRITE:
                self._skip = length  # the payload follows anyway: skip it unread
            self._out.append(error_reply(cookie, errno, message, structured=self.structured))
            events.append(RequestRejected(cookie, command, flags, offset, length, errno, message))
            return True
        if command == Command.WRITE:
            self._write = (flags, cookie, offset, length)
            return True
        events.append(self._accept(REQUEST_TYPES[command](cookie, flags, offset, length)))
        return True

    def _accept(self, request: Request) -> Request:
        pending = _Pending(request.command, request.offset, request.length)
        self._pending.setdefault(request.cookie, deque()).append(pending)
        return request

    # ---- replies ----------------------------------------------------------------------

    def _lookup(self, cookie: int, *, final: bool) -> _Pending:
        queue = self._pending.get(cookie)
        if not queue:
            raise ValueError(f"no request with cookie {cookie:#x} is waiting for a reply")
        if not final:
            return queue[0]
        pending = queue.popleft()
        if not queue:
            del self._pending[cookie]
        return pending

    def _need_structured(self) -> None:
        if not self.structured:
            raise ValueError("structured replies were not negotiated")

    def send_reply(self, cookie: int) -> None:
        """Success for any request but READ and BLOCK_STATUS (a simple reply, which
        the spec allows even with structured replies when there is no payload)."""
        pending = self._lookup(cookie, final=False)
        if pending.command in (Command.READ, Command.BLOCK_STATUS):
            raise ValueError(f"{command_name(pending.command)} needs a reply with data")
        self._lookup(cookie, final=True)
        self._out.append(simple_reply(cookie))

    def send_error(
        self, cookie: int, error: int, message: str = "", *, offset: int | None = None
    ) -> None:
        """Fail a request: an ERROR (or ERROR_OFFSET) chunk when structured replies are
        on, else a simple reply with the error (and no data, even for READ)."""
        self._lookup(cookie, final=True)
        if self.structured:
            self._out.append(chunk_error(cookie, error, message, offset=offset, done=True))
        else:
            self._out.append(simple_reply(cookie, error))

    def send_read(self, cookie: int, data: bytes | bytearray | memoryview) -> None:
        """The whole successful reply to a READ (one OFFSET_DATA chunk when structured)."""
        pending = self._lookup(cookie, final=False)
        if pending.command != Command.READ or len(data) != pending.length:
            raise ValueError(f"cookie {cookie:#x}: send_read needs a READ and all its data")
        self._lookup(cookie, final=True)
        if not self.structured:
            self._out += [simple_reply(cookie), data]
        elif not data:
            self._out.append(chunk_none(cookie))
        else:
            self._send_data_chunks(cookie, pending.offset, data, done=True)

    def send_read_data(
        self, cookie: int, offset: int, data: bytes | bytearray | memoryview, *, done: bool = False
    ) -> None:
        """One OFFSET_DATA chunk of a structured READ reply."""
        self._need_structured()
        self._check_content(cookie, offset, len(data))
        if done:
            self._lookup(cookie, final=True)
        self._send_data_chunks(cookie, offset, data, done=done)

    def send_read_hole(self, cookie: int, offset: int, length: int, *, done: bool = False) -> None:
        """One OFFSET_HOLE chunk (the range reads as zeroes) of a structured READ reply."""
        self._need_structured()
        self._check_content(cookie, offset, length)
        if done:
            self._lookup(cookie, final=True)
        self._out.append(chunk_offset_hole(cookie, offset, length, done=done))

    def send_done(self, cookie: int) -> None:
        """End a structured reply with an NBD_REPLY_TYPE_NONE chunk."""
        self._need_structured()
        self._lookup(cookie, final=True)
        self._out.append(chunk_none(cookie))

    def send_block_status(
        self, cookie: int, context_id: int, extents: list[tuple[int, int]], *, done: bool = True
    ) -> None:
        """One BLOCK_STATUS chunk: (length, flags) descriptors from the request offset."""
        self._need_structured()
        pending = self._lookup(cookie, final=False)
        if pending.command != Command.BLOCK_STATUS:
            raise ValueError(f"cookie {cookie:#x} is not a BLOCK_STATUS request")
        chunk = chunk_block_status(cookie, context_id, extents, done=done)
        if done:
            self._lookup(cookie, final=True)
        self._out.append(chunk)

    def _check_content(self, cookie: int, offset: int, length: int) -> None:
        pending = self._lookup(cookie, final=False)
        if pending.command != Command.READ:
            raise ValueError(f"cookie {cookie:#x} is not a READ request")
        end = pending.offset + pending.length
        if length <= 0 or offset < pending.offset or offset + length > end:
            raise ValueError(f"chunk {offset}+{length} lies outside the READ request")

    def _send_data_chunks(
        self, cookie: int, offset: int, data: bytes | bytearray | memoryview, *, done: bool
    ) -> None:
        view = memoryview(data).cast("B")
        pos = 0
        while pos < len(view):
            part = view[pos : pos + MAX_CHUNK_DATA]
            last = pos + len(part) == len(view)
            header = chunk_offset_data_header(cookie, offset + pos, len(part), done=done and last)
            self._out += [header, part]
            pos += len(part)
