"""Taking one option reply off the receive buffer, checked, for both client machines
(:mod:`nbdtui.proto.client_handshake` and the doctor's :mod:`nbdtui.proto.option_probe`).

A reply is refused from its header alone, before its payload is buffered, when its magic
is wrong, it answers another option than the one awaited, its type is neither final (ACK
or an error) nor the intermediate type of that option, its length is more than the type
can make sense of, or keeping it would pass a cap (:mod:`nbdtui.proto.option_caps`).
"""

from __future__ import annotations

import struct

from nbdtui.errors import ProtocolError
from nbdtui.proto import option_codec as wire
from nbdtui.proto.constants import OPTION_REPLY_MAGIC, Info, Option, OptionReply
from nbdtui.proto.option_caps import ReplyCaps
from nbdtui.proto.types import ExportInfo

__all__ = ["INTERMEDIATE", "fold_infos", "take_reply"]

#: The one intermediate reply type each option may send before its final reply.
INTERMEDIATE: dict[int, int] = {
    Option.LIST: OptionReply.SERVER,
    Option.INFO: OptionReply.INFO,
    Option.GO: OptionReply.INFO,
    Option.LIST_META_CONTEXT: OptionReply.META_CONTEXT,
    Option.SET_META_CONTEXT: OptionReply.META_CONTEXT,
}


def take_reply(buf: bytearray, awaiting: int, caps: ReplyCaps) -> tuple[int, bytes] | None:
    """The next reply to ``awaiting`` in ``buf`` as ``(reply type, payload)``, removed
    from ``buf``; None while more bytes are needed. An intermediate reply is counted in
    ``caps``; ProtocolError for anything the server must not send."""
    header = wire.REPLY_HEADER
    if len(buf) < header.size:
        return None
    magic, option, reply, length = header.unpack_from(buf)
    name = wire.option_name(awaiting)
    if magic != OPTION_REPLY_MAGIC:
        raise ProtocolError(f"bad option reply magic {magic:#x} in reply to {name}")
    if option != awaiting:
        raise ProtocolError(
            f"server sent a reply to {wire.option_name(option)} while nbdtui waited "
            f"for the reply to {name}"
        )
    final = reply == OptionReply.ACK or wire.is_error(reply)
    if not final and reply != INTERMEDIATE.get(awaiting):
        raise ProtocolError(f"server answered {name} with unexpected {wire.reply_name(reply)}")
    limit = wire.max_reply_length(reply)
    if length > limit:
        raise ProtocolError(
            f"server sent {wire.reply_name(reply)} to {name} with a {length}-byte payload "
            f"(at most {limit} bytes make sense)"
        )
    end = header.size + length
    if not final:
        caps.check(awaiting, end)
    if reply == OptionReply.INFO and length >= 2:
        # A bad length for a known info type is refused before the payload is buffered.
        if len(buf) < header.size + 2:
            return None
        (info_type,) = struct.unpack_from(">H", buf, header.size)
        wire.check_info_length(info_type, length)
    if len(buf) < end:
        return None
    payload = bytes(buf[header.size : end])
    del buf[:end]
    if not final:
        caps.kept(end)
    return reply, payload


def fold_infos(infos: tuple[tuple[int, object], ...], name: str) -> ExportInfo | None:
    """The NBD_REP_INFO replies to a successful INFO or GO as an ExportInfo (``name`` is
    the one asked for, unless the server names it); None without NBD_INFO_EXPORT. When
    the server repeats an info type, the last one counts; unknown types are ignored."""
    export: wire.InfoExport | None = None
    sizes: wire.InfoBlockSize | None = None
    description = None
    for info_type, value in infos:
        if isinstance(value, wire.InfoExport):
            export = value
        elif isinstance(value, wire.InfoBlockSize):
            sizes = value
        elif info_type == Info.NAME and isinstance(value, str):
            name = value
        elif info_type == Info.DESCRIPTION and isinstance(value, str):
            description = value
    if export is None:
        return None
    return ExportInfo(
        name=name,
        size=export.size,
        flags=export.flags,
        description=description,
        block_minimum=sizes.minimum if sizes else None,
        block_preferred=sizes.preferred if sizes else None,
        block_maximum=sizes.maximum if sizes else None,
    )
