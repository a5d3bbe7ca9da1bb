"""Client side of the NBD transmission phase as a sans-IO state machine.

No sockets, no asyncio: :class:`ClientTransmission` encodes requests and turns the
bytes of the server's replies into events. Requests are tracked by cookie so that every
reply can be checked against the request it answers (NetworkBlockDevice/nbd
``doc/proto.md``, "Transmission" and "Structured reply types").

Theory of operation
-------------------

Requests and replies are independent. ``request()`` may be called in any state; it
records the request by cookie (``in_flight``) until its final reply has been parsed.
After NBD_CMD_DISC no request may follow (``disconnected``).

The reply parser is a small state machine over what the bytes being received are; the
states are plain ints (``_SIMPLE_HEADER`` ... ``_PAYLOAD``) for the hot path, and there
is no transitions dict: each ``_parse_*`` method sets the next state. Every reply and
every structured chunk starts in SIMPLE_HEADER, whose 16 bytes are a simple reply
or the start of a chunk header.

==================  ============================================  =================
state (bytes)       what moves it                                 next state
==================  ============================================  =================
SIMPLE_HEADER (16)  a simple reply (emits ``RequestDone``)        SIMPLE_HEADER
SIMPLE_HEADER (16)  a successful simple reply to READ, without    PAYLOAD
                    structured replies
SIMPLE_HEADER (16)  structured reply magic                        STRUCTURED_HEADER
SIMPLE_HEADER (28)  fast path, one OFFSET_DATA chunk covering a   SIMPLE_HEADER
                    whole READ, its payload in the same bytes
                    (emits ``Data``, ``RequestDone``)
SIMPLE_HEADER (28)  the same, payload not yet received            PAYLOAD
STRUCTURED_HEADER   NBD_REPLY_TYPE_NONE with the DONE flag        SIMPLE_HEADER
(4 more)            (emits ``RequestDone``)
STRUCTURED_HEADER   OFFSET_DATA                                   DATA_OFFSET
STRUCTURED_HEADER   OFFSET_HOLE, BLOCK_STATUS, an error chunk     CHUNK_BODY
DATA_OFFSET (8)     the chunk's export offset                     PAYLOAD
CHUNK_BODY (chunk   the body (emits ``Hole``, ``BlockStatus`` or  SIMPLE_HEADER
length)             ``ChunkError``; then ``RequestDone`` when
                    the chunk has the DONE flag)
PAYLOAD (rest of    bytes through ``receive_data`` or             PAYLOAD
the data)           ``payload_received`` (emit ``Data``)
PAYLOAD             its last byte (``RequestDone`` when it ends   SIMPLE_HEADER
                    a simple reply or a chunk with DONE)
any but PAYLOAD     a protocol violation (``ProtocolError``)      dead
dead                ``receive_data``, ``payload_received``,       dead
                    ``request``: raise the same error
==================  ============================================  =================

"Dead" is not a parser state: the error is kept in ``error`` and checked first.

Sending::

    cookie, header = machine.request(Command.WRITE, offset, len(data), CommandFlag.FUA)
    sock.send(header); sock.send(data)      # the payload is never copied by the machine

Receiving, two ways that may be mixed freely:

* ``receive_data(data) -> list[event]``: bytes in, events out. READ payload arrives as
  :class:`Data` events carrying ``bytes`` (a piece at a time: the machine never buffers
  a payload, only headers and the small fixed parts of chunks).
* Zero-copy: when :meth:`ClientTransmission.read_target` returns a :class:`ReadTarget`,
  the next ``target.length`` bytes on the wire are READ payload for ``target.cookie``
  at export offset ``target.offset``. The driver may receive them (or a prefix) straight
  into the caller's buffer and then call ``payload_received(n)``, which returns the
  same events with ``Data.data = None``. When ``read_target()`` is ``None`` the machine
  wants header bytes: :meth:`ClientTransmission.bytes_wanted` says how many complete
  the next fixed-size piece (feeding more through ``receive_data`` is fine).

Events (frozen dataclasses): :class:`Data`, :class:`Hole`, :class:`BlockStatus`,
:class:`ChunkError` and, last for every request, :class:`RequestDone` with the request's
first error (0 when it succeeded).

Errors: a peer that breaks the protocol (bad magic, unknown cookie, a chunk outside its
request or of a type the request cannot take, impossible lengths...) raises
:class:`~nbdtui.errors.ProtocolError`; the machine is then dead and every later call
raises the same error. The events completed by the same ``receive_data`` call before the
violation are in the exception's ``events`` attribute (replies that arrived whole
before the garbage did succeed). Errors the server reports for one request are events, not
exceptions. Misuse by the driver (bad arguments) raises ``ValueError``.

Tolerance, where the spec leaves room or servers differ: a simple reply may answer any
request but a successful READ once structured replies were negotiated (a simple *error*
reply to READ is accepted, its meaning is unambiguous); unknown reply flags are ignored;
block status chunks for any context id are passed on; a READ reply that claims success
without covering the whole range fails that request (EIO) instead of the connection.
"""

