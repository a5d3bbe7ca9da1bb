"""Encoding of NBD handshake options and decoding of option replies (fixed newstyle).

Pure functions over bytes, used by :mod:`nbdtui.proto.client_handshake`. Layouts follow
NetworkBlockDevice/nbd ``doc/proto.md``, "Option types" and "Option reply types";
every integer is big-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple

from nbdtui.errors import ProtocolError
from nbdtui.proto.constants import (
    IHAVEOPT,
    MAX_OPTION_REPLY,
    MAX_STRING,
    REP_ERROR_BIT,
    Info,
    Option,
    OptionReply,
)

# IHAVEOPT, option, payload length
OPTION_HEADER = struct.Struct(">QII")
# reply magic, option, reply type, payload length
REPLY_HEADER = struct.Struct(">QIII")

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_INFO_EXPORT = struct.Struct(">QH")  # size, transmission flags
_INFO_BLOCK_SIZE = struct.Struct(">III")  # minimum, preferred, maximum payload

# Exact NBD_REP_INFO lengths (including the u16 type) of the fixed-size info types.
_INFO_LENGTH: dict[int, int] = {
    Info.EXPORT: 2 + _INFO_EXPORT.size,
    Info.BLOCK_SIZE: 2 + _INFO_BLOCK_SIZE.size,
}

# Short reasons, as in "server refuses to list exports (policy)".
_REFUSAL: dict[int, str] = {
    OptionReply.ERR_UNSUP: "unsupported",
    OptionReply.ERR_POLICY: "policy",
    OptionReply.ERR_INVALID: "invalid request",
    OptionReply.ERR_PLATFORM: "not available on the server's platform",
    OptionReply.ERR_TLS_REQD: "TLS required",
    OptionReply.ERR_UNKNOWN: "no such export",
    OptionReply.ERR_SHUTDOWN: "server shutting down",
    OptionReply.ERR_BLOCK_SIZE_REQD: "block size negotiation required",
    OptionReply.ERR_TOO_BIG: "request or reply too big",
    OptionReply.ERR_EXT_HEADER_REQD: "extended headers required, which nbdtui does not support",
}


class InfoExport(NamedTuple):
    """NBD_INFO_EXPORT: the export's size and transmission flags."""

    size: int
    flags: int


class InfoBlockSize(NamedTuple):
    """NBD_INFO_BLOCK_SIZE: the block size constraints (checked by check_block_sizes)."""

    minimum: int
    preferred: int
    maximum: int


#: A decoded NBD_REP_INFO: (info type, value); see decode_info.
InfoItem = tuple[int, InfoExport | InfoBlockSize | str | None]


# ---- names -----------------------------------------------------------------------


def option_name(option: int) -> str:
    """``NBD_OPT_GO`` for 7; ``option 99`` for a value the spec does not define."""
    try:
        return f"NBD_OPT_{Option(option).name}"
    except ValueError:
        return f"option {option}"


def reply_name(reply: int) -> str:
    """``NBD_REP_ERR_POLICY`` for 2**31 + 2; ``reply type 0x...`` for unknown values."""
    try:
        return f"NBD_REP_{OptionReply(reply).name}"
    except ValueError:
        return f"reply type {reply:#x}"


def is_error(reply: int) -> bool:
    return bool(reply & REP_ERROR_BIT)


def refusal(reply: int, message: str = "", *, quiet: int | None = None) -> str:
    """Why the server refused, in a few words: ``policy``, ``policy: <server message>``.

    ``quiet`` names a reply type whose reason goes without saying (it yields only the
    server's message, possibly ``""``).
    """
    reason = "" if reply == quiet else _REFUSAL.get(reply, f"error {reply:#x}")
    if reason and message:
        return f"{reason}: {message}"
    return reason or message


# ---- client side: encoding -------------------------------------------------------


def encode_option(option: int, payload: bytes = b"") -> bytes:
    """One option request: IHAVEOPT, option, length, payload."""
    return OPTION_HEADER.pack(IHAVEOPT, option, len(payload)) + payload


def encode_info_request(name: bytes, infos: Iterable[int]) -> bytes:
    """Payload of NBD_OPT_INFO / NBD_OPT_GO: u32 name length, name, u16 count, u16 infos."""
    infos = list(infos)
    return b"".join(
        [_U32.pack(len(name)), name, _U16.pack(len(infos)), *(_U16.pack(i) for i in infos)]
    )


def encode_meta_context_request(name: bytes, queries: Iterable[bytes]) -> bytes:
    """Payload of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT:
    u32 name length, name, u32 query count, then (u32 length, query) each."""
    queries = list(queries)
    parts = [_U32.pack(len(name)), name, _U32.pack(len(queries))]
    for query in queries:
        parts += [_U32.pack(len(query)), query]
    return b"".join(parts)


