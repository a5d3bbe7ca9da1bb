"""Property tests: whatever bytes a server sends, and however long it goes on, the
client's two sans-IO machines hold bounded memory (issue 13). Each example streams
megabytes (arbitrary bytes, or one hypothesis-chosen reply repeated without end) into
a machine, drops the events as a driver would once applied, and measures with
tracemalloc what the machine still holds; the caps are lowered so that a flood meets
them within the stream."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbdtui.errors import HandshakeError, ProtocolError
from nbdtui.proto import client_transmission, option_caps
from nbdtui.proto.client_events import StartTLS
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import Command, Info, Option, OptionReply
from tests.support.proto_scenarios import (
    ACK,
    FIXED,
    NO_ZEROES,
    greeting,
    rep,
    reply_piece,
    status_chunk,
)

STREAM = 4 << 20  # bytes fed per example
FEED = 64 << 10  # per receive_data call, as a socket would deliver them
HELD = 1 << 20  # what a machine may hold at most, whatever the stream


@pytest.fixture(autouse=True)
def small_caps() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(option_caps, "MAX_OPTION_REPLIES", 2000)
        mp.setattr(option_caps, "MAX_OPTION_REPLY_BYTES", 256 << 10)
        mp.setattr(option_caps, "MAX_HANDSHAKE_REPLY_BYTES", 512 << 10)
        mp.setattr(client_transmission, "MAX_STATUS_EXTENTS", 1000)
        yield


def stream_into(feed: Callable[[bytes], object], chunks: Iterator[bytes]) -> int:
    """Feed ``chunks`` (up to STREAM bytes) until the machine raises; the most it held
    (tracemalloc, events dropped after each call)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        most = 0
        fed = 0
        for chunk in chunks:
            try:
                feed(chunk)  # (the events are dropped: the driver applied them)
            except (ProtocolError, HandshakeError):
                break
            most = max(most, tracemalloc.get_traced_memory()[0] - base)
            fed += len(chunk)
            if fed >= STREAM:
                break
        return most
    finally:
        tracemalloc.stop()


def repeated(prefix: bytes, unit: bytes) -> Iterator[bytes]:
    block = unit * max(1, FEED // max(len(unit), 1))
    yield prefix
    while True:
        yield block


def arbitrary(data: bytes) -> Iterator[bytes]:
    while True:
        yield data


# ---- handshake -------------------------------------------------------------------------

HANDSHAKES = {
    "list": (lambda: ClientHandshake(list_exports=True, list_details=True), Option.LIST),
    "info": (
        lambda: ClientHandshake(export_name="disk", list_contexts=True),
        Option.LIST_META_CONTEXT,
    ),
    "go": (lambda: ClientHandshake(export_name="disk"), Option.SET_META_CONTEXT),
}

_name = st.text(max_size=40).map(str.encode)
# (reply type, payload) of one reply to the option awaited: well formed or not
_intermediate = st.one_of(
    st.builds(lambda n, d: (OptionReply.SERVER, len(n).to_bytes(4, "big") + n + d), _name, _name),
    st.builds(
        lambda i, n: (OptionReply.META_CONTEXT, i.to_bytes(4, "big") + n), st.integers(0, 9), _name
    ),
    st.builds(
        lambda t, body: (OptionReply.INFO, t.to_bytes(2, "big") + body),
        st.sampled_from([Info.NAME, Info.DESCRIPTION, 77]),
        st.binary(max_size=200),
    ),
    st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=64)),
)


def _opened(make: Callable[[], ClientHandshake], until: Option) -> tuple[ClientHandshake, bytes]:
    """A handshake that has just sent ``until`` (earlier options acknowledged)."""
    hs = make()
    hs.receive_data(greeting(FIXED | NO_ZEROES))
    hs.data_to_send()
    hs.receive_data(rep(Option.STRUCTURED_REPLY, ACK))
    sent = hs.data_to_send()
    while until.to_bytes(4, "big") not in sent[8:12]:
        option = int.from_bytes(sent[8:12], "big")
        hs.receive_data(rep(option, OptionReply.ERR_UNSUP))
        sent = hs.data_to_send()
    return hs, sent


def _feed_handshake(hs: ClientHandshake) -> Callable[[bytes], object]:
    def feed(data: bytes) -> object:
        events = hs.receive_data(data)
        if StartTLS() in events:
            hs.tls_established()
        hs.data_to_send()
        return events

    return feed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(HANDSHAKES)), _intermediate)
def test_an_endless_stream_of_one_reply_is_bounded(which, reply):
    make, until = HANDSHAKES[which]
    hs, _ = _opened(make, until)
    kind, payload = reply
    held = stream_into(_feed_handshake(hs), repeated(b"", rep(until, kind, payload)))
    assert held < HELD, held


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(HANDSHAKES)), st.binary(min_size=1, max_size=4096))
def test_arbitrary_bytes_into_the_handshake_are_bounded(which, data):
    make, _ = HANDSHAKES[which]
    hs = make()
    held = stream_into(_feed_handshake(hs), repeated(greeting(FIXED | NO_ZEROES), data))
    assert held < HELD, held


# ---- transmission ------------------------------------------------------------------------


def _machine() -> tuple[ClientTransmission, list[int]]:
    m = ClientTransmission(structured=True)
    cookies = [m.request(Command.BLOCK_STATUS, 0, 1 << 30)[0] for _ in range(3)]
    cookies += [m.request(Command.READ, 0, 1 << 20)[0] for _ in range(3)]
    return m, cookies


_extents = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 3)), min_size=1, max_size=50)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 5), st.integers(0, 40), _extents)
def test_block_status_chunks_without_end_are_bounded(which, context, extents):
    """Chunks without DONE for one request, for ever: one per context is kept."""
    m, cookies = _machine()
    cookie = cookies[which % 3]
    unit = status_chunk(cookie, context, extents * 200, flags=0)
    held = stream_into(m.receive_data, repeated(b"", unit))
    assert held < HELD, held


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(reply_piece, min_size=1, max_size=8))
def test_arbitrary_replies_repeated_are_bounded(pieces):
    m, _ = _machine()
    held = stream_into(m.receive_data, arbitrary(b"".join(pieces) or b"\0"))
    assert held < HELD, held


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=4096))
def test_arbitrary_bytes_into_transmission_are_bounded(data):
    m, _ = _machine()
    held = stream_into(m.receive_data, arbitrary(data))
    assert held < HELD, held


def test_a_full_size_status_chunk_of_tiny_extents_is_bounded():
    """The largest chunk accepted (16 MiB of 1-byte alternating extents), fed as a
    socket delivers it: what the machine keeps is capped, not 2**21 tuples."""
    m, cookies = _machine()
    stream = status_chunk(cookies[0], 1, [(1, 0), (1, 3)] * (1 << 20))
    tracemalloc.start()
    try:
        for i in range(0, len(stream), FEED):
            events = m.receive_data(stream[i : i + FEED])
            del events
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the 16 MiB chunk body itself is buffered (a bounded cost), the extents kept are not
    # 2**21 tuples (about 150 MiB)
    assert peak < 24 << 20, peak