from __future__ import annotations

import bisect
import struct

from nbdtui.errors import Errno, ProtocolError
from nbdtui.proto.client_events import BlockStatus, ChunkError, Hole
from nbdtui.proto.client_events import TransmissionEvent as Event
from nbdtui.proto.client_events import make_data as _data
from nbdtui.proto.client_events import make_done as _done
from nbdtui.proto.constants import (
    CHUNK_ERROR_BIT,
    EXTENDED_REPLY_MAGIC,
    REQUEST_MAGIC,
    SIMPLE_REPLY_HEADER_SIZE,
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY_HEADER_SIZE,
    STRUCTURED_REPLY_MAGIC,
    ChunkType,
    Command,
    CommandFlag,
    ReplyFlag,
    command_name,
)
from nbdtui.proto.types import ReadTarget
from nbdtui.proto.types import make_target as _target

__all__ = ["ClientTransmission"]

_REQUEST = struct.Struct(">IHHQQI")  # magic, flags, type, cookie, offset, length
_SIMPLE = struct.Struct(">IIQ")  # magic, error, cookie
_STRUCTURED = struct.Struct(">IHHQI")  # magic, flags, type, cookie, length
_DATA_CHUNK = struct.Struct(">IHHQIQ")  # a structured chunk header and a data offset
_DATA_CHUNK_FROM, _DATA_CHUNK_SIZE = _DATA_CHUNK.unpack_from, _DATA_CHUNK.size
_Buffer = bytes | bytearray | memoryview
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HOLE = struct.Struct(">QI")
_ERROR = struct.Struct(">IH")
_EXTENT = struct.Struct(">II")

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
# Fixed-size chunk payloads are buffered whole: refuse absurd lengths before buffering.
# A block status chunk SHOULD hold at most 2**20 descriptors; accept twice that.
MAX_BLOCK_STATUS_CHUNK = 4 + 8 * 2**21
# What one block status chunk may make the client hold: its extents are merged as they
# are parsed (neighbours of one kind become one), those past the end of the request are
# dropped (only the one crossing it may be sent), and at most MAX_STATUS_EXTENTS merged
# extents are kept (the caller asks again from where they end). One chunk per metadata
# context is kept (the spec allows no more); a reply for more contexts than
# MAX_STATUS_CONTEXTS is a protocol error.
MAX_STATUS_EXTENTS = 1 << 17
MAX_STATUS_CONTEXTS = 16
MAX_ERROR_CHUNK = 6 + 0xFFFF + 8 + 4096

