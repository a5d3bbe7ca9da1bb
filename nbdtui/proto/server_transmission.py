"""Sans-IO server side of the NBD transmission phase: request validation and reply
encoders (simple replies and structured reply chunks).

Everything here is pure: numbers in, bytes or an error out. The request events are in
:mod:`~nbdtui.proto.server_events`;
:class:`~nbdtui.proto.server_connection.ServerConnection` parses the requests and keeps
track of them.

Theory of operation: the life of one request
--------------------------------------------

There is no machine object for this phase: the connection (state TRANSMISSION) reads
a 28-byte request header, then, per request:

==============================  ============================================  ============
request                         what the connection does (event)              then
==============================  ============================================  ============
NBD_CMD_DISC                    ``DisconnectRequest``                         closed
bad magic                       ``ConnectionClosed`` (error)                  closed
refused by ``check_request``    queues ``error_reply`` (WRITE: its payload    next header
                                is skipped unread) (``RequestRejected``)
WRITE                           waits for the payload, then ``WriteRequest``  pending
any other command               the ``Request`` subclass of REQUEST_TYPES     pending
==============================  ============================================  ============

A pending request stays pending (``ServerConnection.pending``) until its final reply:
``send_reply`` (a simple reply: not for READ and BLOCK_STATUS), ``send_read`` (the whole
READ), ``send_error``, or the last of its structured chunks (``send_read_data`` /
``send_read_hole`` / ``send_block_status`` with ``done=True``, or ``send_done``).
Chunks before the last leave it pending. Structured chunks need structured replies;
a READ chunk must lie inside its request. Several requests with the same cookie are
answered first in, first out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from nbdtui.errors import Errno
from nbdtui.proto.constants import (
    MAX_STRING,
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    ChunkType,
    Command,
    CommandFlag,
    ReplyFlag,
    command_name,
)
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.server_events import (
    BlockStatusRequest,
    CacheRequest,
    FlushRequest,
    ReadRequest,
    Request,
    TrimRequest,
    WriteRequest,
    WriteZeroesRequest,
)
from nbdtui.proto.types import ExportInfo

REQUEST_HEADER = struct.Struct(">IHHQQI")  # magic, flags, type, cookie, offset, length
SIMPLE_REPLY = struct.Struct(">IIQ")  # magic, error, cookie
CHUNK_HEADER = struct.Struct(">IHHQI")  # magic, flags, type, cookie, payload length
# Largest data an OFFSET_DATA chunk can carry (its length field also counts the offset).
MAX_CHUNK_DATA = 0xFFFFFFFF - 8
# More descriptors than this in one BLOCK_STATUS chunk are cut off (the spec allows less).
MAX_EXTENTS = 1 << 16

REQUEST_TYPES: dict[int, type[Request]] = {
    cls.command: cls
    for cls in (
        ReadRequest,
        WriteRequest,
        FlushRequest,
        TrimRequest,
        CacheRequest,
        WriteZeroesRequest,
        BlockStatusRequest,
    )
}

# ---- validation ------------------------------------------------------------------------


def _flag_names(flags: int) -> str:
    parts = [f"NBD_CMD_FLAG_{flag.name}" for flag in CommandFlag if flags & flag]
    rest = flags & ~int(sum(CommandFlag))
    if rest:
        parts.append(f"flags 0x{rest:x}")
    return "|".join(parts)


# The transmission flag that must be set for the client to use a command.
_ADVERTISED: dict[int, TF] = {
    Command.FLUSH: TF.SEND_FLUSH,
    Command.TRIM: TF.SEND_TRIM,
    Command.WRITE_ZEROES: TF.SEND_WRITE_ZEROES,
    Command.CACHE: TF.SEND_CACHE,
}


def check_request(
    command: int,
    flags: int,
    offset: int,
    length: int,
    *,
    info: ExportInfo,
    structured: bool,
    has_contexts: bool,
) -> tuple[Errno, str] | None:
    """Why the server must refuse this request (errno, message), or None if it is valid.

    ``info.flags`` are the transmission flags sent to the client (they tell which
    commands and flags it may use); block sizes come from ``info`` too.
    """
    name = command_name(command)
    if command not in REQUEST_TYPES:
        return Errno.EINVAL, f"unknown {name}"
    tflags = info.flags
    allowed = CommandFlag.FUA if tflags & TF.SEND_FUA else 0
    if command == Command.READ and tflags & TF.SEND_DF and structured:
        allowed |= CommandFlag.DF
    elif command == Command.WRITE_ZEROES:
        allowed |= CommandFlag.NO_HOLE
        if tflags & TF.SEND_FAST_ZERO:
            allowed |= CommandFlag.FAST_ZERO
    elif command == Command.BLOCK_STATUS:
        allowed |= CommandFlag.REQ_ONE
    bad = flags & ~int(allowed)  # int: ~ on an IntFlag drops the unknown bits
    if bad:
        return Errno.EINVAL, f"{_flag_names(bad)} not valid for {name}"
    writes = command in (Command.WRITE, Command.TRIM, Command.WRITE_ZEROES)
    if writes and tflags & TF.READ_ONLY:
        return Errno.EPERM, f"{name} on a read-only export"
    advertised = _ADVERTISED.get(command)
    if advertised is not None and not tflags & advertised:
        return Errno.EINVAL, f"{name} is not supported by this export"
    if command == Command.BLOCK_STATUS and not (structured and has_contexts):
        return Errno.EINVAL, f"{name} without a negotiated meta context"
    if command == Command.FLUSH:
        if offset or length:
            return Errno.EINVAL, f"{name} with nonzero offset or length"
        return None
    maximum = info.block_maximum
    if command in (Command.READ, Command.WRITE) and maximum and length > maximum:
        if command == Command.READ and structured:
            return Errno.EOVERFLOW, f"{name} of {length} bytes is larger than {maximum}"
        return Errno.EINVAL, f"{name} of {length} bytes is larger than {maximum}"
    if offset + length > info.size:
        errno = Errno.ENOSPC if command in (Command.WRITE, Command.WRITE_ZEROES) else Errno.EINVAL
        return errno, f"{name} at {offset}+{length} is beyond the end ({info.size})"
    if command == Command.BLOCK_STATUS and length == 0:
        return Errno.EINVAL, f"{name} of length 0"
    minimum = info.block_minimum or 1
    if minimum > 1 and (offset % minimum or length % minimum):
        return Errno.EINVAL, f"{name} at {offset}+{length} is not aligned to {minimum}"
    return None


# ---- reply encoders --------------------------------------------------------------------


def _message(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > MAX_STRING:
        raw = raw[:MAX_STRING].decode("utf-8", "ignore").encode("utf-8")
    return raw


def simple_reply(cookie: int, error: int = 0) -> bytes:
    """A simple reply header; a successful READ's data follows it on the wire."""
    return SIMPLE_REPLY.pack(SIMPLE_REPLY_MAGIC, error, cookie)


