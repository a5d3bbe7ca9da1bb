"""proto/option_probe.py: the handshake one option at a time. Bytes in, events out."""

from __future__ import annotations

import re
import struct

import pytest

from nbdtui.errors import ProtocolError
from nbdtui.proto import option_codec as wire
from nbdtui.proto.client_events import ExportNameAnswered, Greeted, OptionAnswered
from nbdtui.proto.constants import (
    IHAVEOPT,
    NBDMAGIC,
    OLDSTYLE_MAGIC,
    OPTION_REPLY_MAGIC,
    Info,
    Option,
    OptionReply,
)
from nbdtui.proto.option_probe import OptionProbe

FIXED_NO_ZEROES = struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3)


def reply(option: int, kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">QIII", OPTION_REPLY_MAGIC, option, kind, len(payload)) + payload


def greeted(data: bytes = FIXED_NO_ZEROES) -> OptionProbe:
    probe = OptionProbe()
    assert probe.receive_data(data) == [Greeted("newstyle-fixed", 3)]
    assert probe.data_to_send() == struct.pack(">I", 3)  # FIXED_NEWSTYLE | NO_ZEROES
    return probe


def test_greeting_byte_by_byte_then_client_flags():
    probe = OptionProbe()
    events = []
    for i in range(len(FIXED_NO_ZEROES)):
        events += probe.receive_data(FIXED_NO_ZEROES[i : i + 1])
    assert events == [Greeted("newstyle-fixed", 3)]
    assert probe.state == "idle"
    assert probe.data_to_send() == b"\0\0\0\3"


def test_non_fixed_newstyle_allows_only_export_name():
    probe = OptionProbe()
    assert probe.receive_data(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 0)) == [
        Greeted("newstyle", 0)
    ]
    assert probe.data_to_send() == b"\0\0\0\0"
    with pytest.raises(RuntimeError, match="cannot send an option"):
        probe.send_option(Option.GO)
    probe.send_export_name(b"disk")
    assert probe.data_to_send() == wire.encode_option(Option.EXPORT_NAME, b"disk")
    answer = struct.pack(">QH", 1 << 20, 1) + bytes(124)  # zeroes: NO_ZEROES not offered
    assert probe.receive_data(answer[:-1]) == []
    assert probe.receive_data(answer[-1:] + b"tail") == [ExportNameAnswered(1 << 20, 1)]
    assert probe.state == "done"
    assert probe.trailing_data == b"tail"


def test_oldstyle_greeting_carries_the_export():
    probe = OptionProbe()
    data = struct.pack(">QQQI", NBDMAGIC, OLDSTYLE_MAGIC, 4096, (7 << 16) | 3) + bytes(124)
    (event,) = probe.receive_data(data)
    assert isinstance(event, Greeted) and event.style == "oldstyle" and event.flags == 7
    assert event.info is not None and (event.info.size, event.info.flags) == (4096, 3)
    assert probe.state == "done" and probe.data_to_send() == b""


def test_not_nbd_at_all():
    with pytest.raises(
        ProtocolError, match=re.escape("not an NBD server: greeting starts with b'SSH-2.0-'")
    ):
        OptionProbe().receive_data(b"SSH-2.0-OpenSSH_9.2\r\n")


def test_option_with_intermediate_replies_then_error_then_list():
    probe = greeted()
    request = wire.encode_info_request(b"x", (Info.NAME,))
    probe.send_option(Option.GO, request)
    assert probe.data_to_send() == wire.encode_option(Option.GO, request)
    assert probe.awaiting == Option.GO
    info = struct.pack(">HQH", Info.EXPORT, 512, 1)
    events = probe.receive_data(reply(Option.GO, OptionReply.INFO, info))
    assert events == []
    (answer,) = probe.receive_data(reply(Option.GO, OptionReply.ERR_UNKNOWN, b"no \x01such"))
    assert answer == OptionAnswered(
        Option.GO, OptionReply.ERR_UNKNOWN, "no such", infos=((0, wire.InfoExport(512, 1)),)
    )
    assert probe.state == "idle"
    probe.send_option(Option.LIST)
    server = struct.pack(">I", 1) + b"a" + b"first"
    (listed,) = probe.receive_data(
        reply(Option.LIST, OptionReply.SERVER, server) + reply(Option.LIST, OptionReply.ACK)
    )
    assert listed.servers == (("a", "first"),)
    assert listed.infos == () and listed.reply == OptionReply.ACK


def test_go_ack_ends_the_handshake():
    probe = greeted()
    probe.send_option(Option.GO, wire.encode_info_request(b"", ()))
    info = reply(Option.GO, OptionReply.INFO, struct.pack(">HQH", Info.EXPORT, 1, 1))
    events = probe.receive_data(info + reply(Option.GO, OptionReply.ACK) + b"\x67")
    assert [type(e) for e in events] == [OptionAnswered]
    assert probe.state == "done" and probe.trailing_data == b"\x67"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (reply(Option.INFO, OptionReply.ACK), "reply to NBD_OPT_INFO while nbdtui waited"),
        (
            reply(Option.STRUCTURED_REPLY, OptionReply.SERVER, bytes(5)),
            "with unexpected NBD_REP_SERVER",
        ),
        (struct.pack(">QIII", 1, Option.STRUCTURED_REPLY, 1, 0), "bad option reply magic"),
        (reply(Option.STRUCTURED_REPLY, OptionReply.ERR_POLICY, bytes(5000)), "5000-byte"),
    ],
)
def test_broken_replies(data, needle):
    probe = greeted()
    probe.send_option(Option.STRUCTURED_REPLY)
    with pytest.raises(ProtocolError, match=needle):
        probe.receive_data(data)
    assert probe.state == "failed"
    with pytest.raises(ProtocolError, match=needle):  # the same error again
        probe.receive_data(b"")


def test_bytes_while_nothing_was_asked():
    probe = greeted()
    with pytest.raises(ProtocolError, match="while nbdtui had asked nothing"):
        probe.receive_data(b"x")


def test_options_one_at_a_time():
    probe = greeted()
    probe.send_option(Option.STRUCTURED_REPLY)
    with pytest.raises(RuntimeError):
        probe.send_option(Option.LIST)
    with pytest.raises(RuntimeError):
        probe.send_export_name(b"")


def test_too_many_intermediate_replies(monkeypatch):
    """The caps of the handshake machine (one set, nbdtui.proto.option_caps)."""
    from nbdtui.proto import option_caps

    monkeypatch.setattr(option_caps, "MAX_OPTION_REPLIES", 3)
    probe = greeted()
    probe.send_option(Option.LIST)
    server = reply(Option.LIST, OptionReply.SERVER, struct.pack(">I", 1) + b"a")
    assert probe.receive_data(server * 3) == []
    with pytest.raises(ProtocolError, match="more than 3 replies to NBD_OPT_LIST, nbdtui's cap"):
        probe.receive_data(server)