# Plain ints for the hot paths (IntEnum/IntFlag operators are slow in Python 3.11).
_READ, _WRITE, _DISC, _FLUSH = int(Command.READ), int(Command.WRITE), int(Command.DISC), 3
_BLOCK_STATUS = int(Command.BLOCK_STATUS)
_T_NONE, _T_DATA, _T_HOLE = 0, int(ChunkType.OFFSET_DATA), int(ChunkType.OFFSET_HOLE)
_T_STATUS, _T_ERROR, _T_ERROR_OFFSET = 5, int(ChunkType.ERROR), int(ChunkType.ERROR_OFFSET)
_DONE = int(ReplyFlag.DONE)
_FAST_COMMANDS = frozenset((_READ, _WRITE))
_DF, _REQ_ONE = int(CommandFlag.DF), int(CommandFlag.REQ_ONE)
_FUA = int(CommandFlag.FUA)

# Command flags each command may carry (FUA is valid on every command, doc/proto.md).
_ALLOWED_FLAGS = {
    _READ: _DF | _FUA,
    _WRITE: _FUA,
    _DISC: 0,
    _FLUSH: _FUA,
    int(Command.TRIM): _FUA,
    int(Command.CACHE): _FUA,
    int(Command.WRITE_ZEROES): int(CommandFlag.FUA | CommandFlag.NO_HOLE | CommandFlag.FAST_ZERO),
    _BLOCK_STATUS: _REQ_ONE | _FUA,
}


def _chunk_name(kind: int) -> str:
    try:
        return f"NBD_REPLY_TYPE_{ChunkType(kind).name}"
    except ValueError:
        return f"chunk type {kind}"


# ---- the state machine ------------------------------------------------------------


class _InFlight:
    """What the machine remembers about one request until its final reply."""

    __slots__ = (
        "command",
        "content_chunks",
        "contexts",
        "covered",
        "error",
        "error_offset",
        "flags",
        "length",
        "message",
        "offset",
        "spans",
        "statuses",
    )

    def __init__(self, command: int, flags: int, offset: int, length: int) -> None:
        self.command = command
        self.flags = flags
        self.offset = offset
        self.length = length
        self.spans: list[tuple[int, int]] = []  # sorted, non-overlapping content chunks
        self.covered = 0
        self.content_chunks = 0
        self.statuses = 0
        self.contexts: set[int] | None = None  # of the block status chunks kept
        self.error = 0
        self.message = ""
        self.error_offset: int | None = None

    def describe(self, cookie: int) -> str:
        return f"{command_name(self.command)} {self.offset:#x}+{self.length} (cookie {cookie:#x})"


# What the bytes being buffered are (the parser's states).
_SIMPLE_HEADER = 0  # first 16 bytes of any reply
_STRUCTURED_HEADER = 1  # the 4 more bytes of a structured chunk header
_DATA_OFFSET = 2  # the u64 offset of an OFFSET_DATA chunk
_CHUNK_BODY = 3  # the whole payload of a HOLE / BLOCK_STATUS / error chunk
_PAYLOAD = 4  # streaming READ payload (simple reply or OFFSET_DATA)