def chunk_header(cookie: int, kind: int, length: int, *, done: bool) -> bytes:
    flags = ReplyFlag.DONE if done else 0
    return CHUNK_HEADER.pack(STRUCTURED_REPLY_MAGIC, flags, kind, cookie, length)


def chunk_none(cookie: int) -> bytes:
    """NBD_REPLY_TYPE_NONE: always the final chunk."""
    return chunk_header(cookie, ChunkType.NONE, 0, done=True)


def chunk_offset_data_header(cookie: int, offset: int, size: int, *, done: bool) -> bytes:
    """Header and offset of an OFFSET_DATA chunk; ``size`` bytes of data follow it."""
    if not 0 < size <= MAX_CHUNK_DATA:
        raise ValueError(f"OFFSET_DATA chunk of {size} bytes")
    head = chunk_header(cookie, ChunkType.OFFSET_DATA, 8 + size, done=done)
    return head + struct.pack(">Q", offset)


def chunk_offset_hole(cookie: int, offset: int, size: int, *, done: bool) -> bytes:
    if not 0 < size <= 0xFFFFFFFF:
        raise ValueError(f"OFFSET_HOLE chunk of {size} bytes")
    head = chunk_header(cookie, ChunkType.OFFSET_HOLE, 12, done=done)
    return head + struct.pack(">QI", offset, size)


def chunk_error(
    cookie: int, error: int, message: str = "", *, offset: int | None = None, done: bool = True
) -> bytes:
    """ERROR (or ERROR_OFFSET when ``offset`` is given) chunk with a human message."""
    if not error:
        raise ValueError("an error chunk needs a nonzero error")
    text = _message(message)
    payload = struct.pack(">IH", error, len(text)) + text
    kind = ChunkType.ERROR
    if offset is not None:
        payload += struct.pack(">Q", offset)
        kind = ChunkType.ERROR_OFFSET
    return chunk_header(cookie, kind, len(payload), done=done) + payload


def chunk_block_status(
    cookie: int, context_id: int, extents: Iterable[tuple[int, int]], *, done: bool
) -> bytes:
    """BLOCK_STATUS chunk: context id then (u32 length, u32 flags) descriptors."""
    body = bytearray(struct.pack(">I", context_id))
    for length, flags in extents:
        if not 0 < length <= 0xFFFFFFFF:
            raise ValueError(f"block status descriptor of length {length}")
        body += struct.pack(">II", length, flags)
    if len(body) == 4:
        raise ValueError("a block status chunk needs at least one descriptor")
    return chunk_header(cookie, ChunkType.BLOCK_STATUS, len(body), done=done) + bytes(body)


def error_reply(cookie: int, error: int, message: str, *, structured: bool) -> bytes:
    """The whole reply to a failed request: an ERROR chunk when structured replies
    were negotiated (mandatory for READ), else a simple reply carrying the error."""
    if structured:
        return chunk_error(cookie, error, message, done=True)
    return simple_reply(cookie, error)
