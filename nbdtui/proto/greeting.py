"""The fixed-size parts of a handshake, taken off the receive buffer for both client
machines (:mod:`nbdtui.proto.client_handshake` and the doctor's
:mod:`nbdtui.proto.option_probe`): the server's greeting (NBDMAGIC, then IHAVEOPT and
the handshake flags, or the oldstyle magic, size and flags), the client flags that
answer it, and the reply to NBD_OPT_EXPORT_NAME. Each ``take_*`` returns None while more
bytes are needed and removes what it read from the buffer.
"""

from __future__ import annotations

import struct

from nbdtui.errors import ProtocolError
from nbdtui.proto.constants import (
    IHAVEOPT,
    NBDMAGIC,
    OLDSTYLE_MAGIC,
    ClientFlag,
    HandshakeFlag,
)

__all__ = [
    "client_flags",
    "greeting_style",
    "take_export_name_reply",
    "take_newstyle_flags",
    "take_oldstyle",
]

_MAGICS = struct.Struct(">QQ")  # NBDMAGIC, then IHAVEOPT or the oldstyle magic
_HANDSHAKE_FLAGS = struct.Struct(">H")
_OLDSTYLE = struct.Struct(">QI")  # size, flags (then 124 zero bytes)
_EXPORT_NAME_REPLY = struct.Struct(">QH")  # size, transmission flags (then maybe 124 zeroes)
_ZEROES = 124


def greeting_style(buf: bytearray) -> int | None:
    """IHAVEOPT or OLDSTYLE_MAGIC, the magic after NBDMAGIC (left in ``buf``); None while
    fewer than 16 bytes are in; ProtocolError for anything else."""
    if len(buf) < 8:
        return None
    if struct.unpack_from(">Q", buf)[0] != NBDMAGIC:
        raise ProtocolError(
            f"not an NBD server: greeting starts with {bytes(buf[:8])!r}, not b'NBDMAGIC'"
        )
    if len(buf) < _MAGICS.size:
        return None
    _, style = _MAGICS.unpack_from(buf)
    if style not in (IHAVEOPT, OLDSTYLE_MAGIC):
        raise ProtocolError(f"unknown NBD handshake magic {style:#x} after NBDMAGIC")
    return int(style)


def take_newstyle_flags(buf: bytearray) -> int | None:
    """The handshake flags of a newstyle greeting (after :func:`greeting_style`)."""
    end = _MAGICS.size + _HANDSHAKE_FLAGS.size
    if len(buf) < end:
        return None
    (flags,) = _HANDSHAKE_FLAGS.unpack_from(buf, _MAGICS.size)
    del buf[:end]
    return int(flags)


def take_oldstyle(buf: bytearray) -> tuple[int, int] | None:
    """``(size, flags)`` of an oldstyle greeting: u16 global flags in the high half,
    u16 transmission flags in the low half."""
    end = _MAGICS.size + _OLDSTYLE.size + _ZEROES
    if len(buf) < end:
        return None
    size, flags = _OLDSTYLE.unpack_from(buf, _MAGICS.size)
    del buf[:end]
    return size, flags


def client_flags(handshake_flags: int) -> bytes:
    """The client flags that answer a newstyle greeting: FIXED_NEWSTYLE and NO_ZEROES
    when the server offers them."""
    client = ClientFlag(0)
    if handshake_flags & HandshakeFlag.FIXED_NEWSTYLE:
        client |= ClientFlag.FIXED_NEWSTYLE
    if handshake_flags & HandshakeFlag.NO_ZEROES:
        client |= ClientFlag.NO_ZEROES
    return struct.pack(">I", client)


def take_export_name_reply(buf: bytearray, no_zeroes: bool) -> tuple[int, int] | None:
    """``(size, transmission flags)`` of the reply to NBD_OPT_EXPORT_NAME."""
    end = _EXPORT_NAME_REPLY.size + (0 if no_zeroes else _ZEROES)
    if len(buf) < end:
        return None
    size, flags = _EXPORT_NAME_REPLY.unpack_from(buf)
    del buf[:end]
    return size, flags