class ClientTransmission:
    """The client half of the transmission phase; see the module documentation.

    ``structured`` says whether NBD_OPT_STRUCTURED_REPLY was agreed in the handshake.
    """

    def __init__(self, *, structured: bool) -> None:
        self.structured = structured
        self._inflight: dict[int, _InFlight] = {}
        self._next_cookie = 1
        self._disconnected = False
        self._error: ProtocolError | None = None

        self._state = _SIMPLE_HEADER
        self._buf = bytearray()
        self._need = SIMPLE_REPLY_HEADER_SIZE
        # the current reply / chunk
        self._cookie = 0
        self._req: _InFlight | None = None
        self._chunk_flags = 0
        self._chunk_type = 0
        self._chunk_length = 0
        # streaming payload
        self._pos = 0  # export offset of the next payload byte
        self._remaining = 0
        self._simple = False  # the payload belongs to a simple reply

    # ---- requests ---------------------------------------------------------------------

    def request(
        self, command: int, offset: int = 0, length: int = 0, flags: int = 0
    ) -> tuple[int, bytes]:
        """Encode one request; returns ``(cookie, 28-byte header)``.

        For NBD_CMD_WRITE the driver sends ``length`` bytes of payload after the header.
        The cookie stays reserved until the final reply to it has been parsed. After
        NBD_CMD_DISC (which has no reply) nothing more may be sent.
        """
        if (
            command in _FAST_COMMANDS
            and not flags
            and offset >= 0
            and 0 < length <= U32_MAX
            and offset + length <= U64_MAX + 1
            and self._error is None
            and not self._disconnected
        ):
            # The hot path: a plain READ or WRITE passes every check below.
            cookie = self._next_cookie
            inflight = self._inflight
            if cookie in inflight or cookie == U64_MAX:
                cookie = self._allocate_cookie()
            else:
                self._next_cookie = cookie + 1
            inflight[cookie] = _InFlight(_READ if command == _READ else _WRITE, 0, offset, length)
            return cookie, _REQUEST.pack(REQUEST_MAGIC, 0, command, cookie, offset, length)
        self._check_alive()
        if self._disconnected:
            raise ValueError("NBD_CMD_DISC was sent: no request may follow it")
        allowed = _ALLOWED_FLAGS.get(command)
        if allowed is None:
            raise ValueError(f"unsupported NBD command {command}")
        if flags & ~allowed:
            raise ValueError(f"command flags {flags:#x} are not valid for {command_name(command)}")
        if not 0 <= offset <= U64_MAX or not 0 <= length <= U32_MAX:
            raise ValueError(f"offset {offset} or length {length} does not fit the request")
        if offset + length > U64_MAX + 1:
            raise ValueError(f"range {offset:#x}+{length} wraps around 2**64")
        if command == _BLOCK_STATUS and not self.structured:
            raise ValueError("NBD_CMD_BLOCK_STATUS needs structured replies")
        if (command in (_DISC, _FLUSH)) and (offset or length):
            raise ValueError(f"{command_name(command)} takes no offset or length")
        cookie = self._allocate_cookie()
        header = _REQUEST.pack(REQUEST_MAGIC, flags, command, cookie, offset, length)
        if command == _DISC:
            self._disconnected = True
        else:
            self._inflight[cookie] = _InFlight(int(command), int(flags), offset, length)
        return cookie, header

    def _allocate_cookie(self) -> int:
        cookie = self._next_cookie
        while cookie in self._inflight:
            cookie = cookie + 1 if cookie < U64_MAX else 1
        self._next_cookie = cookie + 1 if cookie < U64_MAX else 1
        return cookie

    @property
    def in_flight(self) -> int:
        """Requests sent whose final reply has not been parsed yet."""
        return len(self._inflight)

    def is_pending(self, cookie: int) -> bool:
        return cookie in self._inflight

    @property
    def disconnected(self) -> bool:
        """NBD_CMD_DISC was encoded."""
        return self._disconnected

    @property
    def error(self) -> ProtocolError | None:
        """The protocol error that killed the machine, if any."""
        return self._error

    # ---- receiving --------------------------------------------------------------------

    def read_target(self) -> ReadTarget | None:
        """Where the next payload bytes go, or ``None`` when header bytes come next."""
        if self._state != _PAYLOAD:
            return None
        return _target(self._cookie, self._pos, self._remaining)

    def bytes_wanted(self) -> int:
        """How many bytes complete the piece being parsed (the payload when streaming)."""
        if self._state == _PAYLOAD:
            return self._remaining
        return self._need - len(self._buf)

    def payload_received(self, n: int) -> list[Event]:
        """The driver stored ``n`` payload bytes of the current :class:`ReadTarget`."""
        self._check_alive()
        if self._state != _PAYLOAD or not 0 < n <= self._remaining:
            raise ValueError(f"payload_received({n}) without a read target of that size")
        events: list[Event] = [_data(self._cookie, self._pos, n, None)]
        self._consume_payload(n, events)
        return events

    def receive_data(
        self, data: bytes | bytearray | memoryview, *, copy: bool = True
    ) -> list[Event]:
        """Feed bytes as they arrive (any fragmentation); returns the events they complete.

        With ``copy=False``, :class:`Data` events carry ``memoryview`` slices of ``data``
        instead of ``bytes`` copies: they are valid only while ``data`` is left unchanged
        (a driver that reuses its receive buffer consumes them before it does).
        """
        self._check_alive()
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        events: list[Event] = []
        pos, end = 0, len(view)
        try:
            while pos < end:
                state = self._state
                if state == _PAYLOAD:
                    take = min(self._remaining, end - pos)
                    piece = view[pos : pos + take]
                    events.append(
                        _data(self._cookie, self._pos, take, bytes(piece) if copy else piece)
                    )
                    self._consume_payload(take, events)
                    pos += take
                elif (
                    state == _SIMPLE_HEADER
                    and not self._buf
                    and end - pos >= _DATA_CHUNK_SIZE
                    and self.structured
                    and (whole := self._whole_read(view, pos, end, events, copy))
                ):
                    pos += whole  # the reply, or its header with the payload next
                elif not self._buf and end - pos >= self._need:
                    # The whole fixed-size piece is here: parse it in place, unbuffered.
                    need = self._need
                    if state == _SIMPLE_HEADER:
                        self._parse_header(view, pos, events)
                        if self._state == _STRUCTURED_HEADER:
                            continue  # its 20-byte header starts at ``pos`` as well
                    elif state == _STRUCTURED_HEADER:
                        self._parse_chunk_header(view, pos, events)
                    elif state == _DATA_OFFSET:
                        self._parse_data_offset(view, pos)
                    else:
                        self._parse_chunk_body(view[pos : pos + need], events)
                    pos += need
                else:
                    take = min(self._need - len(self._buf), end - pos)
                    self._buf += view[pos : pos + take]
                    if len(self._buf) == self._need:
                        self._parse_piece(events)
                    pos += take
        except ProtocolError as exc:
            # ProtocolError (nbdtui.errors) does not declare ``events``: only this machine
            # attaches them (see the module documentation)
            exc.events = events  # type: ignore[attr-defined]
            self._die(exc)
            raise
        return events

    # ---- parsing ----------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._error is not None:
            raise self._error

    def _die(self, exc: ProtocolError) -> None:
        self._error = exc
        self._buf = bytearray()
        self._req = None

    def _expect(self, state: int, need: int) -> None:
        self._state = state
        self._need = need
        self._buf.clear()

    def _parse_piece(self, events: list[Event]) -> None:
        state, buf = self._state, self._buf
        if state == _SIMPLE_HEADER:
            self._parse_header(buf, 0, events)
        elif state == _STRUCTURED_HEADER:
            self._parse_chunk_header(buf, 0, events)
        elif state == _DATA_OFFSET:
            self._parse_data_offset(buf, 0)
        else:
            self._parse_chunk_body(buf, events)

    def _lookup(self, cookie: int) -> _InFlight:
        req = self._inflight.get(cookie)
        if req is None:
            raise ProtocolError(f"reply for unknown cookie {cookie:#x}")
        return req

    # The parsers read their fixed-size piece from ``buf`` at ``at``: the machine's own
    # buffer when the piece arrived in fragments, else the caller's data, in place.

    def _parse_header(self, buf: _Buffer, at: int, events: list[Event]) -> None:
        (magic,) = _U32.unpack_from(buf, at)
        if magic == STRUCTURED_REPLY_MAGIC:
            if not self.structured:
                raise ProtocolError(
                    "server sent a structured reply although structured replies were not negotiated"
                )
            self._state = _STRUCTURED_HEADER
            self._need = STRUCTURED_REPLY_HEADER_SIZE
            return
        if magic != SIMPLE_REPLY_MAGIC:
            hint = " (extended headers, which were not negotiated)"
            raise ProtocolError(
                f"bad reply magic {magic:#010x}{hint if magic == EXTENDED_REPLY_MAGIC else ''}"
            )
        _, error, cookie = _SIMPLE.unpack_from(buf, at)
        req = self._lookup(cookie)
        self._cookie, self._req = cookie, req
        if req.command == _READ and error == 0:
            if self.structured:
                raise ProtocolError(
                    f"server sent a successful simple reply to {req.describe(cookie)} "
                    "although structured replies were negotiated"
                )
            if req.length:
                self._state = _PAYLOAD
                self._simple = True
                self._pos = req.offset
                self._remaining = req.length
                self._buf.clear()
                return
        if error:
            req.error = int(Errno.from_wire(error))
        self._finish(events)

    def _parse_chunk_header(self, buf: _Buffer, at: int, events: list[Event]) -> None:
        _, flags, kind, cookie, length = _STRUCTURED.unpack_from(buf, at)
        req = self._lookup(cookie)
        self._cookie, self._req = cookie, req
        self._chunk_flags, self._chunk_type, self._chunk_length = flags, kind, length
        if kind == _T_NONE:
            if length != 0:
                raise self._chunk_error("it must be empty")
            if not flags & _DONE:
                raise self._chunk_error("NBD_REPLY_TYPE_NONE without the DONE flag")
            self._end_chunk(events)
            return
        if kind in (_T_DATA, _T_HOLE):
            if req.command != _READ:
                raise self._chunk_error("", "unexpected ")
            if req.flags & _DF and req.content_chunks:
                raise self._chunk_error("a second content chunk despite NBD_CMD_FLAG_DF")
            req.content_chunks += 1
            if kind == _T_DATA:
                if length < 9:
                    raise self._chunk_error("it must be at least 9 bytes")
                self._expect(_DATA_OFFSET, 8)
            else:
                if length != _HOLE.size:
                    raise self._chunk_error("it must be exactly 12 bytes")
                self._expect(_CHUNK_BODY, length)
            return
        if kind == _T_STATUS:
            if req.command != _BLOCK_STATUS:
                raise self._chunk_error("", "unexpected ")
            if length < 12 or (length - 4) % 8 or length > MAX_BLOCK_STATUS_CHUNK:
                raise self._chunk_error("impossible length")
            self._expect(_CHUNK_BODY, length)
            return
        if kind & CHUNK_ERROR_BIT:
            minimum = 14 if kind == _T_ERROR_OFFSET else 6
            if not minimum <= length <= MAX_ERROR_CHUNK:
                raise self._chunk_error("impossible length")
            self._expect(_CHUNK_BODY, length)
            return
        raise self._chunk_error("", "unknown ")

    def _whole_read(
        self, buf: memoryview, at: int, end: int, events: list[Event], copy: bool
    ) -> int:
        """The usual reply to a READ, parsed at once: one OFFSET_DATA chunk covering the
        whole request, its header and data offset at ``buf[at:at + 28]``. Returns 0
        (having changed nothing) for anything else, which the general parsers handle.

        When the chunk ends the reply and its payload is in ``buf`` too, the reply is
        finished here (the burst of small reads of a random workload); else the
        payload streams next. Returns the bytes consumed."""
        magic, flags, kind, cookie, length, offset = _DATA_CHUNK_FROM(buf, at)
        if magic != STRUCTURED_REPLY_MAGIC or kind != _T_DATA:
            return 0
        req = self._inflight.get(cookie)
        if (
            req is None
            or req.command != _READ
            or req.content_chunks
            or offset != req.offset
            or length - 8 != req.length
            or not req.length
        ):
            return 0
        size = req.length
        start = at + _DATA_CHUNK_SIZE
        if flags & _DONE and end - start >= size:
            del self._inflight[cookie]
            piece = buf[start : start + size]
            events.append(_data(cookie, offset, size, bytes(piece) if copy else piece))
            events.append(_done(cookie, 0, "", None))
            return _DATA_CHUNK_SIZE + size
        # What _parse_chunk_header and _parse_data_offset would conclude.
        self._cookie, self._req = cookie, req
        self._chunk_flags, self._chunk_type, self._chunk_length = flags, kind, length
        req.content_chunks = 1
        req.spans.append((offset, offset + size))
        req.covered = size
        self._state = _PAYLOAD
        self._simple = False
        self._pos = offset
        self._remaining = size
        return _DATA_CHUNK_SIZE

    def _chunk_error(self, problem: str, prefix: str = "") -> ProtocolError:
        req = self._req
        assert req is not None
        where = (
            f"{prefix}{_chunk_name(self._chunk_type)} chunk of length {self._chunk_length} "
            f"for {req.describe(self._cookie)}"
        )
        return ProtocolError(f"{where}: {problem}" if problem else where)

    def _parse_data_offset(self, buf: _Buffer, at: int) -> None:
        (offset,) = _U64.unpack_from(buf, at)
        size = self._chunk_length - 8
        self._add_span(offset, size, "data")
        self._state = _PAYLOAD
        self._simple = False
        self._pos = offset
        self._remaining = size
        self._buf.clear()

    def _add_span(self, offset: int, size: int, what: str) -> None:
        req = self._req
        assert req is not None
        end = offset + size
        if offset < req.offset or end > req.offset + req.length:
            raise ProtocolError(
                f"server sent {what} for {offset:#x}+{size} outside the range of "
                f"{req.describe(self._cookie)}"
            )
        spans = req.spans
        if not spans:  # the usual case: one content chunk per request
            spans.append((offset, end))
            req.covered += size
            return
        i = bisect.bisect_left(spans, (offset, end))
        if (i > 0 and spans[i - 1][1] > offset) or (i < len(spans) and spans[i][0] < end):
            raise ProtocolError(
                f"server sent {what} for {offset:#x}+{size} overlapping earlier content "
                f"of {req.describe(self._cookie)}"
            )
        spans.insert(i, (offset, end))
        req.covered += size

    def _consume_payload(self, n: int, events: list[Event]) -> None:
        self._pos += n
        self._remaining -= n
        if self._remaining == 0:
            self._buf.clear()
            if self._simple:
                self._finish(events)
            else:
                self._end_chunk(events)

    def _parse_chunk_body(self, buf: _Buffer, events: list[Event]) -> None:
        kind, req, cookie = self._chunk_type, self._req, self._cookie
        assert req is not None
        if kind == _T_HOLE:
            offset, size = _HOLE.unpack_from(buf)
            if size == 0:
                raise ProtocolError(f"empty hole chunk for {req.describe(cookie)}")
            self._add_span(offset, size, "a hole")
            events.append(Hole(cookie, offset, size))
        elif kind == _T_STATUS:
            (context,) = _U32.unpack_from(buf)
            if req.flags & _REQ_ONE and (
                len(buf) != 12 or _U32.unpack_from(buf, 4)[0] > req.length
            ):
                raise ProtocolError(
                    f"server ignored NBD_CMD_FLAG_REQ_ONE in its reply to {req.describe(cookie)}"
                )
            seen = req.contexts
            if seen is None:
                seen = req.contexts = set()
            if context not in seen:  # (a second chunk for a context is not kept)
                if len(seen) == MAX_STATUS_CONTEXTS:
                    raise ProtocolError(
                        f"server sent block status for more than {MAX_STATUS_CONTEXTS} "
                        f"metadata contexts in its reply to {req.describe(cookie)}"
                    )
                seen.add(context)
                # (in place: the views are released before the buffer is cleared)
                with memoryview(buf) as whole, whole[4:] as raw:
                    extents = _status_extents(raw, req.length, req, cookie)
                events.append(BlockStatus(cookie, context, extents))
            req.statuses += 1
        else:
            self._parse_error_chunk(kind, buf, req, cookie, events)
        self._end_chunk(events)

    def _parse_error_chunk(
        self, kind: int, buf: _Buffer, req: _InFlight, cookie: int, events: list[Event]
    ) -> None:
        error, size = _ERROR.unpack_from(buf)
        room = len(buf) - (14 if kind == _T_ERROR_OFFSET else 6)
        if size > room:
            raise ProtocolError(
                f"{_chunk_name(kind)} chunk for {req.describe(cookie)}: message of {size} "
                f"bytes does not fit in the chunk"
            )
        if error == 0 and (kind in (_T_ERROR, _T_ERROR_OFFSET)):
            raise ProtocolError(
                f"{_chunk_name(kind)} chunk with error 0 for {req.describe(cookie)}"
            )
        message = _decode_message(buf[6 : 6 + size])
        offset = None
        if kind == _T_ERROR_OFFSET:
            (offset,) = _U64.unpack_from(buf, 6 + size)
            if not req.offset <= offset < req.offset + max(req.length, 1):
                raise ProtocolError(
                    f"error offset {offset:#x} outside the range of {req.describe(cookie)}"
                )
        elif kind != _T_ERROR:
            # Unknown error chunk type: it fails only its own request.
            detail = f"unknown error chunk type {kind}"
            message = f"{detail}: {message}" if message else detail
        errno = int(Errno.from_wire(error)) if error else int(Errno.EINVAL)
        events.append(ChunkError(cookie, errno, message, offset))
        if not req.error:
            req.error, req.message, req.error_offset = errno, message, offset

    def _end_chunk(self, events: list[Event]) -> None:
        if self._chunk_flags & _DONE:
            self._finish(events)
        else:
            self._expect(_SIMPLE_HEADER, SIMPLE_REPLY_HEADER_SIZE)

    def _finish(self, events: list[Event]) -> None:
        cookie, req = self._cookie, self._req
        assert req is not None
        del self._inflight[cookie]
        if not req.error and self.structured:
            if req.command == _READ and req.covered != req.length:
                req.error = int(Errno.EIO)
                req.message = (
                    f"server reported success after sending only {req.covered} of "
                    f"{req.length} bytes"
                )
            elif req.command == _BLOCK_STATUS and not req.statuses:
                req.error = int(Errno.EIO)
                req.message = "server reported success without sending any block status"
        events.append(_done(cookie, req.error, req.message, req.error_offset))
        self._req = None
        self._state = _SIMPLE_HEADER
        self._need = SIMPLE_REPLY_HEADER_SIZE
        if self._buf:
            self._buf.clear()


def _status_extents(
    raw: memoryview, length: int, req: _InFlight, cookie: int
) -> tuple[tuple[int, int], ...]:
    """The extents of a block status chunk for a request of ``length`` bytes: merged,
    cut after the one that reaches ``length``, at most MAX_STATUS_EXTENTS of them."""
    out: list[tuple[int, int]] = []
    covered = 0
    run = kind = -1  # the length and flags of the last extent kept
    items = _EXTENT.iter_unpack(raw)
    try:
        for n, flags in items:
            if n == 0:
                raise ProtocolError(f"block status extent of length 0 for {req.describe(cookie)}")
            if flags == kind:
                run += n
                out[-1] = (run, kind)
            elif len(out) == MAX_STATUS_EXTENTS:
                break
            else:
                run, kind = n, flags
                out.append((n, flags))
            covered += n
            if covered >= length:
                break
    finally:
        del items  # (its hold on ``raw`` ends here, even when an error is raised)
    return tuple(out)


def _decode_message(raw: _Buffer) -> str:
    """A server's error text as one printable line."""
    text = bytes(raw).decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else " " for c in text).strip()
