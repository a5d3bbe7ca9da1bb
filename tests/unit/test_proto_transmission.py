"""The sans-IO transmission phase: bytes in, events out (no sockets)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbdtui.errors import Errno, ProtocolError
from nbdtui.proto.client_events import BlockStatus, ChunkError, Data, Hole, RequestDone
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import (
    REQUEST_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    ChunkType,
    Command,
    CommandFlag,
)
from nbdtui.proto.types import ReadTarget
from tests.support.proto_scenarios import (
    DONE,
    chunk,
    coalesce,
    data_chunk,
    error_chunk,
    hole_chunk,
    none_chunk,
    reply_piece,
    simple,
    status_chunk,
)

# ---- requests ---------------------------------------------------------------------


def test_request_header_layout():
    m = ClientTransmission(structured=True)
    cookie, header = m.request(Command.WRITE, 0x1234, 4096, CommandFlag.FUA)
    assert len(header) == 28
    assert struct.unpack(">IHHQQI", header) == (REQUEST_MAGIC, 1, 1, cookie, 0x1234, 4096)
    c2, _ = m.request(Command.READ, 0, 512)
    c3, _ = m.request(Command.WRITE_ZEROES, 0, 512, CommandFlag.NO_HOLE | CommandFlag.FAST_ZERO)
    assert len({cookie, c2, c3}) == 3
    assert m.in_flight == 3
    _, disc = m.request(Command.DISC)
    assert struct.unpack(">IHHQQI", disc)[2] == Command.DISC
    assert m.in_flight == 3  # DISC has no reply
    with pytest.raises(ValueError, match="DISC"):
        m.request(Command.READ, 0, 1)


@pytest.mark.parametrize(
    ("command", "flags", "offset", "length"),
    [
        (Command.READ, CommandFlag.NO_HOLE, 0, 1),
        (Command.WRITE, CommandFlag.REQ_ONE, 0, 1),
        (Command.TRIM, CommandFlag.FAST_ZERO, 0, 1),
        (Command.FLUSH, 0, 1, 0),
        (Command.DISC, 0, 0, 1),
        (Command.READ, 0, 0, 2**32),
        (Command.READ, 0, 2**64 - 1, 2),
        (99, 0, 0, 1),
    ],
)
def test_request_rejects_bad_arguments(command, flags, offset, length):
    m = ClientTransmission(structured=True)
    with pytest.raises(ValueError):
        m.request(command, offset, length, flags)
    assert m.in_flight == 0


def test_block_status_needs_structured_replies():
    with pytest.raises(ValueError, match="structured"):
        ClientTransmission(structured=False).request(Command.BLOCK_STATUS, 0, 512)


def test_cookies_in_flight_are_never_reused():
    m = ClientTransmission(structured=False)
    m._next_cookie = 2**64 - 2
    a, _ = m.request(Command.FLUSH)
    b, _ = m.request(Command.FLUSH)
    c, _ = m.request(Command.FLUSH)
    assert (a, b, c) == (2**64 - 2, 2**64 - 1, 1)
    m._next_cookie = a
    d, _ = m.request(Command.FLUSH)
    assert d not in (a, b, c)


# ---- simple replies -------------------------------------------------------------


def test_simple_replies_without_structured():
    m = ClientTransmission(structured=False)
    w, _ = m.request(Command.WRITE, 0, 3)
    r, _ = m.request(Command.READ, 100, 5)
    bad, _ = m.request(Command.READ, 0, 5)
    f, _ = m.request(Command.FLUSH)
    events = m.receive_data(
        simple(r, 0, b"hello") + simple(w) + simple(bad, Errno.EIO) + simple(f, 12345)
    )
    assert events == [
        Data(r, 100, 5, b"hello"),
        RequestDone(r),
        RequestDone(w),
        RequestDone(bad, Errno.EIO),
        RequestDone(f, Errno.EINVAL),  # unknown errno reads as EINVAL
    ]
    assert m.in_flight == 0


def test_simple_error_reply_to_read_is_tolerated_with_structured():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 512)
    w, _ = m.request(Command.WRITE, 0, 512)
    assert m.receive_data(simple(r, Errno.EINVAL) + simple(w)) == [
        RequestDone(r, Errno.EINVAL),
        RequestDone(w),
    ]


def test_successful_simple_reply_to_read_with_structured_is_a_protocol_error():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 4)
    with pytest.raises(ProtocolError, match="simple reply to NBD_CMD_READ"):
        m.receive_data(simple(r) + b"abcd")


# ---- structured replies ---------------------------------------------------------


def test_structured_read_data_and_holes_in_any_order():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 1000, 30)
    stream = (
        data_chunk(r, 1020, b"0123456789")
        + hole_chunk(r, 1010, 10)
        + data_chunk(r, 1000, b"abcdefghij")
        + none_chunk(r)
    )
    assert m.receive_data(stream) == [
        Data(r, 1020, 10, b"0123456789"),
        Hole(r, 1010, 10),
        Data(r, 1000, 10, b"abcdefghij"),
        RequestDone(r),
    ]


def test_data_chunk_may_carry_done():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 3)
    assert m.receive_data(data_chunk(r, 0, b"xyz", DONE)) == [
        Data(r, 0, 3, b"xyz"),
        RequestDone(r),
    ]


def test_interleaved_replies():
    m = ClientTransmission(structured=True)
    a, _ = m.request(Command.READ, 0, 4)
    b, _ = m.request(Command.READ, 4, 4)
    w, _ = m.request(Command.WRITE, 0, 4)
    stream = (
        data_chunk(b, 6, b"gh")
        + data_chunk(a, 0, b"abcd", DONE)
        + simple(w)
        + data_chunk(b, 4, b"ef")
        + none_chunk(b)
    )
    assert m.receive_data(stream) == [
        Data(b, 6, 2, b"gh"),
        Data(a, 0, 4, b"abcd"),
        RequestDone(a),
        RequestDone(w),
        Data(b, 4, 2, b"ef"),
        RequestDone(b),
    ]


def test_block_status_chunks():
    m = ClientTransmission(structured=True)
    c, _ = m.request(Command.BLOCK_STATUS, 0, 1 << 20)
    stream = status_chunk(c, 1, [(4096, 0), (8192, 3)], flags=0) + status_chunk(
        c, 2, [(1 << 20, 0)]
    )
    assert m.receive_data(stream) == [
        BlockStatus(c, 1, ((4096, 0), (8192, 3))),
        BlockStatus(c, 2, ((1 << 20, 0),)),
        RequestDone(c),
    ]


def test_block_status_success_without_status_fails_the_request():
    m = ClientTransmission(structured=True)
    c, _ = m.request(Command.BLOCK_STATUS, 0, 512)
    [done] = m.receive_data(none_chunk(c))
    assert done.error == Errno.EIO and "block status" in done.message


def test_error_chunks_fail_only_their_request():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 8)
    w, _ = m.request(Command.WRITE, 0, 8)
    t, _ = m.request(Command.TRIM, 0, 8)
    stream = (
        data_chunk(r, 0, b"abcd")
        + error_chunk(r, Errno.EIO, b"disk on fire", offset=4, flags=0)
        + none_chunk(r)
        + error_chunk(w, Errno.ENOSPC, b"full\n")
        + error_chunk(t, 77777)  # unknown value: EINVAL
    )
    assert m.receive_data(stream) == [
        Data(r, 0, 4, b"abcd"),
        ChunkError(r, Errno.EIO, "disk on fire", 4),
        RequestDone(r, Errno.EIO, "disk on fire", 4),
        ChunkError(w, Errno.ENOSPC, "full"),
        RequestDone(w, Errno.ENOSPC, "full"),
        ChunkError(t, Errno.EINVAL, ""),
        RequestDone(t, Errno.EINVAL, ""),
    ]
    assert m.in_flight == 0


def test_first_error_wins():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 8)
    events = m.receive_data(
        error_chunk(r, Errno.EIO, b"first", offset=0, flags=0)
        + error_chunk(r, Errno.ENOMEM, b"second", offset=4)
    )
    assert events[-1] == RequestDone(r, Errno.EIO, "first", 0)


def test_unknown_error_chunk_type_fails_only_its_request():
    m = ClientTransmission(structured=True)
    w, _ = m.request(Command.WRITE, 0, 1)
    f, _ = m.request(Command.FLUSH)
    body = struct.pack(">IH", Errno.EPERM, 3) + b"why" + b"extra"
    events = m.receive_data(chunk(w, 0x8000 | 99, body, DONE) + simple(f))
    assert events[0] == ChunkError(w, Errno.EPERM, "unknown error chunk type 32867: why")
    assert events[1].cookie == w and events[1].error == Errno.EPERM
    assert events[2] == RequestDone(f)


def test_read_success_with_missing_bytes_fails_the_request():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 10)
    events = m.receive_data(data_chunk(r, 0, b"abcd") + none_chunk(r))
    assert events[-1].error == Errno.EIO
    assert "4 of 10" in events[-1].message


def test_unknown_reply_flags_are_ignored():
    m = ClientTransmission(structured=True)
    w, _ = m.request(Command.WRITE, 0, 1)
    assert m.receive_data(chunk(w, ChunkType.NONE, b"", DONE | 0x8000)) == [RequestDone(w)]


# ---- protocol errors ------------------------------------------------------------


def _bad(structured=True):
    m = ClientTransmission(structured=structured)
    r, _ = m.request(Command.READ, 0x1000, 16)
    w, _ = m.request(Command.WRITE, 0x1000, 16)
    b, _ = m.request(Command.BLOCK_STATUS, 0x1000, 16)
    o, _ = m.request(Command.BLOCK_STATUS, 0x1000, 16, CommandFlag.REQ_ONE)
    d, _ = m.request(Command.READ, 0x1000, 16, CommandFlag.DF)
    return m, r, w, b, o, d


PROTOCOL_ERRORS = {
    "unknown cookie": (lambda r, w, b, o, d: simple(0xDEAD), "unknown cookie 0xdead"),
    "unknown cookie (structured)": (
        lambda r, w, b, o, d: none_chunk(0xBEEF),
        "unknown cookie 0xbeef",
    ),
    "bad magic": (
        lambda r, w, b, o, d: b"\x12\x34\x56\x78" + bytes(16),
        "bad reply magic 0x12345678",
    ),
    "extended magic": (
        lambda r, w, b, o, d: b"\x6e\x8a\x27\x8c" + bytes(28),
        "bad reply magic 0x6e8a278c",
    ),
    "data before range": (lambda r, w, b, o, d: data_chunk(r, 0xFFF, b"ab"), "outside the range"),
    "data after range": (lambda r, w, b, o, d: data_chunk(r, 0x100F, b"ab"), "outside the range"),
    "hole after range": (lambda r, w, b, o, d: hole_chunk(r, 0x1000, 17), "outside the range"),
    "overlap": (
        lambda r, w, b, o, d: data_chunk(r, 0x1004, b"abcd") + hole_chunk(r, 0x1000, 5),
        "overlapping",
    ),
    "overlap after": (
        lambda r, w, b, o, d: hole_chunk(r, 0x1004, 4) + data_chunk(r, 0x1007, b"ab"),
        "overlapping",
    ),
    "data for write": (lambda r, w, b, o, d: data_chunk(w, 0x1000, b"ab"), "unexpected"),
    "hole for block status": (lambda r, w, b, o, d: hole_chunk(b, 0x1000, 1), "unexpected"),
    "status for read": (lambda r, w, b, o, d: status_chunk(r, 1, [(16, 0)]), "unexpected"),
    "unknown type": (lambda r, w, b, o, d: chunk(w, 7, b"", DONE), "unknown chunk type 7"),
    "none without done": (lambda r, w, b, o, d: chunk(w, ChunkType.NONE), "DONE"),
    "none with payload": (lambda r, w, b, o, d: chunk(w, 0, b"x", DONE), "empty"),
    "short data": (lambda r, w, b, o, d: chunk(r, ChunkType.OFFSET_DATA, bytes(8)), "at least 9"),
    "bad hole length": (lambda r, w, b, o, d: chunk(r, ChunkType.OFFSET_HOLE, bytes(13)), "12"),
    "empty hole": (lambda r, w, b, o, d: hole_chunk(r, 0x1000, 0), "empty hole"),
    "status length": (lambda r, w, b, o, d: chunk(b, ChunkType.BLOCK_STATUS, bytes(13)), "length"),
    "status zero extent": (lambda r, w, b, o, d: status_chunk(b, 1, [(0, 0)]), "length 0"),
    "req_one two extents": (lambda r, w, b, o, d: status_chunk(o, 1, [(8, 0), (8, 1)]), "REQ_ONE"),
    "req_one too long": (lambda r, w, b, o, d: status_chunk(o, 1, [(17, 0)]), "REQ_ONE"),
    "df two chunks": (
        lambda r, w, b, o, d: data_chunk(d, 0x1000, b"ab") + data_chunk(d, 0x1002, b"cd"),
        "DF",
    ),
    "error too short": (lambda r, w, b, o, d: chunk(w, ChunkType.ERROR, bytes(5), DONE), "length"),
    "error message too long": (
        lambda r, w, b, o, d: chunk(w, ChunkType.ERROR, struct.pack(">IH", 5, 3) + b"ab", DONE),
        "does not fit",
    ),
    "error offset message too long": (
        lambda r, w, b, o, d: chunk(
            w, ChunkType.ERROR_OFFSET, struct.pack(">IH", 5, 1) + b"a" + bytes(7), DONE
        ),
        "does not fit",
    ),
    "error zero": (lambda r, w, b, o, d: error_chunk(w, 0), "error 0"),
    "error offset outside": (
        lambda r, w, b, o, d: error_chunk(w, 5, offset=0x1010),
        "outside the range",
    ),
    "huge status chunk": (
        lambda r, w, b, o, d: struct.pack(
            ">IHHQI", STRUCTURED_REPLY_MAGIC, 1, ChunkType.BLOCK_STATUS, b, 2**32 - 4
        ),
        "impossible length",
    ),
    "reply after done": (lambda r, w, b, o, d: simple(w) + simple(w), "unknown cookie"),
}


@pytest.mark.parametrize("case", sorted(PROTOCOL_ERRORS))
def test_protocol_errors(case):
    make, message = PROTOCOL_ERRORS[case]
    m, *cookies = _bad()
    with pytest.raises(ProtocolError, match=message):
        m.receive_data(make(*cookies))
    # the machine is dead: every later call raises the same error
    for call in (
        lambda: m.receive_data(b""),
        lambda: m.request(Command.FLUSH),
        lambda: m.payload_received(1),
    ):
        with pytest.raises(ProtocolError, match=message):
            call()
    assert m.error is not None


def test_events_before_a_violation_travel_with_the_error():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 2)
    w, _ = m.request(Command.WRITE, 0, 2)
    with pytest.raises(ProtocolError, match="bad reply magic") as info:
        m.receive_data(data_chunk(r, 0, b"ok", DONE) + b"\xff" * 20)
    assert info.value.events == [Data(r, 0, 2, b"ok"), RequestDone(r)]
    assert m.is_pending(w)


def test_structured_reply_when_not_negotiated():
    m = ClientTransmission(structured=False)
    w, _ = m.request(Command.WRITE, 0, 1)
    with pytest.raises(ProtocolError, match="not negotiated"):
        m.receive_data(none_chunk(w))


# ---- fragmentation and zero-copy ------------------------------------------------


def _scenario():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 40)
    w, _ = m.request(Command.WRITE, 0, 3)
    b, _ = m.request(Command.BLOCK_STATUS, 0, 100)
    stream = (
        data_chunk(r, 20, bytes(range(20)))
        + simple(w)
        + status_chunk(b, 1, [(50, 0), (50, 3)])
        + hole_chunk(r, 10, 10)
        + error_chunk(r, Errno.EIO, b"late", offset=0, flags=0)
        + data_chunk(r, 0, b"0123456789", DONE)
    )
    return m, stream


def test_fragmentation_at_every_byte():
    m, stream = _scenario()
    expected = m.receive_data(stream)
    assert expected[-1] == RequestDone(1, Errno.EIO, "late", 0)
    for cut in range(1, len(stream)):
        m, _ = _scenario()
        events = m.receive_data(stream[:cut]) + m.receive_data(stream[cut:])
        assert coalesce(events) == expected, cut
    m, _ = _scenario()
    events = []
    for i in range(len(stream)):
        events += m.receive_data(memoryview(stream)[i : i + 1])
    assert coalesce(events) == expected


def test_zero_copy_path_matches_bytes_path():
    m, stream = _scenario()
    expected = m.receive_data(stream)
    m, _ = _scenario()
    buffers = {1: bytearray(40)}
    events, pos = [], 0
    while pos < len(stream):
        target = m.read_target()
        if target is None:
            n = m.bytes_wanted()
            assert n > 0
            events += m.receive_data(stream[pos : pos + n])
        else:
            assert isinstance(target, ReadTarget)
            n = min(target.length, 7)  # a short receive
            buffers[target.cookie][target.offset : target.offset + n] = stream[pos : pos + n]
            got = m.payload_received(n)
            assert got[0] == Data(target.cookie, target.offset, n, None)
            events += got
        pos += n
    assert m.read_target() is None and m.bytes_wanted() == 16
    assert [e for e in events if not isinstance(e, Data)] == [
        e for e in expected if not isinstance(e, Data)
    ]
    assert buffers[1][20:40] == bytes(range(20)) and buffers[1][:10] == b"0123456789"


def test_payload_received_checks_its_argument():
    m = ClientTransmission(structured=False)
    r, _ = m.request(Command.READ, 0, 8)
    with pytest.raises(ValueError):
        m.payload_received(1)
    m.receive_data(simple(r))
    assert m.read_target() == ReadTarget(r, 0, 8)
    with pytest.raises(ValueError):
        m.payload_received(9)
    assert m.payload_received(8) == [Data(r, 0, 8), RequestDone(r)]


# ---- robustness -----------------------------------------------------------------


def _fresh():
    m = ClientTransmission(structured=True)
    cookies = [
        m.request(Command.READ, 0, 64)[0],
        m.request(Command.WRITE, 0, 64)[0],
        m.request(Command.BLOCK_STATUS, 0, 64)[0],
        m.request(Command.READ, 32, 8, CommandFlag.DF)[0],
    ]
    return m, cookies


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(reply_piece, max_size=8), cuts=st.lists(st.integers(0, 400), max_size=4))
def test_any_stream_yields_events_or_protocol_error(pieces, cuts):
    m, _ = _fresh()
    stream = b"".join(pieces)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    done = set()
    try:
        for a, b in itertools.pairwise(bounds):
            for ev in m.receive_data(stream[a:b]):
                assert isinstance(ev, Data | Hole | BlockStatus | ChunkError | RequestDone)
                assert ev.cookie not in done
                if isinstance(ev, RequestDone):
                    done.add(ev.cookie)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            m.receive_data(b"x")
        return
    assert m.bytes_wanted() > 0


def _run_stream(stream: bytes, bounds, *, copy: bool):
    """Feed ``stream`` cut at ``bounds``; the coalesced events (payload as bytes) and
    the protocol error's message, if any."""
    m, _ = _fresh()
    events: list = []
    error = None
    try:
        for a, b in itertools.pairwise(bounds):
            piece = bytearray(stream[a:b])
            got = m.receive_data(piece, copy=copy)
            for ev in got:
                if isinstance(ev, Data):
                    assert isinstance(ev.data, bytes if copy else memoryview)
                    ev = Data(ev.cookie, ev.offset, ev.length, bytes(ev.data))
                events.append(ev)
            piece[:] = b"\xee" * len(piece)  # a reused receive buffer: views were consumed
    except ProtocolError as exc:
        events += [
            Data(e.cookie, e.offset, e.length, bytes(e.data)) if isinstance(e, Data) else e
            for e in exc.events
        ]
        error = str(exc)
    return coalesce(events), error


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(reply_piece, max_size=8), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_parsing_in_place_matches_parsing_byte_by_byte(pieces, cuts):
    """Whole pieces are parsed in place from the caller's data, fragments buffered first:
    both give the same events and the same error, with or without copies."""
    stream = b"".join(pieces)
    whole = _run_stream(stream, [0, len(stream)], copy=True)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    assert _run_stream(stream, bounds, copy=False) == whole
    assert _run_stream(stream, range(len(stream) + 1), copy=True) == whole


def test_receive_data_without_copy_gives_views_of_the_data():
    m = ClientTransmission(structured=True)
    r, _ = m.request(Command.READ, 0, 8)
    buf = bytearray(data_chunk(r, 0, b"abcdefgh", DONE))
    data, done = m.receive_data(buf, copy=False)
    assert isinstance(data.data, memoryview) and data.data == b"abcdefgh"
    assert done == RequestDone(r)
    buf[-8:] = b"ABCDEFGH"  # a view, not a copy: valid only while the data is unchanged
    assert data.data == b"ABCDEFGH"