def encode_string(text: str, what: str) -> bytes:
    """UTF-8 bytes of a name we are about to send; refuses what the spec forbids.

    Raises ``ValueError`` with a one-line message (the caller wraps it).
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {text!r} is not valid Unicode") from None
    if len(data) > MAX_STRING:
        raise ValueError(f"{what} is too long: {len(data)} bytes (NBD allows at most {MAX_STRING})")
    if b"\0" in data:
        raise ValueError(f"{what} {text!r} contains a NUL character, which NBD forbids")
    return data


# ---- server side: decoding -------------------------------------------------------


def max_reply_length(reply: int) -> int:
    """The largest payload a reply of this type can sanely carry."""
    if reply == OptionReply.ACK:
        return 0
    if reply == OptionReply.SERVER:  # u32 length, name, description
        return 4 + 2 * MAX_STRING
    if reply == OptionReply.META_CONTEXT:  # u32 id, name
        return 4 + MAX_STRING
    if is_error(reply):  # an optional message
        return MAX_STRING
    return MAX_OPTION_REPLY  # NBD_REP_INFO (unknown info types may be long) and the rest


def check_info_length(info_type: int, length: int) -> None:
    """Validate an NBD_REP_INFO length once its type is known (before the payload arrives)."""
    expected = _INFO_LENGTH.get(info_type)
    if expected is not None and length != expected:
        raise ProtocolError(
            f"server sent NBD_INFO_{Info(info_type).name} with a {length}-byte payload "
            f"(it must be {expected} bytes)"
        )
    if info_type in (Info.NAME, Info.DESCRIPTION) and length - 2 > MAX_STRING:
        raise ProtocolError(
            f"server sent NBD_INFO_{Info(info_type).name} of {length - 2} bytes "
            f"(strings are at most {MAX_STRING} bytes)"
        )


def decode_name(data: bytes, what: str) -> str:
    """A name the server sent (export, context): strict UTF-8, at most MAX_STRING bytes."""
    if len(data) > MAX_STRING:
        raise ProtocolError(
            f"server sent a {what} of {len(data)} bytes (strings are at most {MAX_STRING} bytes)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"server sent a {what} that is not valid UTF-8: {data!r}") from None


def decode_description(data: bytes) -> str:
    """Free text meant for people (descriptions): lenient UTF-8, at most MAX_STRING bytes."""
    if len(data) > MAX_STRING:
        raise ProtocolError(
            f"server sent a description of {len(data)} bytes "
            f"(strings are at most {MAX_STRING} bytes)"
        )
    return data.decode("utf-8", errors="replace")


def decode_message(data: bytes) -> str:
    """The optional message of an error reply, made into one printable line."""
    text = decode_description(data)
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def decode_server(payload: bytes) -> tuple[str, str]:
    """NBD_REP_SERVER: u32 name length, name, then the description (rest of the payload)."""
    if len(payload) < 4:
        raise ProtocolError(f"server sent a truncated NBD_REP_SERVER ({len(payload)} bytes)")
    (length,) = _U32.unpack_from(payload)
    if length > len(payload) - 4:
        raise ProtocolError(
            f"server sent NBD_REP_SERVER with a name length of {length} bytes "
            f"in a {len(payload)}-byte reply"
        )
    name = decode_name(payload[4 : 4 + length], "export name")
    return name, decode_description(payload[4 + length :])


def decode_meta_context(payload: bytes) -> tuple[int, str]:
    """NBD_REP_META_CONTEXT: u32 context id, name."""
    if len(payload) < 4:
        raise ProtocolError(f"server sent a truncated NBD_REP_META_CONTEXT ({len(payload)} bytes)")
    (ident,) = _U32.unpack_from(payload)
    return ident, decode_name(payload[4:], "metadata context name")


def decode_info(payload: bytes) -> InfoItem:
    """NBD_REP_INFO: u16 info type, then its payload.

    Returns ``(info_type, value)``: an :class:`InfoExport` for EXPORT, a string for NAME
    and DESCRIPTION, an :class:`InfoBlockSize` for BLOCK_SIZE, ``None`` for types
    nbdtui does not know (the spec says to ignore them).
    """
    if len(payload) < 2:
        raise ProtocolError(f"server sent a truncated NBD_REP_INFO ({len(payload)} bytes)")
    (info_type,) = _U16.unpack_from(payload)
    check_info_length(info_type, len(payload))
    body = payload[2:]
    if info_type == Info.EXPORT:
        size, flags = _INFO_EXPORT.unpack(body)
        return info_type, InfoExport(size, flags)
    if info_type == Info.NAME:
        return info_type, decode_name(body, "canonical export name")
    if info_type == Info.DESCRIPTION:
        return info_type, decode_description(body)
    if info_type == Info.BLOCK_SIZE:
        sizes = InfoBlockSize(*_INFO_BLOCK_SIZE.unpack(body))
        check_block_sizes(*sizes)
        return info_type, sizes
    return info_type, None


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_block_sizes(minimum: int, preferred: int, maximum: int) -> None:
    """The MUSTs of "Size constraints" that a client relies on to split its requests."""
    if not _power_of_two(minimum) or minimum > 64 * 1024:
        problem = f"minimum block size {minimum} is not a power of two up to 65536"
    elif not _power_of_two(preferred) or preferred < minimum:
        problem = f"preferred block size {preferred} is not a power of two >= the minimum"
    elif maximum < preferred:
        problem = f"maximum payload {maximum} is smaller than the preferred block size"
    else:
        return
    raise ProtocolError(f"server sent invalid NBD_INFO_BLOCK_SIZE: {problem}")
