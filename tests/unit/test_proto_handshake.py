"""The client handshake state machine: server bytes in, events and client bytes out.

The byte builders and the scripted server (``tests/support/proto_scenarios.py``) are
written from doc/proto.md independently of ``nbdtui.proto.option_codec`` so that the encoder
is checked against a second reading of the spec. The same machine against real nbdkit
over a socket, compared with libnbd's nbdinfo: tests/integration/
test_proto_handshake_oracle.py.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbdtui.errors import (
    ExportNotFoundError,
    HandshakeError,
    ProtocolError,
    TLSRequiredError,
)
from nbdtui.proto.client_events import ExportsListed, Negotiated, StartTLS
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.constants import (
    MAX_OPTION_REPLY,
    Info,
    Option,
    OptionReply,
)
from nbdtui.proto.types import ExportDetails, ExportInfo
from tests.support.proto_scenarios import (
    ACK,
    FIXED,
    FLAGS,
    NO_ZEROES,
    SCENARIOS,
    Conversation,
    client_flags,
    context_payload,
    converse,
    export_name_reply,
    go_payload,
    greeting,
    info_block_size,
    info_description,
    info_export,
    info_name,
    oldstyle_greeting,
    opt,
    reference,
    rep,
    rep_context,
    rep_error,
    rep_info,
    rep_server,
    split_options,
    standard_server,
)

# ---- greetings -------------------------------------------------------------------------


def test_oldstyle_negotiates_at_once_with_low_16_bits_as_transmission_flags():
    hs = ClientHandshake(export_name="ignored")
    data = oldstyle_greeting(12345 * 512, 0x00FF0000 | FLAGS) + b"\x67\x44\x66\x98"
    events = hs.receive_data(data)
    assert events == [
        Negotiated(
            info=ExportInfo("", 12345 * 512, int(FLAGS)), protocol="oldstyle", structured=False
        )
    ]
    assert hs.done
    assert hs.data_to_send() == b""
    assert hs.trailing_data == b"\x67\x44\x66\x98"


def test_oldstyle_cannot_list_or_do_tls():
    with pytest.raises(HandshakeError, match="oldstyle protocol: it cannot list exports"):
        ClientHandshake(list_exports=True).receive_data(oldstyle_greeting(1, 1))
    with pytest.raises(HandshakeError, match="oldstyle protocol: it does not support TLS"):
        ClientHandshake(tls=True).receive_data(oldstyle_greeting(1, 1))


def test_non_fixed_newstyle_goes_straight_to_export_name_with_zeroes():
    hs = ClientHandshake(export_name="disk")
    assert hs.receive_data(greeting(0)) == []
    assert hs.data_to_send() == client_flags(0) + opt(Option.EXPORT_NAME, b"disk")
    reply = export_name_reply(4096, FLAGS, zeroes=True)
    assert hs.receive_data(reply[:-1]) == []  # still waiting for the last zero byte
    events = hs.receive_data(reply[-1:] + b"tail")
    assert events == [Negotiated(ExportInfo("disk", 4096, int(FLAGS)), "newstyle", False)]
    assert hs.trailing_data == b"tail"


def test_non_fixed_newstyle_with_no_zeroes_flag_only():
    hs = ClientHandshake(export_name="")
    hs.receive_data(greeting(NO_ZEROES))
    assert hs.data_to_send() == client_flags(NO_ZEROES) + opt(Option.EXPORT_NAME)
    events = hs.receive_data(export_name_reply(10, 1, zeroes=False))
    assert events == [Negotiated(ExportInfo("", 10, 1), "newstyle", False)]


def test_non_fixed_newstyle_refuses_listing_and_tls():
    with pytest.raises(HandshakeError, match="non-fixed newstyle protocol: it cannot list"):
        ClientHandshake(list_exports=True).receive_data(greeting(0))
    hs = ClientHandshake(tls=True)
    with pytest.raises(HandshakeError, match="does not support TLS"):
        hs.receive_data(greeting(0))
    assert hs.data_to_send() == b""  # nothing sent in plaintext


@pytest.mark.parametrize(
    ("server_flags", "expected"),
    [(FIXED | NO_ZEROES, 3), (FIXED, 1), (FIXED | NO_ZEROES | 0x8000, 3), (NO_ZEROES, 2), (0, 0)],
)
def test_client_flags_echo_exactly_what_was_offered(server_flags, expected):
    hs = ClientHandshake()
    hs.receive_data(greeting(server_flags))
    assert hs.data_to_send()[:4] == client_flags(expected)


@pytest.mark.parametrize("zeroes", [False, True])
def test_fixed_newstyle_export_name_fallback_honours_no_zeroes(zeroes):
    hs = ClientHandshake(export_name="d", structured_replies=False)
    hs.receive_data(greeting(FIXED if zeroes else FIXED | NO_ZEROES))
    assert hs.data_to_send() == client_flags(1 if zeroes else 3) + opt(Option.GO, go_payload("d"))
    assert hs.receive_data(rep_error(Option.GO, OptionReply.ERR_UNSUP)) == []
    assert hs.data_to_send() == opt(Option.EXPORT_NAME, b"d")
    reply = export_name_reply(1 << 30, FLAGS, zeroes=zeroes)
    events = hs.receive_data(reply[:10])
    if zeroes:  # size and flags alone do not end the handshake: 124 zeroes follow
        assert events == []
        assert not hs.done
        events = hs.receive_data(reply[10:])
    assert events == [Negotiated(ExportInfo("d", 1 << 30, int(FLAGS)), "newstyle-fixed", False)]
    assert hs.trailing_data == b""


def test_export_name_fallback_result_and_trailing_bytes():
    hs = ClientHandshake(export_name="d", structured_replies=False)
    hs.receive_data(greeting(FIXED))
    hs.data_to_send()
    hs.receive_data(rep_error(Option.GO, OptionReply.ERR_UNSUP))
    events = hs.receive_data(export_name_reply(1 << 30, FLAGS, zeroes=True) + b"\x01")
    assert events == [Negotiated(ExportInfo("d", 1 << 30, int(FLAGS)), "newstyle-fixed", False)]
    assert hs.trailing_data == b"\x01"


def test_bad_greeting_magics():
    with pytest.raises(ProtocolError, match="not an NBD server"):
        ClientHandshake().receive_data(b"HTTP/1.1 400 Bad\r\n")
    with pytest.raises(ProtocolError, match="unknown NBD handshake magic"):
        ClientHandshake().receive_data(b"NBDMAGICIHAVEOPX\x00\x03")


# ---- GO ------------------------------------------------------------------------------


def test_go_exact_bytes_and_every_info_type():
    hs = ClientHandshake(export_name="disk")
    assert hs.receive_data(greeting()) == []
    assert hs.data_to_send() == client_flags(3) + opt(Option.STRUCTURED_REPLY)
    assert hs.receive_data(rep(Option.STRUCTURED_REPLY, ACK)) == []
    assert hs.data_to_send() == opt(
        Option.SET_META_CONTEXT, context_payload("disk", ("base:allocation",))
    )
    assert hs.receive_data(rep_context(Option.SET_META_CONTEXT, 42, "base:allocation")) == []
    assert hs.receive_data(rep(Option.SET_META_CONTEXT, ACK)) == []
    sent = hs.data_to_send()
    # GO: u32 name length, name, u16 count, u16 NAME, DESCRIPTION, BLOCK_SIZE
    assert sent == b"IHAVEOPT" + bytes.fromhex(
        "00000007 00000010 00000004"
    ) + b"disk" + bytes.fromhex("0003 0001 0002 0003")
    replies = (
        info_name(Option.GO, "canonical/disk")
        + rep_info(Option.GO, 0x7777, b"future info, ignored")
        + info_export(Option.GO, 8 << 30, FLAGS)
        + info_description(Option.GO, "Data disk \N{SNOWMAN}")
        + info_block_size(Option.GO, 512, 4096, 32 << 20)
        + rep(Option.GO, ACK)
    )
    events = hs.receive_data(replies + b"\x67\x44\x66\x98rest")
    info = ExportInfo(
        name="canonical/disk",
        size=8 << 30,
        flags=int(FLAGS),
        description="Data disk \N{SNOWMAN}",
        block_minimum=512,
        block_preferred=4096,
        block_maximum=32 << 20,
    )
    assert events == [
        Negotiated(info, "newstyle-fixed", True, meta_contexts=(("base:allocation", 42),))
    ]
    assert events[0].context_id("base:allocation") == 42
    assert hs.done
    assert hs.data_to_send() == b""
    assert hs.trailing_data == b"\x67\x44\x66\x98rest"
    # after done, more bytes keep going to trailing_data
    assert hs.receive_data(b"!") == []
    assert hs.trailing_data == b"\x67\x44\x66\x98rest!"


def test_go_without_block_size_or_name_uses_requested_name():
    hs = ClientHandshake(export_name="x", structured_replies=False)
    conv = Conversation(
        hs,
        greeting(),
        standard_server(overrides={Option.GO: info_export(Option.GO, 5, 1) + rep(Option.GO, ACK)}),
    )
    assert conv.run() == [Negotiated(ExportInfo("x", 5, 1), "newstyle-fixed", False)]
    assert conv.option_codes == [Option.GO]


def test_go_ack_without_export_info_is_a_protocol_error():
    answer = standard_server(overrides={Option.GO: info_name(Option.GO, "x") + rep(Option.GO, ACK)})
    with pytest.raises(ProtocolError, match="without sending NBD_INFO_EXPORT"):
        converse(ClientHandshake(export_name="x"), answer)


def test_go_unknown_export():
    answer = standard_server(
        overrides={Option.GO: rep_error(Option.GO, OptionReply.ERR_UNKNOWN, "no such thing")}
    )
    hs = ClientHandshake(export_name="nope")
    with pytest.raises(ExportNotFoundError) as info:
        converse(hs, answer)
    assert str(info.value) == "export 'nope' not found"
    assert info.value.reply == OptionReply.ERR_UNKNOWN
    assert info.value.option == Option.GO
    assert info.value.server_message == "no such thing"
    assert hs.data_to_send() == opt(Option.ABORT)  # soft disconnect offered to the driver
    with pytest.raises(ExportNotFoundError):  # the machine stays failed
        hs.receive_data(b"x")


def test_go_policy_with_message():
    answer = standard_server(
        overrides={Option.GO: rep_error(Option.GO, OptionReply.ERR_POLICY, "access\ndenied\x1b[2J")}
    )
    with pytest.raises(HandshakeError) as info:
        converse(ClientHandshake(export_name="d"), answer)
    assert str(info.value) == "server refused export 'd' (policy: access denied [2J)"
    assert type(info.value) is HandshakeError
    assert (info.value.reply, info.value.option) == (OptionReply.ERR_POLICY, Option.GO)


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (OptionReply.ERR_PLATFORM, "server refused export 'd' (not available on the server's"),
        (OptionReply.ERR_INVALID, "server refused export 'd' (invalid request)"),
        (OptionReply.ERR_BLOCK_SIZE_REQD, "server refused export 'd' (block size negotiation"),
        (OptionReply.ERR_TOO_BIG, "server refused export 'd' (request or reply too big)"),
        (OptionReply.ERR_EXT_HEADER_REQD, "server refused export 'd' (extended headers required"),
        (OptionReply.ERR_SHUTDOWN, "server is shutting down"),
        (0x80000063, "server refused export 'd' (error 0x80000063)"),
    ],
)
def test_go_other_errors(reply, text):
    answer = standard_server(overrides={Option.GO: rep_error(Option.GO, reply)})
    with pytest.raises(HandshakeError) as info:
        converse(ClientHandshake(export_name="d"), answer)
    assert str(info.value).startswith(text)
    assert info.value.reply == reply
    assert info.value.server_message == ""


def test_tls_required_on_go():
    answer = standard_server(overrides={Option.GO: rep_error(Option.GO, OptionReply.ERR_TLS_REQD)})
    with pytest.raises(TLSRequiredError, match=r"^server requires TLS: use nbds://$") as info:
        converse(ClientHandshake(), answer)
    assert info.value.option == Option.GO


def test_tls_required_on_first_option_forcedtls_server():
    answer = standard_server(
        overrides={
            Option.STRUCTURED_REPLY: rep_error(Option.STRUCTURED_REPLY, OptionReply.ERR_TLS_REQD)
        }
    )
    hs = ClientHandshake()
    with pytest.raises(TLSRequiredError) as info:
        converse(hs, answer)
    assert info.value.option == Option.STRUCTURED_REPLY
    assert hs.data_to_send() == opt(Option.ABORT)


def test_structured_replies_unsupported_skips_meta_contexts():
    answer = standard_server(
        overrides={
            Option.STRUCTURED_REPLY: rep_error(Option.STRUCTURED_REPLY, OptionReply.ERR_UNSUP)
        }
    )
    conv = converse(ClientHandshake(list_contexts=True), answer)
    assert conv.option_codes == [Option.STRUCTURED_REPLY, Option.GO]
    (event,) = conv.events
    assert event.structured is False
    assert event.meta_contexts == ()
    assert event.available_contexts is None


def test_structured_replies_not_asked():
    conv = converse(ClientHandshake(structured_replies=False))
    assert conv.option_codes == [Option.GO]
    assert conv.events[0].structured is False


def test_set_meta_context_agreed_several():
    hs = ClientHandshake(export_name="e", meta_contexts=("base:allocation", "qemu:dirty-bitmap:b"))
    conv = converse(hs)
    assert conv.options[1] == (
        Option.SET_META_CONTEXT,
        context_payload("e", ("base:allocation", "qemu:dirty-bitmap:b")),
    )
    assert conv.events[0].meta_contexts == (("base:allocation", 7), ("qemu:dirty-bitmap:b", 8))


def test_meta_contexts_given_as_one_string():
    conv = converse(ClientHandshake(meta_contexts="base:allocation"))
    assert conv.options[1] == (Option.SET_META_CONTEXT, context_payload("", ("base:allocation",)))


def test_set_meta_context_refused_means_none_agreed():
    error = rep_context(Option.SET_META_CONTEXT, 1, "base:allocation") + rep_error(
        Option.SET_META_CONTEXT, OptionReply.ERR_INVALID, "nope"
    )
    conv = converse(ClientHandshake(), standard_server(overrides={Option.SET_META_CONTEXT: error}))
    assert conv.option_codes == [Option.STRUCTURED_REPLY, Option.SET_META_CONTEXT, Option.GO]
    assert conv.events[0].meta_contexts == ()
    assert conv.events[0].context_id("base:allocation") is None


def test_no_meta_contexts_asked_sends_no_set_meta_context():
    conv = converse(ClientHandshake(meta_contexts=()))
    assert conv.option_codes == [Option.STRUCTURED_REPLY, Option.GO]


def test_list_meta_context_with_no_query():
    conv = converse(ClientHandshake(export_name="e", list_contexts=True))
    assert conv.option_codes == [
        Option.STRUCTURED_REPLY,
        Option.LIST_META_CONTEXT,
        Option.SET_META_CONTEXT,
        Option.GO,
    ]
    assert conv.options[1][1] == struct.pack(">I", 1) + b"e" + struct.pack(">I", 0)
    assert conv.events[0].available_contexts == ("base:allocation", "qemu:dirty-bitmap:")


def test_list_meta_context_error_gives_none():
    error = rep_context(Option.LIST_META_CONTEXT, 0, "base:allocation") + rep_error(
        Option.LIST_META_CONTEXT, OptionReply.ERR_UNSUP
    )
    answer = standard_server(overrides={Option.LIST_META_CONTEXT: error})
    conv = converse(ClientHandshake(list_contexts=True), answer)
    assert conv.events[0].available_contexts is None
    assert conv.events[0].meta_contexts == (("base:allocation", 7),)


def test_shutdown_on_optional_option_is_fatal():
    answer = standard_server(
        overrides={
            Option.STRUCTURED_REPLY: rep_error(
                Option.STRUCTURED_REPLY, OptionReply.ERR_SHUTDOWN, "bye"
            )
        }
    )
    hs = ClientHandshake()
    with pytest.raises(HandshakeError, match=r"^server is shutting down \(bye\)$"):
        converse(hs, answer)
    assert hs.data_to_send() == opt(Option.ABORT)


def test_names_too_long_or_invalid_are_refused_before_sending():
    ClientHandshake(export_name="é" * 2048)  # 4096 bytes: the limit
    with pytest.raises(HandshakeError, match="export name is too long: 4098 bytes"):
        ClientHandshake(export_name="é" * 2049)
    with pytest.raises(HandshakeError, match="metadata context name is too long"):
        ClientHandshake(meta_contexts=("x:" + "y" * 4095,))
    with pytest.raises(HandshakeError, match="NUL"):
        ClientHandshake(export_name="a\0b")
    with pytest.raises(HandshakeError, match="not valid Unicode"):
        ClientHandshake(export_name="\udcff")


def test_utf8_export_name_on_the_wire():
    conv = converse(ClientHandshake(export_name="диск", structured_replies=False))
    assert conv.options == [(Option.GO, go_payload("диск"))]
    assert conv.events[0].info.name == "диск"


# ---- STARTTLS --------------------------------------------------------------------------


def test_starttls_flow():
    hs = ClientHandshake(export_name="d", tls=True)
    hs.receive_data(greeting())
    assert hs.data_to_send() == client_flags(3) + opt(Option.STARTTLS)
    assert hs.receive_data(rep(Option.STARTTLS, ACK)) == [StartTLS()]
    assert hs.data_to_send() == b""  # nothing more in plaintext
    assert hs.receive_data(b"") == []
    assert hs.data_to_send() == b""
    hs.tls_established()
    assert hs.data_to_send() == opt(Option.STRUCTURED_REPLY)
    hs.receive_data(rep(Option.STRUCTURED_REPLY, ACK))
    hs.receive_data(rep(Option.SET_META_CONTEXT, ACK))
    assert split_options(hs.data_to_send())[-1][0] == Option.GO
    (event,) = hs.receive_data(info_export(Option.GO, 1, 1) + rep(Option.GO, ACK))
    assert event.tls is True
    with pytest.raises(RuntimeError):
        hs.tls_established()


def test_tls_established_only_when_asked():
    hs = ClientHandshake(tls=True)
    with pytest.raises(RuntimeError):
        hs.tls_established()


@pytest.mark.parametrize(
    ("reply", "message", "text"),
    [
        (OptionReply.ERR_UNSUP, "", "server does not support TLS"),
        (OptionReply.ERR_POLICY, "", "server does not support TLS (policy)"),
        (OptionReply.ERR_UNSUP, "no certs", "server does not support TLS (no certs)"),
    ],
)
def test_starttls_refused(reply, message, text):
    hs = ClientHandshake(tls=True)
    hs.receive_data(greeting())
    hs.data_to_send()
    with pytest.raises(HandshakeError) as info:
        hs.receive_data(rep_error(Option.STARTTLS, reply, message))
    assert str(info.value) == text
    assert (info.value.reply, info.value.option) == (reply, Option.STARTTLS)
    assert hs.data_to_send() == opt(Option.ABORT)  # and no other option in plaintext


def test_plaintext_after_starttls_ack_is_refused():
    hs = ClientHandshake(tls=True)
    hs.receive_data(greeting())
    with pytest.raises(ProtocolError, match="after accepting NBD_OPT_STARTTLS"):
        hs.receive_data(rep(Option.STARTTLS, ACK) + rep(Option.STRUCTURED_REPLY, ACK))


def test_tls_required_after_tls_is_a_protocol_error():
    answer = standard_server(overrides={Option.GO: rep_error(Option.GO, OptionReply.ERR_TLS_REQD)})
    with pytest.raises(ProtocolError, match="although TLS is already active"):
        converse(ClientHandshake(tls=True), answer)


# ---- LIST ----------------------------------------------------------------------------


def test_list_with_descriptions():
    hs = ClientHandshake(list_exports=True, structured_replies=False)
    hs.receive_data(greeting())
    assert hs.data_to_send() == client_flags(3) + opt(Option.LIST)
    events = hs.receive_data(
        rep_server("") + rep_server("a", "first disk") + rep_server("b") + rep(Option.LIST, ACK)
    )
    assert events == [
        ExportsListed(
            "newstyle-fixed",
            (ExportDetails("", ""), ExportDetails("a", "first disk"), ExportDetails("b", "")),
        )
    ]
    assert hs.data_to_send() == opt(Option.ABORT)
    hs.receive_data(rep(Option.ABORT, ACK))  # the ACK to ABORT is just trailing data
    assert hs.trailing_data == rep(Option.ABORT, ACK)
    assert hs.eof_error() is None


def test_list_with_details():
    def info(option: int, payload: bytes) -> bytes:
        if b"broken" in payload:
            return rep_error(option, OptionReply.ERR_TLS_REQD)  # SELECTIVETLS hiding it
        return (
            info_export(option, 1024, FLAGS)
            + info_description(option, "from info")
            + info_block_size(option, 1, 4096, 0xFFFFFFFF)
            + rep(option, ACK)
        )

    exports = (("a", "A"), ("broken", ""))
    answer = standard_server(exports=exports, overrides={Option.INFO: info})
    conv = converse(ClientHandshake(list_exports=True, list_details=True), answer)
    assert conv.options == [
        (Option.STRUCTURED_REPLY, b""),
        (Option.LIST, b""),
        (Option.LIST_META_CONTEXT, context_payload("a")),
        (Option.INFO, go_payload("a")),
        (Option.LIST_META_CONTEXT, context_payload("broken")),
        (Option.INFO, go_payload("broken")),
        (Option.ABORT, b""),
    ]
    contexts = ("base:allocation", "qemu:dirty-bitmap:")
    info_a = ExportInfo("a", 1024, int(FLAGS), "from info", 1, 4096, 0xFFFFFFFF)
    assert conv.events == [
        ExportsListed(
            "newstyle-fixed",
            (
                ExportDetails("a", "A", info_a, contexts),
                ExportDetails("broken", "", None, contexts),
            ),
            structured=True,
        )
    ]


def test_list_details_stop_asking_after_unsupported():
    answer = standard_server(
        exports=(("a", ""), ("b", "")),
        overrides={
            Option.INFO: rep_error(Option.INFO, OptionReply.ERR_UNSUP),
            Option.LIST_META_CONTEXT: rep_error(Option.LIST_META_CONTEXT, OptionReply.ERR_UNSUP),
        },
    )
    conv = converse(ClientHandshake(list_exports=True, list_details=True), answer)
    assert conv.option_codes == [
        Option.STRUCTURED_REPLY,
        Option.LIST,
        Option.LIST_META_CONTEXT,
        Option.INFO,
        Option.ABORT,
    ]
    assert [e.info for e in conv.events[0].exports] == [None, None]


@pytest.mark.parametrize(
    ("reply", "message", "text"),
    [
        (OptionReply.ERR_POLICY, "", "server refuses to list exports (policy)"),
        (OptionReply.ERR_UNSUP, "", "server refuses to list exports (unsupported)"),
        (
            OptionReply.ERR_POLICY,
            "ask the admin",
            "server refuses to list exports (policy: ask the admin)",
        ),
    ],
)
def test_list_refused(reply, message, text):
    answer = standard_server(overrides={Option.LIST: rep_error(Option.LIST, reply, message)})
    with pytest.raises(HandshakeError) as info:
        converse(ClientHandshake(list_exports=True), answer)
    assert str(info.value) == text
    assert (info.value.reply, info.value.option) == (reply, Option.LIST)


def test_list_tls_required():
    answer = standard_server(
        overrides={Option.LIST: rep_error(Option.LIST, OptionReply.ERR_TLS_REQD)}
    )
    with pytest.raises(TLSRequiredError):
        converse(ClientHandshake(list_exports=True), answer)


def test_list_over_tls():
    conv = converse(ClientHandshake(list_exports=True, tls=True))
    assert conv.option_codes == [
        Option.STARTTLS,
        Option.STRUCTURED_REPLY,
        Option.LIST,
        Option.ABORT,
    ]
    assert conv.events[0] == StartTLS()
    assert conv.events[1].tls is True


# ---- fragmentation ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_byte_at_a_time_gives_the_same_events_and_bytes(name):
    ref = reference(name)
    hs, answer, flags = SCENARIOS[name]()
    conv = Conversation(hs, greeting(flags), answer)
    conv.run(chunk=1)
    assert conv.events == ref.events
    assert conv.options == ref.options
    assert conv.client_flags == ref.client_flags


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SCENARIOS)), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_fragmentation_of_the_whole_server_stream(name, cuts):
    ref = reference(name)
    stream = bytes(ref.server_bytes) + b"TRAILING"
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    hs, _, _ = SCENARIOS[name]()
    events = []
    sent = b""
    for piece in pieces:
        events += hs.receive_data(piece)
        sent += hs.data_to_send()
    assert events == ref.events
    assert sent == ref.client_flags + b"".join(opt(o, p) for o, p in ref.options)
    assert hs.trailing_data == ref.hs.trailing_data + b"TRAILING"  # (list: the ACK to ABORT)


# ---- malformed input -------------------------------------------------------------------


def started(**kwargs) -> ClientHandshake:
    """A handshake past the greeting, waiting for the reply to its first option."""
    hs = ClientHandshake(**kwargs)
    hs.receive_data(greeting())
    hs.data_to_send()
    return hs


def test_bad_reply_magic():
    bad = b"\x00" * 8 + struct.pack(">III", Option.STRUCTURED_REPLY, ACK, 0)
    with pytest.raises(ProtocolError, match="bad option reply magic"):
        started().receive_data(bad)


def test_reply_to_an_option_not_sent():
    with pytest.raises(
        ProtocolError,
        match="reply to NBD_OPT_GO while nbdtui waited for the reply to NBD_OPT_STRUCTURED_R",
    ):
        started().receive_data(rep(Option.GO, ACK))


def test_unexpected_reply_type():
    with pytest.raises(ProtocolError, match="unexpected NBD_REP_INFO"):
        started().receive_data(rep_info(Option.STRUCTURED_REPLY, Info.EXPORT, bytes(10)))
    with pytest.raises(ProtocolError, match="unexpected reply type 0x63"):
        started().receive_data(rep(Option.STRUCTURED_REPLY, 0x63))


def test_oversize_lengths_are_refused_from_the_header_alone():
    header = bytes.fromhex("0003e889045565a9")
    for reply, length in [
        (OptionReply.INFO, MAX_OPTION_REPLY + 1),
        (OptionReply.ERR_POLICY, 4097),
        (ACK, 1),
    ]:
        hs = started(structured_replies=False)
        with pytest.raises(ProtocolError, match=f"{length}-byte payload"):
            hs.receive_data(header + struct.pack(">III", Option.GO, reply, length))
    hs = started(list_exports=True, structured_replies=False)
    with pytest.raises(ProtocolError, match="8197-byte payload"):
        hs.receive_data(header + struct.pack(">III", Option.LIST, OptionReply.SERVER, 8197))


def test_truncated_or_overlong_info_payloads():
    for body_type, body in [
        (Info.EXPORT, bytes(8)),
        (Info.BLOCK_SIZE, bytes(13)),
        (Info.EXPORT, bytes(11)),
    ]:
        hs = started(structured_replies=False)
        with pytest.raises(ProtocolError, match="it must be"):
            hs.receive_data(rep_info(Option.GO, body_type, body)[:22])  # header + info type
    with pytest.raises(ProtocolError, match="truncated NBD_REP_INFO"):
        started(structured_replies=False).receive_data(rep(Option.GO, OptionReply.INFO, b"\x00"))
    with pytest.raises(ProtocolError, match="strings are at most 4096"):
        started(structured_replies=False).receive_data(info_name(Option.GO, "n" * 4097)[:22])


def test_bad_strings_and_entries():
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        started(structured_replies=False).receive_data(rep_info(Option.GO, Info.NAME, b"\xff"))
    hs = started(list_exports=True, structured_replies=False)
    with pytest.raises(ProtocolError, match="name length of 9 bytes"):
        hs.receive_data(rep(Option.LIST, OptionReply.SERVER, struct.pack(">I", 9) + b"abc"))
    hs = started(list_exports=True, structured_replies=False)
    with pytest.raises(ProtocolError, match="strings are at most 4096"):
        hs.receive_data(rep_server("n" * 4097))
    hs = started(list_contexts=True)
    hs.receive_data(rep(Option.STRUCTURED_REPLY, ACK))
    with pytest.raises(ProtocolError, match="truncated NBD_REP_META_CONTEXT"):
        hs.receive_data(rep(Option.LIST_META_CONTEXT, OptionReply.META_CONTEXT, b"\x00\x00"))


@pytest.mark.parametrize(
    "sizes",
    [(3, 4096, 1 << 25), (1 << 17, 1 << 17, 1 << 25), (512, 256, 1 << 25), (512, 4096, 1024)],
)
def test_invalid_block_sizes(sizes):
    with pytest.raises(ProtocolError, match="invalid NBD_INFO_BLOCK_SIZE"):
        started(structured_replies=False).receive_data(info_block_size(Option.GO, *sizes))


# ---- end of file -----------------------------------------------------------------------


def test_eof_error_in_each_state():
    hs = ClientHandshake(export_name="gone")
    assert "without sending the NBD greeting" in str(hs.eof_error())
    hs.receive_data(b"NBDMA")
    assert isinstance(hs.eof_error(), ProtocolError)
    hs.receive_data(b"GICIHAVEOPT\x00\x00")
    assert hs.data_to_send() == client_flags(0) + opt(Option.EXPORT_NAME, b"gone")
    error = hs.eof_error()
    assert isinstance(error, ExportNotFoundError)
    assert str(error) == "export 'gone' not found"
    assert (error.option, error.reply) == (Option.EXPORT_NAME, None)
    hs.receive_data(b"\x00")
    assert isinstance(hs.eof_error(), ProtocolError)

    hs = started()
    error = hs.eof_error()
    assert type(error) is HandshakeError
    assert "reply to NBD_OPT_STRUCTURED_REPLY" in str(error)

    hs = started(tls=True)
    hs.receive_data(rep(Option.STARTTLS, ACK))
    assert "instead of starting TLS" in str(hs.eof_error())
