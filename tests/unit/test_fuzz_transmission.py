"""Property tests on the sans-IO transmission phase, beyond test_proto_transmission
(which feeds arbitrary structured-reply streams through ``receive_data``):

* the zero-copy path the connection really uses (``read_target`` /
  ``payload_received``, mixed with ``receive_data``) gives the same events, the same
  payload bytes and the same ProtocolError as plain ``receive_data``, for any stream;
* a machine without structured replies, and pure random bytes, yield only events or
  ProtocolError; after an error every call raises it; no reply is completed twice.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbdtui.errors import ProtocolError
from nbdtui.proto.client_events import BlockStatus, ChunkError, Data, Hole, RequestDone
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import Command, CommandFlag
from tests.support.proto_scenarios import coalesce, reply_piece, simple

EVENT_TYPES = (Data, Hole, BlockStatus, ChunkError, RequestDone)


def structured_machine() -> ClientTransmission:
    m = ClientTransmission(structured=True)
    m.request(Command.READ, 0, 64)
    m.request(Command.WRITE, 0, 64)
    m.request(Command.BLOCK_STATUS, 0, 64)
    m.request(Command.READ, 32, 8, CommandFlag.DF)
    return m


def simple_machine() -> ClientTransmission:
    m = ClientTransmission(structured=False)
    m.request(Command.READ, 0, 64)
    m.request(Command.WRITE, 0, 64)
    m.request(Command.FLUSH)
    m.request(Command.READ, 16, 16)
    return m


def by_receive_data(m: ClientTransmission, stream: bytes):
    """Everything through receive_data in one call: (events, error message or None)."""
    try:
        return coalesce(m.receive_data(stream)), None
    except ProtocolError as exc:
        return coalesce(exc.events), str(exc)  # type: ignore[attr-defined]


def by_zero_copy(m: ClientTransmission, stream: bytes, sizes: list[int]):
    """As the connection does: payload received straight into a buffer, in pieces of
    ``sizes``; header bytes through receive_data. Data events get their bytes back
    from that buffer so that both ways can be compared."""
    events: list = []
    pos = 0
    step = 0

    def piece() -> int:
        nonlocal step
        size = sizes[step % len(sizes)] if sizes else 7
        step += 1
        return size

    try:
        while pos < len(stream):
            target = m.read_target()
            if target is not None:
                n = min(target.length, piece(), len(stream) - pos)
                received = stream[pos : pos + n]  # "received into the caller's buffer"
                out = m.payload_received(n)
                first, rest = out[0], out[1:]
                assert isinstance(first, Data) and first.data is None and first.length == n
                assert (first.cookie, first.offset) == (target.cookie, target.offset)
                events.append(Data(first.cookie, first.offset, n, received))
                events += rest
            else:
                n = min(piece(), len(stream) - pos)
                events += m.receive_data(stream[pos : pos + n])
            pos += n
    except ProtocolError as exc:
        return coalesce(events + exc.events), str(exc)  # type: ignore[attr-defined]
    return coalesce(events), None


def check_events(events) -> None:
    done = set()
    for ev in events:
        assert isinstance(ev, EVENT_TYPES), ev
        assert ev.cookie not in done, f"event for cookie {ev.cookie} after its RequestDone"
        if isinstance(ev, RequestDone):
            done.add(ev.cookie)


def check_dead(m: ClientTransmission, error: str | None) -> None:
    if error is None:
        assert m.bytes_wanted() > 0
        return
    assert m.read_target() is None
    for call in (lambda: m.receive_data(b"\0"), lambda: m.request(Command.READ)):
        try:
            call()
        except ProtocolError as exc:
            assert str(exc) == error
        else:  # pragma: no cover
            raise AssertionError("the dead machine went on")


_simple_piece = st.one_of(
    st.binary(max_size=24),
    st.builds(simple, st.integers(0, 5), st.sampled_from([0, 0, 0, 5, 22]), st.binary(max_size=70)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(reply_piece, max_size=8),
    sizes=st.lists(st.integers(1, 90), min_size=1, max_size=6),
)
def test_zero_copy_path_agrees_with_receive_data(pieces, sizes):
    stream = b"".join(pieces)
    reference, ref_error = by_receive_data(structured_machine(), stream)
    m = structured_machine()
    events, error = by_zero_copy(m, stream, sizes)
    assert events == reference
    assert error == ref_error
    check_events(events)
    check_dead(m, error)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(_simple_piece, max_size=8),
    sizes=st.lists(st.integers(1, 90), min_size=1, max_size=6),
)
def test_simple_replies_any_stream(pieces, sizes):
    stream = b"".join(pieces)
    reference, ref_error = by_receive_data(simple_machine(), stream)
    m = simple_machine()
    events, error = by_zero_copy(m, stream, sizes)
    assert events == reference and error == ref_error
    check_events(events)
    check_dead(m, error)


@settings(max_examples=300, deadline=None)
@given(
    structured=st.booleans(),
    stream=st.binary(max_size=200),
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=4),
)
def test_random_bytes(structured, stream, sizes):
    make = structured_machine if structured else simple_machine
    reference, ref_error = by_receive_data(make(), stream)
    m = make()
    events, error = by_zero_copy(m, stream, sizes)
    assert events == reference and error == ref_error
    check_events(events)
    check_dead(m, error)
