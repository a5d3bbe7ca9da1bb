"""The sans-IO NBD server (nbdtui.proto.server_connection): bytes in, events and bytes out."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbdtui.errors import Errno
from nbdtui.proto.constants import (
    IHAVEOPT,
    OPTION_REPLY_MAGIC,
    REQUEST_MAGIC,
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    ChunkType,
    ClientFlag,
    Command,
    CommandFlag,
    Info,
    Option,
    OptionReply,
    ReplyFlag,
)
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.server_connection import ServerConnection, ServerState
from nbdtui.proto.server_events import (
    BlockStatusRequest,
    CacheRequest,
    ConnectionClosed,
    DisconnectRequest,
    FlushRequest,
    OptionHandled,
    ReadRequest,
    RequestRejected,
    TransmissionStarted,
    TrimRequest,
    WriteRequest,
    WriteZeroesRequest,
)
from nbdtui.proto.types import ExportInfo

MIB = 1024 * 1024
RW = (
    TF.HAS_FLAGS
    | TF.SEND_FLUSH
    | TF.SEND_FUA
    | TF.SEND_TRIM
    | TF.SEND_WRITE_ZEROES
    | TF.SEND_CACHE
    | TF.SEND_FAST_ZERO
    | TF.CAN_MULTI_CONN
)
RO = TF.HAS_FLAGS | TF.READ_ONLY | TF.SEND_FLUSH | TF.CAN_MULTI_CONN
EXPORTS = {
    "disk": ExportInfo("disk", MIB, int(RW), description="a test disk"),
    "ro": ExportInfo("ro", 8192, int(RO)),
}
BOTH = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES


# ---- wire helpers (written from the spec, independently of the code under test) ---------


def opt(option: int, data: bytes = b"") -> bytes:
    return struct.pack(">QII", IHAVEOPT, option, len(data)) + data


def rep(option: int, reply: int, data: bytes = b"") -> bytes:
    return struct.pack(">QIII", OPTION_REPLY_MAGIC, option, reply, len(data)) + data


def info_data(name: str, *infos: int) -> bytes:
    raw = name.encode()
    out = struct.pack(">I", len(raw)) + raw + struct.pack(">H", len(infos))
    return out + b"".join(struct.pack(">H", i) for i in infos)


def meta_data(name: str, *queries: str) -> bytes:
    raw = name.encode()
    out = struct.pack(">I", len(raw)) + raw + struct.pack(">I", len(queries))
    for query in queries:
        out += struct.pack(">I", len(query.encode())) + query.encode()
    return out


def request(
    command: int, cookie: int, offset: int = 0, length: int = 0, flags: int = 0, payload=b""
) -> bytes:
    header = struct.pack(">IHHQQI", REQUEST_MAGIC, flags, command, cookie, offset, length)
    return header + payload


def simple(cookie: int, error: int = 0) -> bytes:
    return struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, error, cookie)


def chunk(cookie: int, kind: int, payload: bytes, done: bool) -> bytes:
    flags = ReplyFlag.DONE if done else 0
    head = struct.pack(">IHHQI", STRUCTURED_REPLY_MAGIC, flags, kind, cookie, len(payload))
    return head + payload


def error_chunk(cookie: int, errno: int, message: str) -> bytes:
    text = message.encode()
    return chunk(cookie, ChunkType.ERROR, struct.pack(">IH", errno, len(text)) + text, True)


def connect(flags: int = BOTH, **kwargs) -> ServerConnection:
    conn = ServerConnection(EXPORTS, **kwargs)
    assert conn.data_to_send() == b"NBDMAGICIHAVEOPT\x00\x03"
    assert conn.receive_data(struct.pack(">I", flags)) == []
    assert conn.state is ServerState.OPTIONS
    return conn


def negotiate(
    name: str = "disk", *, structured: bool = True, meta: bool = True
) -> tuple[ServerConnection, TransmissionStarted]:
    conn = connect()
    if structured:
        conn.receive_data(opt(Option.STRUCTURED_REPLY))
        if meta:
            conn.receive_data(opt(Option.SET_META_CONTEXT, meta_data(name, "base:allocation")))
    events = conn.receive_data(opt(Option.GO, info_data(name, Info.BLOCK_SIZE)))
    conn.data_to_send()
    started = events[-1]
    assert isinstance(started, TransmissionStarted)
    assert conn.state is ServerState.TRANSMISSION
    return conn, started


# ---- handshake ---------------------------------------------------------------------------


def test_greeting_is_fixed_newstyle_with_no_zeroes():
    conn = ServerConnection(EXPORTS)
    assert conn.data_to_send() == bytes.fromhex("4e42444d41474943 49484156454f5054 0003")
    assert conn.data_to_send() == b""


@pytest.mark.parametrize("flags", [1 << 2, 0x80000000, BOTH | 8])
def test_unknown_client_flags_close_the_connection(flags):
    conn = ServerConnection(EXPORTS)
    conn.data_to_send()
    events = conn.receive_data(struct.pack(">I", flags))
    assert len(events) == 1 and isinstance(events[0], ConnectionClosed)
    assert events[0].error and "unknown handshake flags" in events[0].reason
    assert conn.state is ServerState.CLOSED
    assert conn.data_to_send() == b""
    assert conn.receive_data(opt(Option.LIST)) == []


@pytest.mark.parametrize("client_flags", [ClientFlag.FIXED_NEWSTYLE, BOTH])
def test_export_name_sends_size_flags_and_zeroes_unless_no_zeroes(client_flags):
    conn = connect(client_flags)
    events = conn.receive_data(opt(Option.EXPORT_NAME, b"disk"))
    zeroes = b"" if client_flags & ClientFlag.NO_ZEROES else bytes(124)
    assert conn.data_to_send() == struct.pack(">QH", MIB, RW) + zeroes
    assert events[0] == OptionHandled(Option.EXPORT_NAME, 0, "disk")
    started = events[1]
    assert isinstance(started, TransmissionStarted)
    assert started.via == "export_name" and not started.structured
    assert started.info.size == MIB and started.info.flags == RW
    assert conn.state is ServerState.TRANSMISSION


def test_export_name_after_structured_reply_advertises_df():
    conn = connect()
    conn.receive_data(opt(Option.STRUCTURED_REPLY))
    conn.data_to_send()
    events = conn.receive_data(opt(Option.EXPORT_NAME, b"disk"))
    assert conn.data_to_send() == struct.pack(">QH", MIB, RW | TF.SEND_DF)
    assert events[-1].structured


def test_export_name_of_unknown_export_closes_without_a_reply():
    conn = connect()
    events = conn.receive_data(opt(Option.EXPORT_NAME, b"nope"))
    assert conn.data_to_send() == b""
    assert len(events) == 1 and isinstance(events[0], ConnectionClosed) and events[0].error
    assert "'nope'" in events[0].reason


def test_empty_export_name_selects_the_default_export():
    conn = connect(default_export="ro")
    events = conn.receive_data(opt(Option.EXPORT_NAME))
    assert conn.data_to_send() == struct.pack(">QH", 8192, RO)
    assert events[-1].info.name == "ro"


def test_empty_export_name_without_default_is_unknown():
    conn = connect()
    conn.receive_data(opt(Option.INFO, info_data("")))
    assert conn.data_to_send() == rep(Option.INFO, OptionReply.ERR_UNKNOWN, b"no export named ''")


def test_abort_is_acknowledged_then_the_connection_closes():
    conn = connect()
    events = conn.receive_data(opt(Option.ABORT))
    assert conn.data_to_send() == rep(Option.ABORT, OptionReply.ACK)
    assert events == [
        OptionHandled(Option.ABORT, OptionReply.ACK),
        ConnectionClosed("client sent NBD_OPT_ABORT", error=False),
    ]
    assert conn.state is ServerState.CLOSED


def test_list_sends_one_server_reply_per_export_then_ack():
    conn = connect()
    events = conn.receive_data(opt(Option.LIST))
    expected = rep(Option.LIST, OptionReply.SERVER, b"\x00\x00\x00\x04diska test disk")
    expected += rep(Option.LIST, OptionReply.SERVER, b"\x00\x00\x00\x02ro")
    expected += rep(Option.LIST, OptionReply.ACK)
    assert conn.data_to_send() == expected
    assert events == [OptionHandled(Option.LIST, OptionReply.ACK)]


def test_list_with_data_is_invalid_and_list_can_be_disabled():
    conn = connect()
    conn.receive_data(opt(Option.LIST, b"x"))
    assert conn.data_to_send() == rep(
        Option.LIST, OptionReply.ERR_INVALID, b"NBD_OPT_LIST takes no data"
    )
    conn = connect(allow_list=False)
    conn.receive_data(opt(Option.LIST))
    assert conn.data_to_send() == rep(
        Option.LIST, OptionReply.ERR_POLICY, b"listing exports is disabled"
    )


def test_info_sends_export_name_description_and_block_size_then_ack():
    conn = connect()
    events = conn.receive_data(
        opt(Option.INFO, info_data("disk", Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE))
    )
    expected = rep(Option.INFO, OptionReply.INFO, struct.pack(">HQH", Info.EXPORT, MIB, RW))
    expected += rep(Option.INFO, OptionReply.INFO, b"\x00\x01disk")
    expected += rep(Option.INFO, OptionReply.INFO, b"\x00\x02a test disk")
    expected += rep(
        Option.INFO, OptionReply.INFO, struct.pack(">HIII", Info.BLOCK_SIZE, 1, 4096, 32 * MIB)
    )
    expected += rep(Option.INFO, OptionReply.ACK)
    assert conn.data_to_send() == expected
    assert events == [OptionHandled(Option.INFO, OptionReply.ACK, "disk")]
    assert conn.state is ServerState.OPTIONS  # INFO does not end the handshake


def test_info_for_the_default_export_names_it():
    conn = connect(default_export="disk")
    conn.receive_data(opt(Option.INFO, info_data("")))
    out = conn.data_to_send()
    assert rep(Option.INFO, OptionReply.INFO, b"\x00\x01disk") in out


def test_go_enters_transmission_with_the_same_information():
    conn = connect()
    conn.receive_data(opt(Option.STRUCTURED_REPLY))
    conn.data_to_send()
    events = conn.receive_data(opt(Option.GO, info_data("ro", Info.BLOCK_SIZE)))
    expected = rep(
        Option.GO, OptionReply.INFO, struct.pack(">HQH", Info.EXPORT, 8192, RO | TF.SEND_DF)
    )
    expected += rep(
        Option.GO, OptionReply.INFO, struct.pack(">HIII", Info.BLOCK_SIZE, 1, 4096, 32 * MIB)
    )
    expected += rep(Option.GO, OptionReply.ACK)
    assert conn.data_to_send() == expected
    started = events[-1]
    assert started.structured and started.block_size_requested and started.via == "go"
    assert started.info.read_only and started.info.can_df
    assert started.meta_contexts == ()
    assert conn.state is ServerState.TRANSMISSION


def test_go_without_structured_replies_does_not_advertise_df():
    _, started = negotiate(structured=False)
    assert started.info.flags == RW and not started.structured


def test_go_for_unknown_export_fails_and_haggling_goes_on():
    conn = connect()
    events = conn.receive_data(opt(Option.GO, info_data("missing")))
    assert conn.data_to_send() == rep(
        Option.GO, OptionReply.ERR_UNKNOWN, b"no export named 'missing'"
    )
    assert events == [OptionHandled(Option.GO, OptionReply.ERR_UNKNOWN)]
    assert conn.state is ServerState.OPTIONS


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00\x00\x10disk\x00\x00", b"export name runs past the end of the option data"),
        (info_data("disk") + b"!", b"option data is longer than its fields"),
        (b"\x00\x00", b"option data is too short"),
        (b"\x00\x00\x00\x02\xff\xfe\x00\x00", b"export name is not valid UTF-8"),
        (info_data("disk")[:-2] + b"\x00\x02\x00\x00", b"option data is too short"),
    ],
)
def test_malformed_info_is_invalid(data, message):
    conn = connect()
    conn.receive_data(opt(Option.INFO, data))
    assert conn.data_to_send() == rep(Option.INFO, OptionReply.ERR_INVALID, message)


def test_structured_reply_is_acked_once():
    conn = connect()
    conn.receive_data(opt(Option.STRUCTURED_REPLY))
    assert conn.data_to_send() == rep(Option.STRUCTURED_REPLY, OptionReply.ACK)
    conn.receive_data(opt(Option.STRUCTURED_REPLY))
    assert conn.data_to_send() == rep(
        Option.STRUCTURED_REPLY,
        OptionReply.ERR_INVALID,
        b"structured replies are already negotiated",
    )
    conn = connect()
    conn.receive_data(opt(Option.STRUCTURED_REPLY, b"x"))
    assert conn.data_to_send() == rep(
        Option.STRUCTURED_REPLY, OptionReply.ERR_INVALID, b"NBD_OPT_STRUCTURED_REPLY takes no data"
    )


@pytest.mark.parametrize("option", [Option.LIST_META_CONTEXT, Option.SET_META_CONTEXT])
def test_meta_contexts_need_structured_replies_first(option):
    conn = connect()
    conn.receive_data(opt(option, meta_data("disk", "base:allocation")))
    assert conn.data_to_send() == rep(
        option,
        OptionReply.ERR_INVALID,
        b"negotiate NBD_OPT_STRUCTURED_REPLY before meta contexts",
    )


def _structured() -> ServerConnection:
    conn = connect()
    conn.receive_data(opt(Option.STRUCTURED_REPLY))
    conn.data_to_send()
    return conn


def _meta(option: int, ident: int, name: str) -> bytes:
    return rep(option, OptionReply.META_CONTEXT, struct.pack(">I", ident) + name.encode())


@pytest.mark.parametrize(
    "queries, listed",
    [
        ((), ["base:allocation"]),
        (("base:",), ["base:allocation"]),
        (("base:allocation",), ["base:allocation"]),
        (("base:allocation", "base:"), ["base:allocation"]),
        (("base:unknown-leaf",), []),
        (("qemu:dirty-bitmap:x", "x-foo:"), []),
    ],
)
def test_list_meta_context(queries, listed):
    conn = _structured()
    events = conn.receive_data(opt(Option.LIST_META_CONTEXT, meta_data("disk", *queries)))
    expected = b"".join(_meta(Option.LIST_META_CONTEXT, 0, name) for name in listed)
    assert conn.data_to_send() == expected + rep(Option.LIST_META_CONTEXT, OptionReply.ACK)
    assert events == [OptionHandled(Option.LIST_META_CONTEXT, OptionReply.ACK, "disk")]


def test_meta_context_query_without_namespace_is_invalid():
    conn = _structured()
    conn.receive_data(opt(Option.LIST_META_CONTEXT, meta_data("disk", "allocation")))
    assert conn.data_to_send() == rep(
        Option.LIST_META_CONTEXT,
        OptionReply.ERR_INVALID,
        b"query 'allocation' does not start with a namespace and a colon",
    )


def test_meta_context_for_unknown_export():
    conn = _structured()
    conn.receive_data(opt(Option.SET_META_CONTEXT, meta_data("zz", "base:allocation")))
    assert conn.data_to_send() == rep(
        Option.SET_META_CONTEXT, OptionReply.ERR_UNKNOWN, b"no export named 'zz'"
    )


def test_set_meta_context_selects_base_allocation_for_go():
    conn = _structured()
    conn.receive_data(opt(Option.SET_META_CONTEXT, meta_data("disk", "base:allocation")))
    assert conn.data_to_send() == _meta(Option.SET_META_CONTEXT, 1, "base:allocation") + rep(
        Option.SET_META_CONTEXT, OptionReply.ACK
    )
    events = conn.receive_data(opt(Option.GO, info_data("disk")))
    assert events[-1].meta_contexts == (("base:allocation", 1),)


@pytest.mark.parametrize("queries", [(), ("base:",), ("base:nothing",), ("x-y:z",)])
def test_set_meta_context_that_selects_nothing(queries):
    conn = _structured()
    conn.receive_data(opt(Option.SET_META_CONTEXT, meta_data("disk", *queries)))
    assert conn.data_to_send() == rep(Option.SET_META_CONTEXT, OptionReply.ACK)
    events = conn.receive_data(opt(Option.GO, info_data("disk")))
    assert events[-1].meta_contexts == ()


def test_meta_context_chosen_for_another_export_does_not_carry_over():
    conn = _structured()
    conn.receive_data(opt(Option.SET_META_CONTEXT, meta_data("ro", "base:allocation")))
    events = conn.receive_data(opt(Option.GO, info_data("disk")))
    assert events[-1].meta_contexts == ()


def test_failed_set_meta_context_clears_the_previous_choice():
    conn = _structured()
    conn.receive_data(opt(Option.SET_META_CONTEXT, meta_data("disk", "base:allocation")))
    conn.receive_data(opt(Option.SET_META_CONTEXT, meta_data("disk", "bad")))
    events = conn.receive_data(opt(Option.GO, info_data("disk")))
    assert events[-1].meta_contexts == ()


@pytest.mark.parametrize(
    "option, message",
    [
        (Option.STARTTLS, b"NBD_OPT_STARTTLS is not supported"),
        (Option.EXTENDED_HEADERS, b"NBD_OPT_EXTENDED_HEADERS is not supported"),
        (Option.PEEK_EXPORT, b"NBD_OPT_PEEK_EXPORT is not supported"),
        (99, b"option 99 is not supported"),
    ],
)
def test_unsupported_options(option, message):
    conn = connect()
    events = conn.receive_data(opt(option))
    assert conn.data_to_send() == rep(option, OptionReply.ERR_UNSUP, message)
    assert events == [OptionHandled(option, OptionReply.ERR_UNSUP)]
    assert conn.state is ServerState.OPTIONS


def test_bad_option_magic_closes():
    conn = connect()
    events = conn.receive_data(struct.pack(">QII", 0x1234, Option.LIST, 0))
    assert isinstance(events[0], ConnectionClosed) and events[0].error
    assert conn.data_to_send() == b""


def test_oversized_option_is_skipped_unread_and_refused():
    conn = connect()
    size = 200_000
    events = conn.receive_data(struct.pack(">QII", IHAVEOPT, Option.INFO, size))
    assert conn.data_to_send() == rep(
        Option.INFO,
        OptionReply.ERR_TOO_BIG,
        b"option data of 200000 bytes is larger than 65536",
    )
    assert events == [OptionHandled(Option.INFO, OptionReply.ERR_TOO_BIG)]
    for _ in range(size // 50_000):
        assert conn.receive_data(bytes(50_000)) == []
    conn.receive_data(opt(Option.LIST))  # parsing resumes right after the skipped bytes
    assert conn.data_to_send().endswith(rep(Option.LIST, OptionReply.ACK))


def _script() -> bytes:
    return (
        struct.pack(">I", BOTH)
        + opt(Option.LIST)
        + opt(Option.STRUCTURED_REPLY)
        + opt(Option.SET_META_CONTEXT, meta_data("disk", "base:allocation"))
        + opt(Option.INFO, info_data("disk", Info.DESCRIPTION))
        + opt(Option.GO, info_data("disk", Info.BLOCK_SIZE))
        + request(Command.WRITE, 1, 512, 5, payload=b"hello")
        + request(Command.BLOCK_STATUS, 2, 0, 4096, CommandFlag.REQ_ONE)
        + request(Command.DISC, 3)
    )


def _run(pieces: list[bytes]) -> tuple[list[object], bytes]:
    conn = ServerConnection(EXPORTS)
    events: list[object] = []
    out = conn.data_to_send()
    for piece in pieces:
        events += conn.receive_data(piece)
        out += conn.data_to_send()
    return events, out


def _normal(events: list[object]) -> list[object]:
    return [(type(e), bytes(e.data)) if isinstance(e, WriteRequest) else e for e in events]


def test_whole_session_byte_by_byte_equals_one_piece():
    script = _script()
    whole_events, whole_out = _run([script])
    split_events, split_out = _run([script[i : i + 1] for i in range(len(script))])
    assert _normal(split_events) == _normal(whole_events)
    assert split_out == whole_out
    kinds = [type(e) for e in whole_events]
    assert kinds == [
        OptionHandled,
        OptionHandled,
        OptionHandled,
        OptionHandled,
        OptionHandled,
        TransmissionStarted,
        WriteRequest,
        BlockStatusRequest,
        DisconnectRequest,
        ConnectionClosed,
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(_script())), max_size=30))
def test_any_fragmentation_gives_the_same_events(cuts):
    script = _script()
    points = sorted(set(cuts))
    pieces = [script[a:b] for a, b in zip([0, *points], [*points, len(script)], strict=True)]
    pieces = [p for p in pieces if p]
    assert _normal(_run(pieces)[0]) == _normal(_run([script])[0])


# ---- transmission: requests ----------------------------------------------------------------


def test_pipelined_requests_become_events_with_their_flags():
    conn, _ = negotiate()
    data = (
        request(Command.READ, 10, 4096, 512, CommandFlag.DF)
        + request(Command.WRITE, 11, 0, 3, CommandFlag.FUA, b"abc")
        + request(Command.FLUSH, 12)
        + request(Command.TRIM, 13, 8192, 4096, CommandFlag.FUA)
        + request(Command.CACHE, 14, 0, MIB)
        + request(Command.WRITE_ZEROES, 15, 0, 65536, CommandFlag.NO_HOLE | CommandFlag.FAST_ZERO)
        + request(Command.BLOCK_STATUS, 16, 0, MIB, CommandFlag.REQ_ONE)
        + request(Command.DISC, 17)
    )
    events = conn.receive_data(data)
    assert conn.data_to_send() == b""
    read, write, flush, trim, cache, zero, status, disc, closed = events
    assert read == ReadRequest(10, CommandFlag.DF, 4096, 512) and read.df
    assert isinstance(write, WriteRequest) and write.fua and bytes(write.data) == b"abc"
    assert (write.cookie, write.offset, write.length) == (11, 0, 3)
    assert flush == FlushRequest(12, 0, 0, 0)
    assert trim == TrimRequest(13, CommandFlag.FUA, 8192, 4096) and trim.fua
    assert cache == CacheRequest(14, 0, 0, MIB)
    assert isinstance(zero, WriteZeroesRequest) and zero.no_hole and zero.fast_zero
    assert isinstance(status, BlockStatusRequest) and status.req_one
    assert disc == DisconnectRequest(17)
    assert closed == ConnectionClosed("client sent NBD_CMD_DISC", error=False)
    assert conn.pending == 7
    assert conn.receive_data(request(Command.READ, 18, 0, 1)) == []  # nothing after DISC


def test_write_payload_in_one_piece_is_not_copied():
    conn, _ = negotiate()
    payload = bytes(range(256)) * 256
    data = request(Command.WRITE, 1, 0, len(payload), payload=payload)
    (event,) = conn.receive_data(data)
    assert isinstance(event, WriteRequest)
    assert event.data.obj is data  # a view of the received bytes
    assert event.data.readonly and event.data == payload


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=20))
def test_write_payload_split_anywhere_is_reassembled(sizes):
    conn, _ = negotiate()
    payload = bytes(i % 251 for i in range(70_000))
    data = request(Command.WRITE, 7, 100, len(payload), payload=payload)
    data += request(Command.FLUSH, 8)
    events: list[object] = []
    pos = 0
    for size in sizes * (len(data) // sum(sizes) + 1):
        if pos >= len(data):
            break
        events += conn.receive_data(data[pos : pos + size])
        pos += size
    write, flush = events
    assert isinstance(write, WriteRequest) and bytes(write.data) == payload
    assert isinstance(flush, FlushRequest) and flush.cookie == 8


def test_bad_request_magic_closes_the_connection():
    conn, _ = negotiate()
    events = conn.receive_data(struct.pack(">IHHQQI", 0x25609514, 0, 0, 1, 0, 512))
    assert len(events) == 1 and isinstance(events[0], ConnectionClosed)
    assert events[0].error and "0x25609514" in events[0].reason
    assert conn.data_to_send() == b""


REJECTIONS = [
    # (export, structured, command, flags, offset, length, errno, message)
    ("disk", True, Command.READ, 0, MIB - 1, 2, Errno.EINVAL, "beyond the end"),
    ("disk", True, Command.TRIM, 0, MIB, 1, Errno.EINVAL, "beyond the end"),
    ("disk", True, Command.BLOCK_STATUS, 0, MIB, 1, Errno.EINVAL, "beyond the end"),
    ("disk", True, Command.BLOCK_STATUS, 0, 0, 0, Errno.EINVAL, "of length 0"),
    ("disk", True, Command.WRITE_ZEROES, 0, 0, MIB + 1, Errno.ENOSPC, "beyond the end"),
    ("disk", True, 8, 0, 0, 0, Errno.EINVAL, "unknown NBD_CMD_RESIZE"),
    ("disk", True, 42, 0, 0, 0, Errno.EINVAL, "unknown command 42"),
    ("disk", True, Command.READ, CommandFlag.REQ_ONE, 0, 1, Errno.EINVAL, "REQ_ONE not valid"),
    ("disk", True, Command.FLUSH, 0, 1, 0, Errno.EINVAL, "nonzero offset"),
    ("disk", True, Command.READ, 1 << 9, 0, 1, Errno.EINVAL, "flags 0x200 not valid"),
    ("disk", True, Command.READ, 0, 0, 32 * MIB + 1, Errno.EOVERFLOW, "larger than 33554432"),
    ("disk", False, Command.READ, 0, 0, 32 * MIB + 1, Errno.EINVAL, "larger than 33554432"),
    ("disk", False, Command.READ, CommandFlag.DF, 0, 1, Errno.EINVAL, "DF not valid"),
    ("disk", False, Command.BLOCK_STATUS, 0, 0, 1, Errno.EINVAL, "meta context"),
    ("ro", True, Command.TRIM, 0, 0, 512, Errno.EPERM, "read-only"),
    ("ro", True, Command.WRITE_ZEROES, 0, 0, 512, Errno.EPERM, "read-only"),
    ("ro", True, Command.CACHE, 0, 0, 512, Errno.EINVAL, "not supported"),
    ("ro", True, Command.READ, CommandFlag.FUA, 0, 512, Errno.EINVAL, "FUA not valid"),
]


@pytest.mark.parametrize(
    "name, structured, command, flags, offset, length, errno, message", REJECTIONS
)
def test_invalid_requests_are_answered_with_an_error(
    name, structured, command, flags, offset, length, errno, message
):
    conn, _ = negotiate(name, structured=structured)
    (event,) = conn.receive_data(request(command, 0xC0FFEE, offset, length, flags))
    assert isinstance(event, RequestRejected)
    assert (event.cookie, event.error) == (0xC0FFEE, errno)
    assert message in event.message
    out = conn.data_to_send()
    if structured:
        assert out == error_chunk(0xC0FFEE, errno, event.message)
    else:
        assert out == simple(0xC0FFEE, errno)
    assert conn.pending == 0


@pytest.mark.parametrize(
    "name, offset, length, errno",
    [("ro", 0, 512, Errno.EPERM), ("disk", MIB - 1, 512, Errno.ENOSPC)],
)
def test_refused_write_payload_is_skipped(name, offset, length, errno):
    conn, _ = negotiate(name, structured=False)
    data = request(Command.WRITE, 5, offset, length, payload=b"\xaa" * length)
    data += request(Command.READ, 6, 0, 16)
    events = conn.receive_data(data[:40]) + conn.receive_data(data[40:])
    assert [type(e) for e in events] == [RequestRejected, ReadRequest]
    assert events[0].error == errno and events[1].cookie == 6
    assert conn.data_to_send() == simple(5, errno)


def test_oversized_write_is_refused_and_its_payload_skipped():
    conn, _ = negotiate()
    length = 32 * MIB + 1
    (event,) = conn.receive_data(request(Command.WRITE, 9, 0, length))
    assert isinstance(event, RequestRejected) and event.error == Errno.EINVAL
    assert conn.data_to_send() == error_chunk(9, Errno.EINVAL, event.message)
    piece = bytes(MIB)
    for _ in range(32):
        assert conn.receive_data(piece) == []
    events = conn.receive_data(b"\x00" + request(Command.FLUSH, 10))
    assert events == [FlushRequest(10, 0, 0, 0)]


def test_eof_is_reported():
    conn, _ = negotiate()
    assert conn.receive_data(b"") == [
        ConnectionClosed("client closed the connection without NBD_CMD_DISC")
    ]
    conn, _ = negotiate()
    conn.receive_data(request(Command.READ, 1, 0, 1)[:10])
    (closed,) = conn.receive_data(b"")
    assert "in the middle of a request" in closed.reason


# ---- transmission: replies -----------------------------------------------------------------


def test_simple_replies():
    conn, _ = negotiate(structured=False)
    conn.receive_data(
        request(Command.READ, 1, 16, 4)
        + request(Command.FLUSH, 2)
        + request(Command.READ, 3, 0, 4)
        + request(Command.TRIM, 4, 0, 4)
    )
    conn.send_read(1, b"data")
    conn.send_reply(2)
    conn.send_error(3, Errno.EIO, "disk on fire")
    conn.send_error(4, Errno.EPERM)
    assert conn.data_to_send() == (
        simple(1) + b"data" + simple(2) + simple(3, Errno.EIO) + simple(4, Errno.EPERM)
    )
    assert conn.pending == 0


def test_structured_read_replies():
    conn, _ = negotiate()
    conn.receive_data(
        request(Command.READ, 1, 4096, 8)
        + request(Command.READ, 2, 0, 8192)
        + request(Command.READ, 3, 0, 0)
        + request(Command.READ, 4, 0, 512)
    )
    conn.send_read(1, b"12345678")
    conn.send_read_data(2, 0, b"ab")
    conn.send_read_hole(2, 2, 4094)
    conn.send_read_data(2, 4096, b"z" * 4096, done=True)
    conn.send_read(3, b"")
    conn.send_error(4, Errno.EIO, "bad sector", offset=0)
    expected = chunk(1, ChunkType.OFFSET_DATA, struct.pack(">Q", 4096) + b"12345678", True)
    expected += chunk(2, ChunkType.OFFSET_DATA, struct.pack(">Q", 0) + b"ab", False)
    expected += chunk(2, ChunkType.OFFSET_HOLE, struct.pack(">QI", 2, 4094), False)
    expected += chunk(2, ChunkType.OFFSET_DATA, struct.pack(">Q", 4096) + b"z" * 4096, True)
    expected += chunk(3, ChunkType.NONE, b"", True)
    expected += chunk(
        4, ChunkType.ERROR_OFFSET, struct.pack(">IH", 5, 10) + b"bad sector" + bytes(8), True
    )
    assert conn.data_to_send() == expected
    assert conn.pending == 0


def test_structured_block_status_and_done_replies():
    conn, started = negotiate()
    ctx = dict(started.meta_contexts)["base:allocation"]
    conn.receive_data(
        request(Command.BLOCK_STATUS, 1, 0, MIB)
        + request(Command.WRITE_ZEROES, 2, 0, 512)
        + request(Command.TRIM, 3, 0, 512)
    )
    conn.send_block_status(1, ctx, [(65536, 0), (MIB - 65536, 3)])
    conn.send_reply(2)
    conn.send_done(3)
    expected = chunk(
        1, ChunkType.BLOCK_STATUS, struct.pack(">IIIII", 1, 65536, 0, MIB - 65536, 3), True
    )
    expected += simple(2)
    expected += chunk(3, ChunkType.NONE, b"", True)
    assert conn.data_to_send() == expected


def test_large_read_data_is_queued_without_joining():
    conn, _ = negotiate()
    conn.receive_data(request(Command.READ, 1, 0, MIB))
    data = bytes(MIB)
    conn.send_read(1, data)
    header, body = conn.buffers_to_send()
    assert header == struct.pack(
        ">IHHQIQ", STRUCTURED_REPLY_MAGIC, ReplyFlag.DONE, ChunkType.OFFSET_DATA, 1, MIB + 8, 0
    )
    assert body.obj is data


def test_reply_misuse_is_caught():
    conn, _ = negotiate(structured=False)
    conn.receive_data(request(Command.READ, 1, 0, 4) + request(Command.FLUSH, 2))
    with pytest.raises(ValueError, match="no request with cookie"):
        conn.send_reply(99)
    with pytest.raises(ValueError, match="needs a reply with data"):
        conn.send_reply(1)
    with pytest.raises(ValueError, match="all its data"):
        conn.send_read(1, b"toolong")
    with pytest.raises(ValueError, match="structured replies were not negotiated"):
        conn.send_read_hole(1, 0, 4)
    conn.send_reply(2)
    with pytest.raises(ValueError, match="no request with cookie"):
        conn.send_reply(2)
    conn, _ = negotiate()
    conn.receive_data(request(Command.READ, 1, 100, 4))
    with pytest.raises(ValueError, match="outside the READ request"):
        conn.send_read_data(1, 99, b"ab")
    with pytest.raises(ValueError, match="outside the READ request"):
        conn.send_read_hole(1, 102, 4)
