"""Wire constants of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md).

All integers on the wire are big-endian.
"""

from __future__ import annotations

import enum

# Handshake magics
NBDMAGIC = 0x4E42444D41474943  # "NBDMAGIC"
OLDSTYLE_MAGIC = 0x00420281861253
IHAVEOPT = 0x49484156454F5054  # "IHAVEOPT"
OPTION_REPLY_MAGIC = 0x3E889045565A9

# Transmission magics
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF
EXTENDED_REQUEST_MAGIC = 0x21E41C71
EXTENDED_REPLY_MAGIC = 0x6E8A278C

REQUEST_HEADER_SIZE = 28
SIMPLE_REPLY_HEADER_SIZE = 16
STRUCTURED_REPLY_HEADER_SIZE = 20

DEFAULT_PORT = 10809

# Strings (export names, descriptions, messages) must be at most this long.
MAX_STRING = 4096
# Option payloads larger than this are refused as a protocol error.
MAX_OPTION_REPLY = 64 * 1024 * 1024


class HandshakeFlag(enum.IntFlag):
    """Flags the server sends after NBDMAGIC/IHAVEOPT (u16)."""

    FIXED_NEWSTYLE = 1 << 0
    NO_ZEROES = 1 << 1


class ClientFlag(enum.IntFlag):
    """Flags the client answers with (u32)."""

    FIXED_NEWSTYLE = 1 << 0
    NO_ZEROES = 1 << 1


class Option(enum.IntEnum):
    EXPORT_NAME = 1
    ABORT = 2
    LIST = 3
    PEEK_EXPORT = 4
    STARTTLS = 5
    INFO = 6
    GO = 7
    STRUCTURED_REPLY = 8
    LIST_META_CONTEXT = 9
    SET_META_CONTEXT = 10
    EXTENDED_HEADERS = 11


REP_ERROR_BIT = 1 << 31


class OptionReply(enum.IntEnum):
    ACK = 1
    SERVER = 2
    INFO = 3
    META_CONTEXT = 4
    ERR_UNSUP = REP_ERROR_BIT + 1
    ERR_POLICY = REP_ERROR_BIT + 2
    ERR_INVALID = REP_ERROR_BIT + 3
    ERR_PLATFORM = REP_ERROR_BIT + 4
    ERR_TLS_REQD = REP_ERROR_BIT + 5
    ERR_UNKNOWN = REP_ERROR_BIT + 6
    ERR_SHUTDOWN = REP_ERROR_BIT + 7
    ERR_BLOCK_SIZE_REQD = REP_ERROR_BIT + 8
    ERR_TOO_BIG = REP_ERROR_BIT + 9
    ERR_EXT_HEADER_REQD = REP_ERROR_BIT + 10


class Info(enum.IntEnum):
    EXPORT = 0
    NAME = 1
    DESCRIPTION = 2
    BLOCK_SIZE = 3


class TransmissionFlag(enum.IntFlag):
    HAS_FLAGS = 1 << 0
    READ_ONLY = 1 << 1
    SEND_FLUSH = 1 << 2
    SEND_FUA = 1 << 3
    ROTATIONAL = 1 << 4
    SEND_TRIM = 1 << 5
    SEND_WRITE_ZEROES = 1 << 6
    SEND_DF = 1 << 7
    CAN_MULTI_CONN = 1 << 8
    SEND_RESIZE = 1 << 9
    SEND_CACHE = 1 << 10
    SEND_FAST_ZERO = 1 << 11
    BLOCK_STATUS_PAYLOAD = 1 << 12


class CommandFlag(enum.IntFlag):
    FUA = 1 << 0
    NO_HOLE = 1 << 1
    DF = 1 << 2
    REQ_ONE = 1 << 3
    FAST_ZERO = 1 << 4
    PAYLOAD_LEN = 1 << 5


class Command(enum.IntEnum):
    READ = 0
    WRITE = 1
    DISC = 2
    FLUSH = 3
    TRIM = 4
    CACHE = 5
    WRITE_ZEROES = 6
    BLOCK_STATUS = 7
    RESIZE = 8


def command_name(command: int) -> str:
    """``NBD_CMD_READ`` for 0; ``command 99`` for a value the spec does not define."""
    try:
        return f"NBD_CMD_{Command(command).name}"
    except ValueError:
        return f"command {command}"


class ReplyFlag(enum.IntFlag):
    DONE = 1 << 0


class ChunkType(enum.IntEnum):
    NONE = 0
    OFFSET_DATA = 1
    OFFSET_HOLE = 2
    BLOCK_STATUS = 5
    BLOCK_STATUS_EXT = 6
    ERROR = 32769
    ERROR_OFFSET = 32770


CHUNK_ERROR_BIT = 1 << 15


class AllocationFlag(enum.IntFlag):
    """Flags of the base:allocation meta context."""

    HOLE = 1 << 0
    ZERO = 1 << 1


BASE_ALLOCATION = "base:allocation"


# Block size defaults when the server says nothing (doc/proto.md, "Block size constraints").
DEFAULT_BLOCK_MIN = 1
INTEROP_BLOCK_MIN = 512
DEFAULT_BLOCK_PREFERRED = 4096
DEFAULT_BLOCK_MAX = 32 * 1024 * 1024
